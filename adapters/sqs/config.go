package sqs

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func init() {
	driver.Register("sqs", func(ctx context.Context, u *url.URL, opts driver.OpenOptions) (driver.Driver, error) {
		cfg, err := ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Logger = opts.Logger
		d, err := New(ctx, cfg)
		if err != nil {
			return nil, err // not a typed nil in the interface
		}
		return d, nil
	})
}

// Limits and defaults of Amazon SQS that Config refers to.
const (
	// MaxMessageBytes is the largest message SQS accepts (1 MiB since 2025; a queue may set less
	// with its MaximumMessageSize attribute). It is also the limit on one SendMessageBatch.
	MaxMessageBytes = 1 << 20
	// MinMessageBytes is the smallest MaximumMessageSize a queue may have.
	MinMessageBytes = 1024
	// MaxBatch is the most entries SQS takes in one batch request and the most messages one
	// ReceiveMessage returns.
	MaxBatch = 10
	// MaxWaitTime is the longest long poll SQS allows, and the default.
	MaxWaitTime = 20 * time.Second
	// MaxVisibilityTimeout is the longest visibility timeout (and nack delay) SQS allows.
	MaxVisibilityTimeout = 12 * time.Hour
	// DefaultPublishConcurrency is the default of Config.PublishConcurrency.
	DefaultPublishConcurrency = 4
	// DefaultMaxPollers is the default of Config.MaxPollers.
	DefaultMaxPollers = 8
	// DefaultFIFOGroup is the default of Config.FIFODefaultGroup.
	DefaultFIFOGroup = "courier-default"
	// DefaultOperationTimeout is the default of Config.OperationTimeout.
	DefaultOperationTimeout = 30 * time.Second
)

