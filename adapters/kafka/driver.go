package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"

	"github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/courierhq/courier/transport"
)

func init() {
	driver.Register("kafka", func(ctx context.Context, u *url.URL, opts driver.OpenOptions) (driver.Driver, error) {
		cfg, err := ConfigFromURL(u)
		if err != nil {
			return nil, err
		}
		cfg.Logger = opts.Logger
		return New(ctx, cfg)
	})
}

// Open connects to the Kafka cluster cfg names and returns a Courier connection on it. See
// New for what it checks.
func Open(ctx context.Context, cfg Config) (*transport.Conn, error) {
	d, err := New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return transport.NewConn(d, transport.ConnConfig{Logger: d.cfg.Logger}), nil
}

// Driver is the Kafka adapter: it implements driver.Driver. (*transport.Conn).Driver
// returns it; Client and Writer reach the kafka-go values it uses.
type Driver struct {
	cfg       Config
	log       *slog.Logger
	addr      net.Addr
	transport *kafka.Transport
	dialer    *kafka.Dialer
	client    *kafka.Client
	writer    *kafka.Writer
	kafkaLog  kafka.Logger

	topicsMu sync.RWMutex
	topics   map[string]bool // topics known to exist

	closed atomic.Bool
	recvs  sync.WaitGroup // receivers' background work, waited for by Close
}

// New validates cfg and checks that the cluster answers (a metadata request, which also
// proves TLS and SASL settings) within cfg.RequestTimeout and ctx. Errors wrap
// driver.ErrInvalidConfig, ErrUnavailable (nothing answered) or ErrAccessDenied
// (credentials refused).
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	mech, err := saslMechanism(cfg.SASL)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("courier.adapter", "kafka")
	urlparam.LogNotes(log, cfg.urlNotes)
	d := &Driver{
		cfg:      cfg,
		log:      log,
		addr:     kafka.TCP(cfg.Brokers...),
		topics:   map[string]bool{},
		kafkaLog: kafkaLogger{log},
	}
	netDialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}
	d.transport = &kafka.Transport{
		Dial:        netDialer.DialContext,
		DialTimeout: cfg.DialTimeout,
		ClientID:    cfg.ClientID,
		TLS:         cfg.TLS,
		SASL:        mech,
	}
	d.dialer = &kafka.Dialer{
		ClientID:      cfg.ClientID,
		Timeout:       cfg.DialTimeout,
		DualStack:     true,
		KeepAlive:     30 * time.Second,
		TLS:           cfg.TLS,
		SASLMechanism: mech,
	}
	d.client = &kafka.Client{Addr: d.addr, Transport: d.transport, Timeout: cfg.RequestTimeout}
	acks := kafka.RequireAll
	if cfg.Acks == AcksLeader {
		acks = kafka.RequireOne
	}
	d.writer = &kafka.Writer{
		Addr:         d.addr,
		Balancer:     &keyBalancer{},
		BatchSize:    cfg.BatchSize,
		BatchBytes:   cfg.batchBytes(),
		BatchTimeout: cfg.BatchTimeout,
		RequiredAcks: acks,
		Compression:  compressionCodec(cfg.Compression),
		Transport:    d.transport,
		ErrorLogger:  d.kafkaLog,
		// A cache miss asks the broker again instead of failing: topics created by another
		// process, or by this one through another connection, become visible at once.
		AllowAutoTopicCreation: true,
	}

	cctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	if _, err := d.client.Metadata(cctx, &kafka.MetadataRequest{Addr: d.addr, Topics: []string{}}); err != nil {
		d.transport.CloseIdleConnections()
		switch {
		case cctx.Err() != nil && ctx.Err() == nil:
			err = fmt.Errorf("%w: no answer within %v: %w", driver.ErrUnavailable, cfg.RequestTimeout, err)
		case cfg.SASL != nil && !errors.Is(kindOf(err), driver.ErrAccessDenied) && d.answersWithoutSASL(cctx):
			// A broker that refuses the credentials may just close the connection; if it
			// answers without them, the credentials (or the mechanism) are what failed.
			err = fmt.Errorf("%w: the brokers answer, but SASL %s authentication as %q failed (wrong password, unknown user, mechanism not enabled, or no SASL listener): %w",
				driver.ErrAccessDenied, cfg.SASL.Mechanism, cfg.SASL.Username, err)
		case kindOf(err) == nil:
			err = fmt.Errorf("%w: %w", driver.ErrUnavailable, err)
		}
		return nil, wrap(fmt.Sprintf("connect to %s", cfg), err)
	}
	log.Debug("courier: kafka connected", "config", cfg.String())
	return d, nil
}

