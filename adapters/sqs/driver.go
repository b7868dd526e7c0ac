package sqs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/internal/keyhash"
	"github.com/courierhq/courier/internal/urlparam"

	"github.com/courierhq/courier/transport/driver"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go/logging"

	"github.com/courierhq/courier/transport"
)

// Driver is the SQS adapter; it implements driver.Driver and driver.DeadLetterNamer.
// A *transport.Conn opened on "sqs://" returns it from Conn.Driver(). It is safe for
// concurrent use.
type Driver struct {
	cfg    Config
	client *sqs.Client
	log    *slog.Logger
	tr     *http.Transport // the adapter's own transport, closed by Close; nil for Config.HTTPClient
	caps   driver.Capabilities
	closed atomic.Bool

	qmu    sync.Mutex
	queues map[string]*queueSlot

	// Long polls of all receivers run on pollCtx, which only Close cancels: a receiver's
	// Close leaves its polls in flight to finish (see receiver.Close).
	pollCtx    context.Context
	cancelPoll context.CancelFunc
	pollMu     sync.RWMutex // excludes starting a poll while Close waits for them
	pollsDone  bool
	polls      sync.WaitGroup
}

// Open returns a connection to SQS configured by cfg. It makes no request: a bad endpoint,
// region or credentials show up on the first Publish or Subscribe.
func Open(ctx context.Context, cfg Config) (*transport.Conn, error) {
	d, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return transport.NewConn(d, transport.ConnConfig{Logger: d.cfg.Logger}), nil
}

// New returns the adapter's Driver, for use with transport.NewConn. Errors wrap
// driver.ErrInvalidConfig.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	d := &Driver{cfg: cfg, log: cfg.Logger.With("courier.broker", "sqs"), queues: map[string]*queueSlot{}}
	urlparam.LogNotes(d.log, cfg.urlNotes)
	d.pollCtx, d.cancelPoll = context.WithCancel(context.WithoutCancel(ctx))

	var awsCfg aws.Config
	if cfg.AWSConfig != nil {
		awsCfg = cfg.AWSConfig.Copy()
	} else {
		// The loader's own clients (the credential chain's EC2 metadata client) log through
		// the connection's logger too, not the SDK's default stderr logger.
		opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithLogger(sdkLogger{d.log})}
		if cfg.Profile != "" {
			opts = append(opts, awsconfig.WithSharedConfigProfile(cfg.Profile))
		}
		if cfg.Region != "" {
			opts = append(opts, awsconfig.WithRegion(cfg.Region))
		}
		var err error
		if awsCfg, err = awsconfig.LoadDefaultConfig(ctx, opts...); err != nil {
			// The loader's errors name files and profiles, never secrets.
			return nil, fmt.Errorf("%w: sqs: load AWS configuration: %v", driver.ErrInvalidConfig, err)
		}
	}
	if cfg.Region != "" {
		awsCfg.Region = cfg.Region
	}
	if awsCfg.Region == "" {
		return nil, fmt.Errorf("%w: sqs: no AWS region: set ?region=, Config.Region or AWS_REGION", driver.ErrInvalidConfig)
	}
	if cfg.Credentials != nil {
		awsCfg.Credentials = cfg.Credentials
	} else if cfg.Endpoint != "" && cfg.AWSConfig == nil {
		awsCfg.Credentials = aws.NewCredentialsCache(emulatorCredentials{chain: awsCfg.Credentials, log: d.log})
	}
	if cfg.MaxAttempts > 0 {
		awsCfg.RetryMaxAttempts = cfg.MaxAttempts
	}
	if cfg.AWSConfig == nil || cfg.AWSConfig.Logger == nil {
		awsCfg.Logger = sdkLogger{d.log}
	}
	switch {
	case cfg.HTTPClient != nil:
		awsCfg.HTTPClient = cfg.HTTPClient
	case cfg.AWSConfig == nil || cfg.AWSConfig.HTTPClient == nil:
		// Our own transport: keep-alive connections for every poller, publisher and acker
		// (net/http keeps only 2 idle per host by default), and closed with the Driver so
		// that nothing lingers.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 256
		tr.MaxIdleConnsPerHost = 128
		tr.IdleConnTimeout = 90 * time.Second
		d.tr = tr
		awsCfg.HTTPClient = &http.Client{Transport: tr}

	}
	awsCfg.HTTPClient = privateBodies{awsCfg.HTTPClient}
	d.client = sqs.NewFromConfig(awsCfg, func(o *sqs.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	d.caps = driver.Capabilities{
		Name:             "sqs",
		Redelivery:       true,
		DeliveryCount:    true,
		FanOut:           false,
		Persistent:       true,
		NativeOrdering:   false, // FIFO queues do; standard queues do not (see the package doc)
		NativeDeadLetter: true,
		Backlog:          true,
		MaxMessageBytes:  cfg.maxMessageBytes(),
		MaxBatch:         MaxBatch,
	}
	return d, nil
}

// startPoll runs fn as a long poll of the driver, unless the driver is closed.
func (d *Driver) startPoll(fn func()) bool {
	d.pollMu.RLock()
	defer d.pollMu.RUnlock()
	if d.pollsDone {
		return false
	}
	d.polls.Add(1)
	go func() {
		defer d.polls.Done()
		fn()
	}()
	return true
}

// privateBodies hands net/http a private copy of every request body. smithy-go closes the body
// it built as soon as the response headers arrive, and a closed body then answers io.EOF — an
// error to net/http's writer if it has not quite finished with the request (it reads once more
// to check for surplus bytes). The writer then closes the connection under the response being
// read, and the SDK retries the operation (aws-sdk-go-v2#2737). For most calls that costs a
// request; for a ReceiveMessage it loses the answer, and the messages SQS handed out stay
// invisible for a whole visibility timeout (observed here: 30 s stalls, about one receive in a
// few thousand under load). Request bodies are small (at most a 1 MiB batch), so the copy is
// cheap.
type privateBodies struct{ c aws.HTTPClient }

// Do implements aws.HTTPClient.
func (p privateBodies) Do(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return p.c.Do(r)
	}
	var body []byte
	var err error
	if n := r.ContentLength; n > 0 {
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(r.Body)
	}
	if err != nil {
		return nil, err
	}
	c := *r // shallow: only the body differs
	c.Body = io.NopCloser(bytes.NewReader(body))
	c.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	c.ContentLength = int64(len(body))
	return p.c.Do(&c)
}