// Config configures the SQS adapter. The zero value is valid when the standard AWS
// configuration chain (environment, shared config files, instance role) provides a region and
// credentials. Durations given to SQS are rounded up to whole seconds.
type Config struct {
	// Region is the AWS region. Default: from the AWS configuration chain (AWS_REGION, the
	// profile's region). Opening fails when neither says.
	Region string

	// Endpoint overrides the SQS endpoint, e.g. "http://127.0.0.1:9324" for ElasticMQ or a VPC
	// endpoint. Default: the region's public endpoint (or AWS_ENDPOINT_URL_SQS).
	Endpoint string

	// Profile selects a shared config profile. Default: AWS_PROFILE, else "default".
	Profile string

	// Credentials overrides the credential chain. Default: the standard AWS chain; with an
	// Endpoint (an emulator), the chain without the EC2 metadata service, and when it finds no
	// credentials, dummy ones (access key DummyAccessKeyID), so that an emulator needs no AWS
	// setup. Credentials never appear in errors or logs.
	Credentials aws.CredentialsProvider

	// AWSConfig, when set, is used as the base AWS configuration instead of loading the
	// default chain; Region, Credentials, HTTPClient and MaxAttempts still override it.
	AWSConfig *aws.Config

	// HTTPClient sends the requests. Default: a client of the adapter's own with keep-alive
	// connections sized for its pollers, closed by Close. Either way the adapter passes it
	// private copies of request bodies (see the package documentation, "The HTTP client").
	HTTPClient aws.HTTPClient

	// MaxAttempts is how many times the AWS SDK tries a request (the first included) on
	// throttling, 5xx and network errors, with its own backoff. Default: the SDK's (3).
	MaxAttempts int

	// OperationTimeout bounds one SQS operation, its retries included (a long poll gets
	// WaitTime more). Default 30s.
	OperationTimeout time.Duration

	// DisableCreate stops the adapter from creating missing queues: Publish and Subscribe then
	// fail with driver.ErrTopicNotFound. Default: queues are created when missing.
	DisableCreate bool

	// QueueOwnerAccountID is the AWS account that owns the queues, for queues of another
	// account. Default: the caller's account.
	QueueOwnerAccountID string

	// VisibilityTimeout is the lease a received message gets: it is requested on every
	// ReceiveMessage, set as the queue attribute when the adapter creates a queue, and renewed
	// by the heartbeat while a handler holds the message. 1s to 12h. Default: the queue's own
	// VisibilityTimeout attribute (SQS's default is 30s).
	VisibilityTimeout time.Duration

	// WaitTime is the long-poll duration of ReceiveMessage, at most 20s. Default 20s.
	WaitTime time.Duration

	// MaxMessageBytes is the largest message the adapter sends, as SQS counts it (body plus
	// attribute names, types and values), from 1 KiB to 1 MiB. It is also set as the
	// MaximumMessageSize attribute of queues the adapter creates. A queue that reports a lower
	// MaximumMessageSize is held to its own limit. Default 1 MiB.
	MaxMessageBytes int

	// MessageRetention is set as MessageRetentionPeriod on queues the adapter creates, 60s to
	// 14 days. Default: SQS's (4 days).
	MessageRetention time.Duration

	// QueueAttributes are further attributes for queues the adapter creates (KmsMasterKeyId,
	// DelaySeconds, …). They override the ones derived from the fields above. Default none.
	QueueAttributes map[string]string

	// MaxPollers caps the ReceiveMessage calls a subscriber keeps in flight (each returns at
	// most 10 messages). The adapter runs as many as the subscriber's Prefetch needs, up to this
	// cap, except on a standard queue with ordering on, where it runs one (see the package
	// documentation). Default 8.
	MaxPollers int

	// Pollers, when positive, fixes the number of ReceiveMessage calls every subscriber keeps
	// in flight, overriding the automatic choice described at MaxPollers. Default 0 (automatic).
	Pollers int

	// PublishConcurrency is how many SendMessageBatch requests one Publish call sends at once
	// when order does not matter (standard queue, no message with a Key). Default 4.
	PublishConcurrency int

	// FIFODefaultGroup is the MessageGroupId of messages without a Key on FIFO queues.
	// Default "courier-default": all unkeyed messages of a FIFO queue form one ordered group.
	FIFODefaultGroup string

	// FIFOGroupPerMessage puts each unkeyed message of a FIFO queue in a group of its own
	// (derived from its ID) instead of FIFODefaultGroup: no order among them, but no
	// head-of-line blocking and full parallelism. Default false.
	FIFOGroupPerMessage bool

	// FIFODeduplicateByID makes the message ID alone the MessageDeduplicationId on FIFO
	// queues: SQS then drops any message whose ID it saw in the last 5 minutes, including
	// dead-letter redrives and other republished copies. Default false: the ID and the publish
	// time, so that only a retried Publish of the same messages is deduplicated.
	FIFODeduplicateByID bool

	// Logger receives the adapter's log lines (never payloads or credentials), the AWS SDK's
	// own at debug level. Default slog.Default(); a connection opened by transport.Open gets
	// the connection's logger (transport.ConnConfig.Logger).
	Logger *slog.Logger

	// urlNotes are ConfigFromURL's deprecation notes, logged by New.
	urlNotes []string
}

// Validate reports a configuration that cannot work. Errors wrap driver.ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: sqs: "+format, append([]any{driver.ErrInvalidConfig}, args...)...)
	}
	switch {
	case c.MaxAttempts < 0:
		return bad("MaxAttempts %d is negative", c.MaxAttempts)
	case c.OperationTimeout < 0:
		return bad("OperationTimeout %v is negative", c.OperationTimeout)
	case c.VisibilityTimeout != 0 && (c.VisibilityTimeout < time.Second || c.VisibilityTimeout > MaxVisibilityTimeout):
		return bad("VisibilityTimeout %v is outside 1s..12h", c.VisibilityTimeout)
	case c.WaitTime < 0 || c.WaitTime > MaxWaitTime:
		return bad("WaitTime %v is outside 0..20s", c.WaitTime)
	case c.MaxMessageBytes != 0 && (c.MaxMessageBytes < MinMessageBytes || c.MaxMessageBytes > MaxMessageBytes):
		return bad("MaxMessageBytes %d is outside %d..%d", c.MaxMessageBytes, MinMessageBytes, MaxMessageBytes)
	case c.MessageRetention != 0 && (c.MessageRetention < time.Minute || c.MessageRetention > 14*24*time.Hour):
		return bad("MessageRetention %v is outside 60s..14 days", c.MessageRetention)
	case c.MaxPollers < 0:
		return bad("MaxPollers %d is negative", c.MaxPollers)
	case c.Pollers < 0:
		return bad("Pollers %d is negative", c.Pollers)
	case c.PublishConcurrency < 0:
		return bad("PublishConcurrency %d is negative", c.PublishConcurrency)
	case c.FIFODefaultGroup != "" && !validFIFOID(c.FIFODefaultGroup):
		return bad("FIFODefaultGroup %q: a MessageGroupId is 1 to 128 ASCII letters, digits and punctuation", c.FIFODefaultGroup)
	case c.QueueOwnerAccountID != "" && strings.ContainsAny(c.QueueOwnerAccountID, " /?#"):
		return bad("QueueOwnerAccountID %q is not an account ID", c.QueueOwnerAccountID)
	}
	for k := range c.QueueAttributes {
		if k == "" {
			return bad("QueueAttributes has an empty name")
		}
	}
	return nil
}