// answersWithoutSASL reports whether a bootstrap broker answers an API-versions request on a
// connection without SASL (which brokers allow before authentication).
func (d *Driver) answersWithoutSASL(ctx context.Context) bool {
	dialer := *d.dialer
	dialer.SASLMechanism = nil
	for _, b := range d.cfg.Brokers {
		c, err := dialer.DialContext(ctx, "tcp", b)
		if err != nil {
			continue
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = c.SetDeadline(dl)
		}
		_, err = c.ApiVersions()
		c.Close()
		if err == nil {
			return true
		}
	}
	return false
}

// Capabilities implements driver.Driver.
func (d *Driver) Capabilities() driver.Capabilities {
	return driver.Capabilities{
		Name:            "kafka",
		Redelivery:      false,
		DeliveryCount:   false,
		FanOut:          true,
		Persistent:      true,
		NativeOrdering:  true,
		Backlog:         true,
		MaxMessageBytes: d.cfg.MaxMessageBytes,
		MaxBatch:        d.cfg.BatchSize,
	}
}

// Client returns the kafka-go client the driver uses for metadata and topic administration
// (the escape hatch for admin operations Courier does not wrap).
func (d *Driver) Client() *kafka.Client { return d.client }

// Writer returns the kafka-go writer Publish uses. Do not close it; Close does.
func (d *Driver) Writer() *kafka.Writer { return d.writer }

// Config returns the driver's configuration with defaults filled in.
func (d *Driver) Config() Config { return d.cfg }

// Close implements driver.Driver: it flushes and closes the writer and waits, within ctx,
// for receivers still leaving their groups.
func (d *Driver) Close(ctx context.Context) error {
	if !d.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	err := d.writer.Close()
	done := make(chan struct{})
	go func() { d.recvs.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		err = errors.Join(err, fmt.Errorf("kafka: subscribers still leaving their groups: %w", ctx.Err()))
	}
	d.transport.CloseIdleConnections()
	return err
}

// ensureTopic makes sure topic exists: from the driver's memory, else by creating it (when
// allowed; an existing topic answers TopicAlreadyExists), else by asking a broker.
func (d *Driver) ensureTopic(ctx context.Context, topic string) error {
	d.topicsMu.RLock()
	known := d.topics[topic]
	d.topicsMu.RUnlock()
	if known {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	exists := false
	if !d.cfg.DisableTopicCreation {
		ok, err := d.createTopic(ctx, topic)
		switch {
		case err == nil:
			exists = ok
		case errors.Is(err, driver.ErrAccessDenied):
			// No CREATE permission: the topic may exist all the same; ask below.
			d.log.Debug("courier: kafka: not allowed to create topics; checking existence", "topic", topic, "error", err)
		default:
			return err
		}
	}
	if !exists {
		ok, err := d.topicExists(ctx, topic)
		if err != nil {
			return err
		}
		if !ok {
			why := "topic creation is off"
			if !d.cfg.DisableTopicCreation {
				why = "creating it was refused"
			}
			return fmt.Errorf("kafka: topic %q: %w (%s)", topic, driver.ErrTopicNotFound, why)
		}
	}
	d.topicsMu.Lock()
	d.topics[topic] = true
	d.topicsMu.Unlock()
	return nil
}

// forgetTopic drops topic from the driver's memory after the broker said it is unknown
// (deleted), so the next publish or subscribe checks again.
func (d *Driver) forgetTopic(topic string) {
	d.topicsMu.Lock()
	delete(d.topics, topic)
	d.topicsMu.Unlock()
}

// createTopic creates topic; it reports true when the topic exists afterwards.
func (d *Driver) createTopic(ctx context.Context, topic string) (bool, error) {
	parts, rf := d.cfg.Partitions, d.cfg.ReplicationFactor
	if parts == 0 {
		parts = -1 // the broker's num.partitions
	}
	if rf == 0 {
		rf = -1 // the broker's default.replication.factor
	}
	res, err := d.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Addr:   d.addr,
		Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: rf}},
	})
	if err != nil {
		return false, wrap(fmt.Sprintf("create topic %q", topic), err)
	}
	switch err := res.Errors[topic]; {
	case err == nil:
		d.log.Info("courier: kafka topic created", "topic", topic,
			"partitions", brokerDefault(parts), "replication_factor", brokerDefault(rf))
		return true, nil
	case errors.Is(err, kafka.TopicAlreadyExists):
		return true, nil
	default:
		return false, wrap(fmt.Sprintf("create topic %q", topic), err)
	}
}