// sdkLogger routes the AWS SDK's own log lines to slog at debug level: they are about its
// internals (such as draining the body of a long poll cancelled by Close) and carry no
// credentials.
type sdkLogger struct{ log *slog.Logger }

func (l sdkLogger) Logf(c logging.Classification, format string, v ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("aws-sdk: "+fmt.Sprintf(format, v...), "classification", string(c))
	}
}

// Client returns the AWS SDK client the adapter uses: the escape hatch for what Courier does
// not cover (queue tags, purges, message move tasks).
func (d *Driver) Client() *sqs.Client { return d.client }

// Capabilities implements driver.Driver.
func (d *Driver) Capabilities() driver.Capabilities { return d.caps }

// Close implements driver.Driver. It cancels the long polls still in flight (those of
// subscribers closed earlier, see the package documentation) and waits for them, then closes
// the adapter's idle HTTP connections; a Config.HTTPClient is left alone.
func (d *Driver) Close(context.Context) error {
	if !d.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	d.pollMu.Lock()
	d.pollsDone = true
	d.pollMu.Unlock()
	d.cancelPoll()
	d.polls.Wait()
	if d.tr != nil {
		d.tr.CloseIdleConnections()
	}
	return nil
}

// DeadLetterTopic implements driver.DeadLetterNamer: SQS queue names allow no '.' except in
// a FIFO queue's ".fifo" suffix, and a FIFO queue's dead-letter queue must be FIFO, so the
// default dead-letter queue of "orders" is "orders-dlq" and of "orders.fifo" is
// "orders-dlq.fifo". A name that would exceed 80 characters is shortened, keeping it unique
// with a hash of the original.
func (d *Driver) DeadLetterTopic(topic string) string { return deadLetterName(topic) }

func deadLetterName(topic string) string {
	base, fifo := strings.CutSuffix(topic, fifoSuffix)
	suffix := "-dlq"
	if fifo {
		suffix += fifoSuffix
	}
	if len(base)+len(suffix) <= maxQueueName {
		return base + suffix
	}
	tag := fmt.Sprintf("-%08x", keyhash.Sum32(base))
	return base[:maxQueueName-len(suffix)-len(tag)] + tag + suffix
}

const (
	fifoSuffix   = ".fifo"
	maxQueueName = 80
)