// withDefaults fills the zero fields that have a fixed default.
func (c Config) withDefaults() Config {
	if c.OperationTimeout == 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.WaitTime == 0 {
		c.WaitTime = MaxWaitTime
	}
	if c.MaxPollers == 0 {
		c.MaxPollers = DefaultMaxPollers
	}
	if c.PublishConcurrency == 0 {
		c.PublishConcurrency = DefaultPublishConcurrency
	}
	if c.FIFODefaultGroup == "" {
		c.FIFODefaultGroup = DefaultFIFOGroup
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// maxMessageBytes is the limit the adapter applies when a queue reports none.
func (c *Config) maxMessageBytes() int {
	if c.MaxMessageBytes > 0 {
		return c.MaxMessageBytes
	}
	return MaxMessageBytes
}

func durationParam(name, def, doc string, f func(*Config) *time.Duration) urlparam.Param[Config] {
	return urlparam.Param[Config]{Name: name, Kind: urlparam.Duration, LegacyUnit: time.Second, Default: def, Doc: doc,
		Set: urlparam.SetDuration(f)}
}

func intParam(name, def, doc string, f func(*Config) *int) urlparam.Param[Config] {
	return urlparam.Param[Config]{Name: name, Kind: urlparam.Int, Default: def, Doc: doc, Set: urlparam.SetInt(f)}
}

func stringParam(name, def, doc string, f func(*Config) *string) urlparam.Param[Config] {
	return urlparam.Param[Config]{Name: name, Kind: urlparam.String, Default: def, Doc: doc, Set: urlparam.SetString(f)}
}

// urlParams are the query parameters ConfigFromURL understands.
var urlParams = urlparam.Table[Config]{
	Scheme: "sqs",
	Params: []urlparam.Param[Config]{
		stringParam("region", "AWS chain", "AWS region", func(c *Config) *string { return &c.Region }),
		{Name: "endpoint", Kind: urlparam.String, Default: "region's", Doc: "SQS endpoint, an http(s) URL (ElasticMQ, LocalStack, a VPC endpoint); without AWS credentials configured, dummy ones are used",
			Set: func(c *Config, v urlparam.Value) error {
				e, err := url.Parse(v.Raw)
				if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
					return fmt.Errorf("not an http(s) URL")
				}
				c.Endpoint = v.Raw
				return nil
			}},
		stringParam("profile", "AWS_PROFILE", "shared config profile", func(c *Config) *string { return &c.Profile }),
		intParam("max_attempts", "3", "tries per request, the first included (the AWS SDK's retries)", func(c *Config) *int { return &c.MaxAttempts }),
		durationParam("operation_timeout", DefaultOperationTimeout.String(), "bound on one SQS operation with its retries", func(c *Config) *time.Duration { return &c.OperationTimeout }),
		{Name: "create", Kind: urlparam.Bool, Default: "true", Doc: "create missing queues (`false`: a missing queue is an error)",
			Set: urlparam.SetNotBool(func(c *Config) *bool { return &c.DisableCreate })},
		stringParam("account_id", "caller's", "AWS account that owns the queues", func(c *Config) *string { return &c.QueueOwnerAccountID }),
		durationParam("visibility_timeout", "queue's", "lease of a received message, 1s to 12h", func(c *Config) *time.Duration { return &c.VisibilityTimeout }),
		durationParam("wait_time", MaxWaitTime.String(), "long-poll duration, at most 20s", func(c *Config) *time.Duration { return &c.WaitTime }),
		intParam("max_message_bytes", strconv.Itoa(MaxMessageBytes), "largest message sent, 1024 to 1048576", func(c *Config) *int { return &c.MaxMessageBytes }),
		durationParam("retention", "4 days", "MessageRetentionPeriod of created queues, 60s to 14 days", func(c *Config) *time.Duration { return &c.MessageRetention }),
		intParam("max_pollers", strconv.Itoa(DefaultMaxPollers), "cap on ReceiveMessage calls in flight per subscriber", func(c *Config) *int { return &c.MaxPollers }),
		intParam("pollers", "automatic", "fixed number of ReceiveMessage calls in flight per subscriber", func(c *Config) *int { return &c.Pollers }),
		intParam("publish_concurrency", strconv.Itoa(DefaultPublishConcurrency), "SendMessageBatch requests one Publish sends at once", func(c *Config) *int { return &c.PublishConcurrency }),
		stringParam("fifo_default_group", DefaultFIFOGroup, "MessageGroupId of unkeyed messages on FIFO queues", func(c *Config) *string { return &c.FIFODefaultGroup }),
		{Name: "fifo_group_per_message", Kind: urlparam.Bool, Default: "false", Doc: "each unkeyed message of a FIFO queue in its own group",
			Set: urlparam.SetBool(func(c *Config) *bool { return &c.FIFOGroupPerMessage })},
		{Name: "fifo_dedup_by_id", Kind: urlparam.Bool, Default: "false", Doc: "deduplicate FIFO messages by ID alone",
			Set: urlparam.SetBool(func(c *Config) *bool { return &c.FIFODeduplicateByID })},
	},
}

// ConfigFromURL reads a Config from an sqs:// URL:
//
//	sqs://?region=eu-west-1&endpoint=http://127.0.0.1:9324&create=false&visibility_timeout=60s
//
// The parameters are those of urlParams, listed with their defaults in the README ("Brokers
// and URLs"). Durations are Go durations ("90s", "1h"); a bare number of seconds ("90") still
// works and is logged as deprecated when the connection opens. The URL has no host or path:
// queues are named per Publish and Subscribe. Credentials come from the AWS chain (or, with an
// endpoint and no credentials configured, are dummies), never from the URL. Unknown or
// repeated parameters and bad values are errors wrapping driver.ErrInvalidURL.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	if u == nil {
		return cfg, fmt.Errorf("%w: sqs: nil URL", driver.ErrInvalidURL)
	}
	if u.Scheme != "sqs" {
		return cfg, fmt.Errorf("%w: sqs: scheme %q; want sqs://", driver.ErrInvalidURL, u.Scheme)
	}
	if u.User != nil {
		return cfg, fmt.Errorf("%w: sqs: credentials do not belong in the URL; use the AWS credential chain (environment, profile, role) or Config.Credentials", driver.ErrInvalidURL)
	}
	if u.Host != "" || (u.Path != "" && u.Path != "/") || u.Opaque != "" {
		return cfg, fmt.Errorf("%w: sqs: the URL takes no host or path (got %q); use sqs://?region=…&endpoint=…", driver.ErrInvalidURL, u.Host+u.Path+u.Opaque)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return cfg, fmt.Errorf("%w: sqs: malformed query", driver.ErrInvalidURL)
	}
	_, notes, err := urlParams.Parse(q, &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	cfg.urlNotes = notes
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, nil
}

// emulatorCredentials is the credential provider for an explicit Endpoint when the user gave
// none: the standard chain (environment, shared files; never the EC2 metadata service), and
// when that finds nothing, fixed dummy credentials, which emulators such as ElasticMQ accept.
type emulatorCredentials struct {
	chain aws.CredentialsProvider
	log   *slog.Logger
}

// DummyAccessKeyID is the access key of the dummy credentials used with an explicit
// endpoint when no AWS credentials are configured.
const DummyAccessKeyID = "courier-emulator"

// Retrieve implements aws.CredentialsProvider.
func (e emulatorCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	if e.chain != nil {
		if c, err := e.chain.Retrieve(ctx); err == nil {
			return c, nil
		}
	}
	e.log.Debug("no AWS credentials configured; using dummy credentials for the explicit endpoint")
	return aws.Credentials{AccessKeyID: DummyAccessKeyID, SecretAccessKey: "courier-emulator", Source: "courier: dummy credentials for an emulator endpoint"}, nil
}

// seconds rounds d up to whole seconds, as SQS takes them.
func seconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32((d + time.Second - 1) / time.Second)
}