// brokerDefault renders a topic setting for logs, -1 meaning the broker's default.
func brokerDefault(n int) string {
	if n < 0 {
		return "broker default"
	}
	return strconv.Itoa(n)
}

// topicExists asks a broker whether topic exists. The request allows auto-creation so that
// the transport's metadata cache is bypassed (a cached "unknown" could be stale); a broker
// with auto.create.topics.enable=false answers unknown without creating anything.
func (d *Driver) topicExists(ctx context.Context, topic string) (bool, error) {
	r, err := d.transport.RoundTrip(ctx, d.addr, &metadataAPI.Request{TopicNames: []string{topic}, AllowAutoTopicCreation: true})
	if err != nil {
		return false, wrap(fmt.Sprintf("look up topic %q", topic), err)
	}
	for _, t := range r.(*metadataAPI.Response).Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode == 0 {
			return true, nil
		}
		if kerr := kafka.Error(t.ErrorCode); kerr != kafka.UnknownTopicOrPartition && kerr != kafka.LeaderNotAvailable {
			return false, wrap(fmt.Sprintf("look up topic %q", topic), kerr)
		}
		// LeaderNotAvailable: a broker with auto-creation just created it.
		return kafka.Error(t.ErrorCode) == kafka.LeaderNotAvailable, nil
	}
	return false, nil
}

// checkTopicName applies Kafka's rules, stricter than driver.ValidateName.
func checkTopicName(topic string) error {
	if topic == "." || topic == ".." {
		return fmt.Errorf("%w: kafka: %q is not a valid topic name", driver.ErrInvalidTopic, topic)
	}
	for i := 0; i < len(topic); i++ {
		c := topic[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: kafka: topic %q contains %q; Kafka allows letters, digits, '.', '_' and '-'", driver.ErrInvalidTopic, topic, rune(c))
		}
	}
	return nil
}

func saslMechanism(s *SASL) (sasl.Mechanism, error) {
	if s == nil {
		return nil, nil
	}
	switch s.Mechanism {
	case SASLPlain:
		return plain.Mechanism{Username: s.Username, Password: s.Password}, nil
	case SASLScramSHA256:
		return scram.Mechanism(scram.SHA256, s.Username, s.Password)
	case SASLScramSHA512:
		return scram.Mechanism(scram.SHA512, s.Username, s.Password)
	}
	return nil, fmt.Errorf("%w: kafka: SASL mechanism %q", driver.ErrInvalidConfig, s.Mechanism)
}

func compressionCodec(c Compression) kafka.Compression {
	switch c {
	case CompressionGzip:
		return kafka.Gzip
	case CompressionSnappy:
		return kafka.Snappy
	case CompressionLZ4:
		return kafka.Lz4
	case CompressionZstd:
		return kafka.Zstd
	}
	return 0
}

// keyBalancer picks a record's partition: murmur2 of the key for keyed records, the same
// function Java clients (and librdkafka's murmur2_random) use, so every client agrees on
// where a key lives; round-robin for records without a key.
type keyBalancer struct {
	murmur kafka.Murmur2Balancer
	rr     kafka.RoundRobin
}

// Balance implements kafka.Balancer.
func (b *keyBalancer) Balance(msg kafka.Message, partitions ...int) int {
	if len(msg.Key) == 0 {
		return b.rr.Balance(msg, partitions...)
	}
	return b.murmur.Balance(msg, partitions...)
}

// kafkaLogger routes kafka-go's log lines to slog at debug level: they are frequent during
// rebalances and broker restarts, which Courier reports itself where they matter.
type kafkaLogger struct{ log *slog.Logger }

// Printf implements kafka.Logger.
func (l kafkaLogger) Printf(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("kafka-go: " + fmt.Sprintf(format, args...))
	}
}