// checkQueueName applies SQS's queue name rules: 1 to 80 characters, letters, digits, '-' and
// '_', and for a FIFO queue the ".fifo" suffix (counted in the 80).
func checkQueueName(name string) error {
	base, _ := strings.CutSuffix(name, fifoSuffix)
	ok := base != "" && len(name) <= maxQueueName
	for i := 0; ok && i < len(base); i++ {
		c := base[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if !ok {
		return fmt.Errorf("%w: %q is not an SQS queue name: 1 to 80 letters, digits, '-' and '_', FIFO queues ending in \".fifo\"", driver.ErrInvalidTopic, name)
	}
	return nil
}

// queue is what the adapter knows of one SQS queue.
type queue struct {
	name       string
	url        string
	fifo       bool
	maxBytes   int           // MaximumMessageSize, or the configured limit when the queue reports none
	visibility time.Duration // the queue's VisibilityTimeout attribute
	arn        string
}

// queueSlot resolves a queue once for concurrent callers; a failure is not cached.
type queueSlot struct {
	done chan struct{}
	q    *queue
	err  error
}

// queue returns the queue named name, creating it when create is true and it is missing.
func (d *Driver) queue(ctx context.Context, name string, create bool) (*queue, error) {
	if err := checkQueueName(name); err != nil {
		return nil, err
	}
	for {
		d.qmu.Lock()
		s := d.queues[name]
		if s == nil {
			s = &queueSlot{done: make(chan struct{})}
			d.queues[name] = s
			d.qmu.Unlock()
			s.q, s.err = d.resolve(ctx, name, create)
			if s.err != nil {
				d.qmu.Lock()
				delete(d.queues, name)
				d.qmu.Unlock()
			}
			close(s.done)
			return s.q, s.err
		}
		d.qmu.Unlock()
		select {
		case <-s.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if s.err == nil {
			return s.q, nil
		}
		// The resolver failed (perhaps with its own context): try ourselves.
	}
}

// forget drops a cached queue after SQS said it does not exist (deleted meanwhile).
func (d *Driver) forget(q *queue) {
	d.qmu.Lock()
	if s := d.queues[q.name]; s != nil && s.q == q {
		delete(d.queues, q.name)
	}
	d.qmu.Unlock()
}

func (d *Driver) resolve(parent context.Context, name string, create bool) (*queue, error) {
	ctx, cancel := d.opContext(parent, 0)
	defer cancel()
	q := &queue{name: name, fifo: strings.HasSuffix(name, fifoSuffix)}
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(name)}
	if d.cfg.QueueOwnerAccountID != "" {
		in.QueueOwnerAWSAccountId = aws.String(d.cfg.QueueOwnerAccountID)
	}
	out, err := d.client.GetQueueUrl(ctx, in)
	switch {
	case err == nil:
		q.url = aws.ToString(out.QueueUrl)
	case !isNotFound(err):
		return nil, d.opError(parent, "look up queue "+strconv.Quote(name), err)
	case !create:
		return nil, fmt.Errorf("sqs: queue %q does not exist and queue creation is off (create=false): %w", name, driver.ErrTopicNotFound)
	case d.cfg.QueueOwnerAccountID != "":
		return nil, fmt.Errorf("sqs: queue %q does not exist in account %s (the adapter creates queues only in its own account): %w", name, d.cfg.QueueOwnerAccountID, driver.ErrTopicNotFound)
	default:
		if q.url, err = d.createQueue(parent, ctx, q); err != nil {
			return nil, err
		}
	}
	attrs, err := d.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(q.url),
		AttributeNames: []types.QueueAttributeName{
			types.QueueAttributeNameMaximumMessageSize,
			types.QueueAttributeNameVisibilityTimeout,
			types.QueueAttributeNameQueueArn,
		},
	})
	if err != nil {
		return nil, d.opError(parent, "read attributes of queue "+strconv.Quote(name), err)
	}
	q.maxBytes = d.cfg.maxMessageBytes()
	if n, err := strconv.Atoi(attrs.Attributes[string(types.QueueAttributeNameMaximumMessageSize)]); err == nil && n > 0 {
		q.maxBytes = n // ElasticMQ reports none; AWS always does
	}
	if n, err := strconv.Atoi(attrs.Attributes[string(types.QueueAttributeNameVisibilityTimeout)]); err == nil {
		q.visibility = time.Duration(n) * time.Second
	}
	q.arn = attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	return q, nil
}

func (d *Driver) createQueue(parent, ctx context.Context, q *queue) (string, error) {
	attrs := map[string]string{}
	if q.fifo {
		attrs[string(types.QueueAttributeNameFifoQueue)] = "true"
	}
	if d.cfg.VisibilityTimeout > 0 {
		attrs[string(types.QueueAttributeNameVisibilityTimeout)] = strconv.Itoa(int(seconds(d.cfg.VisibilityTimeout)))
	}
	if d.cfg.MaxMessageBytes > 0 {
		attrs[string(types.QueueAttributeNameMaximumMessageSize)] = strconv.Itoa(d.cfg.MaxMessageBytes)
	}
	if d.cfg.MessageRetention > 0 {
		attrs[string(types.QueueAttributeNameMessageRetentionPeriod)] = strconv.Itoa(int(seconds(d.cfg.MessageRetention)))
	}
	for k, v := range d.cfg.QueueAttributes {
		attrs[k] = v
	}
	out, err := d.client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(q.name), Attributes: attrs})
	if err == nil {
		d.log.Info("courier: created SQS queue", "queue", q.name)
		return aws.ToString(out.QueueUrl), nil
	}
	var exists *types.QueueNameExists
	if errors.As(err, &exists) || errorCode(err) == "QueueNameExists" {
		// Created meanwhile by someone else, with other attributes: use it as it is.
		got, gerr := d.client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(q.name)})
		if gerr == nil {
			d.log.Warn("courier: SQS queue exists with attributes other than configured; using it as it is", "queue", q.name)
			return aws.ToString(got.QueueUrl), nil
		}
		err = gerr
	}
	return "", d.opError(parent, "create queue "+strconv.Quote(q.name), err)
}

// opContext bounds one operation by OperationTimeout plus extra.
func (d *Driver) opContext(ctx context.Context, extra time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.cfg.OperationTimeout+extra)
}
