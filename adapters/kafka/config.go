package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/transport/driver"
)

// Defaults for Config. Each applies when the field is left zero.
const (
	DefaultClientID          = "courier"
	DefaultPort              = "9092"
	DefaultDialTimeout       = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultBatchTimeout      = 2 * time.Millisecond
	DefaultBatchSize         = 1000
	DefaultMaxMessageBytes   = 1_000_000 // message.Size(); the broker's message.max.bytes is 1 MiB + 12 and counts record overhead
	DefaultSessionTimeout    = 10 * time.Second
	DefaultHeartbeatInterval = 1 * time.Second
	DefaultRebalanceTimeout  = 10 * time.Second
	DefaultRevokeTimeout     = 3 * time.Second
	DefaultJoinGroupBackoff  = 1 * time.Second
	DefaultMaxWait           = 500 * time.Millisecond
	DefaultFetchMaxBytes     = 1 << 20
	DefaultQueueCapacity     = 1024
)

// Acks is how many replicas must store a record before Publish succeeds.
type Acks int

const (
	// AcksAll waits for every in-sync replica (acks=all, the default): a record survives the
	// loss of the leader. Publish returns nil only then.
	AcksAll Acks = iota
	// AcksLeader waits for the partition leader only (acks=1): faster, and a record can be
	// lost if the leader dies before followers copy it.
	AcksLeader
)

// String returns "all" or "leader", the URL parameter's values.
func (a Acks) String() string {
	if a == AcksLeader {
		return "leader"
	}
	return "all"
}

// StartOffset is where a new consumer group (a subscription with no committed offset) starts.
type StartOffset int

const (
	// StartEarliest reads the partition from its oldest retained record (the default), so a
	// subscription created before publishing never misses a message.
	StartEarliest StartOffset = iota
	// StartLatest reads only records produced after the group first joined, which happens
	// when its first subscriber starts running: records published between Subscribe and
	// that moment are not delivered to a new group.
	StartLatest
)

// Compression names a record batch codec.
type Compression string

// Codecs kafka-go supports. The zero value means none.
const (
	CompressionNone   Compression = ""
	CompressionGzip   Compression = "gzip"
	CompressionSnappy Compression = "snappy"
	CompressionLZ4    Compression = "lz4"
	CompressionZstd   Compression = "zstd"
)

// SASL mechanisms.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// SASL holds credentials for SASL authentication.
type SASL struct {
	// Mechanism is SASLPlain, SASLScramSHA256 or SASLScramSHA512. Required.
	Mechanism string
	// Username and Password. Both required. They never appear in errors or logs.
	Username, Password string
}

// Config configures a connection to a Kafka cluster. Only Brokers is required; every other
// zero field takes the default named in its comment. Validate reports what cannot work.
type Config struct {
	// Brokers are the bootstrap servers, "host:port". Required.
	Brokers []string
	// ClientID is sent to the brokers with every request. Default "courier".
	ClientID string
	// TLS, when non-nil, encrypts every connection with this configuration.
	TLS *tls.Config
	// SASL, when non-nil, authenticates every connection (over TLS, unless PLAIN credentials
	// may cross the network in clear).
	SASL *SASL
	// DialTimeout bounds each TCP (and TLS, SASL) connection attempt. Default 5s.
	DialTimeout time.Duration
	// RequestTimeout bounds each metadata and topic-creation request and the connectivity
	// check in Open. Default 10s.
	RequestTimeout time.Duration
	// Logger receives the adapter's log lines (kafka-go's own at debug level). Default
	// slog.Default().
	Logger *slog.Logger

	// DisableTopicCreation makes a missing topic an error (driver.ErrTopicNotFound) instead
	// of creating it. A broker with auto.create.topics.enable=true may still create topics
	// on its own when a client asks for their metadata, as with every Kafka client.
	DisableTopicCreation bool
	// Partitions of the topics Courier creates. Default 0: the broker's num.partitions.
	// Keys are spread over partitions, and a partition is consumed by one member of a
	// subscription at a time, so this bounds how many subscribers share the work.
	Partitions int
	// ReplicationFactor of the topics Courier creates. Default 0: the broker's
	// default.replication.factor. (Both broker defaults need Kafka 2.4 or later.)
	ReplicationFactor int

	// Acks is the durability a publish waits for. Default AcksAll.
	Acks Acks
	// BatchTimeout is how long a partition's batch waits for more records before it is
	// sent. It is also the extra latency of a lone publish. Default 2ms.
	BatchTimeout time.Duration
	// BatchSize is the most records per partition in one produce request. Default 1000.
	BatchSize int
	// MaxMessageBytes is the largest message (message.Size: payload, key, ID and headers)
	// Publish accepts; larger ones fail with driver.ErrMessageTooLarge before anything is
	// sent. Default 1,000,000, under the broker's default message.max.bytes (1 MiB + 12)
	// with room for record overhead. Raise it only with the broker's and topic's limits
	// (message.max.bytes, max.message.bytes): the broker refuses a partition's whole batch
	// when one record is too large, and records of other publishes in flight at the same
	// moment can share that batch.
	MaxMessageBytes int
	// Compression of produced record batches. Default none.
	Compression Compression

	// StartOffset is where a subscription without a committed offset starts. Default
	// StartEarliest.
	StartOffset StartOffset
	// SessionTimeout: a subscriber that sends no heartbeat for this long is removed from its
	// group and its partitions go to the others. Default 10s (brokers allow 6s–30min).
	SessionTimeout time.Duration
	// HeartbeatInterval between heartbeats; a rebalance is noticed within it. Default 1s.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the broker waits for every member to rejoin during a
	// rebalance. Default 10s.
	RebalanceTimeout time.Duration
	// RevokeTimeout bounds how long a subscriber losing its partitions waits for handlers in
	// flight on them to finish, so their offsets are committed before another member takes
	// over. Must be below RebalanceTimeout. Default 3s.
	RevokeTimeout time.Duration
	// JoinGroupBackoff is the pause after a failed attempt to join a group. Default 1s.
	JoinGroupBackoff time.Duration
	// MaxWait is how long a fetch waits at the broker for new records; it also bounds how
	// long closing a subscriber waits for its fetches. Default 500ms.
	MaxWait time.Duration
	// FetchMaxBytes is the most bytes one fetch returns per partition. Default 1 MiB.
	FetchMaxBytes int
	// QueueCapacity is how many fetched records a subscriber buffers ahead of the engine's
	// prefetch (in chunks of 64, rounded up), so that a busy machine's scheduling delays do
	// not stall the handlers. Buffered records not handed out are dropped, not lost, when
	// partitions are revoked. Default 1024.
	QueueCapacity int
	// ReadUncommitted also delivers records of open and aborted transactions. Default false:
	// read_committed, as Kafka's own consumers default to for transactional producers.
	ReadUncommitted bool
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	def(&c.DialTimeout, DefaultDialTimeout)
	def(&c.RequestTimeout, DefaultRequestTimeout)
	def(&c.BatchTimeout, DefaultBatchTimeout)
	defInt(&c.BatchSize, DefaultBatchSize)
	defInt(&c.MaxMessageBytes, DefaultMaxMessageBytes)
	def(&c.SessionTimeout, DefaultSessionTimeout)
	def(&c.HeartbeatInterval, DefaultHeartbeatInterval)
	def(&c.RebalanceTimeout, DefaultRebalanceTimeout)
	def(&c.RevokeTimeout, DefaultRevokeTimeout)
	def(&c.JoinGroupBackoff, DefaultJoinGroupBackoff)
	def(&c.MaxWait, DefaultMaxWait)
	defInt(&c.FetchMaxBytes, DefaultFetchMaxBytes)
	defInt(&c.QueueCapacity, DefaultQueueCapacity)
	return c
}

// Validate reports a configuration that cannot work. Errors wrap driver.ErrInvalidConfig
// and never contain the password.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: kafka: "+format, append([]any{driver.ErrInvalidConfig}, args...)...)
	}
	if len(c.Brokers) == 0 {
		return bad("no brokers given")
	}
	for _, b := range c.Brokers {
		host, port, err := net.SplitHostPort(b)
		if err != nil || host == "" {
			return bad("broker %q is not host:port", b)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return bad("broker %q has no valid port", b)
		}
	}
	if s := c.SASL; s != nil {
		switch s.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return bad("SASL mechanism %q; use %s, %s or %s", s.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		if s.Username == "" || s.Password == "" {
			return bad("SASL %s needs a username and a password", s.Mechanism)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"DialTimeout", c.DialTimeout}, {"RequestTimeout", c.RequestTimeout}, {"BatchTimeout", c.BatchTimeout},
		{"SessionTimeout", c.SessionTimeout}, {"HeartbeatInterval", c.HeartbeatInterval},
		{"RebalanceTimeout", c.RebalanceTimeout}, {"RevokeTimeout", c.RevokeTimeout},
		{"JoinGroupBackoff", c.JoinGroupBackoff}, {"MaxWait", c.MaxWait},
	} {
		if d.v < 0 {
			return bad("%s %v is negative", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{
		{"Partitions", c.Partitions}, {"ReplicationFactor", c.ReplicationFactor}, {"BatchSize", c.BatchSize},
		{"MaxMessageBytes", c.MaxMessageBytes}, {"FetchMaxBytes", c.FetchMaxBytes}, {"QueueCapacity", c.QueueCapacity},
	} {
		if n.v < 0 {
			return bad("%s %d is negative", n.name, n.v)
		}
	}
	if c.ReplicationFactor > 32767 {
		return bad("ReplicationFactor %d is too large", c.ReplicationFactor)
	}
	if c.Acks != AcksAll && c.Acks != AcksLeader {
		return bad("unknown Acks %d", c.Acks)
	}
	if c.StartOffset != StartEarliest && c.StartOffset != StartLatest {
		return bad("unknown StartOffset %d", c.StartOffset)
	}
	switch c.Compression {
	case CompressionNone, CompressionGzip, CompressionSnappy, CompressionLZ4, CompressionZstd:
	default:
		return bad("unknown compression %q (use gzip, snappy, lz4 or zstd)", c.Compression)
	}
	d := c.withDefaults()
	if d.HeartbeatInterval >= d.SessionTimeout {
		return bad("HeartbeatInterval %v must be below SessionTimeout %v", d.HeartbeatInterval, d.SessionTimeout)
	}
	if d.RevokeTimeout >= d.RebalanceTimeout {
		return bad("RevokeTimeout %v must be below RebalanceTimeout %v", d.RevokeTimeout, d.RebalanceTimeout)
	}
	if d.FetchMaxBytes < d.MaxMessageBytes {
		return bad("FetchMaxBytes %d is below MaxMessageBytes %d: a large message could not be fetched", d.FetchMaxBytes, d.MaxMessageBytes)
	}
	return nil
}

// batchBytes is the writer's limit on one partition's produce request, and so on one
// record's encoded size. It stays at kafka-go's default, 1 MiB (just under the broker's
// default message.max.bytes), unless MaxMessageBytes was raised near or above it; it keeps
// 32 KiB above MaxMessageBytes for record overhead and header framing.
func (c *Config) batchBytes() int64 {
	return max(1<<20, int64(c.MaxMessageBytes)+32<<10)
}

// urlParams lists the parameters ConfigFromURL understands, for its error message.
var urlParams = []string{
	"brokers", "client_id", "sasl", "tls", "tls_ca_file", "tls_cert_file", "tls_key_file",
	"tls_server_name", "tls_insecure_skip_verify", "dial_timeout", "request_timeout",
	"create_topics", "partitions", "replication_factor", "acks", "batch_timeout", "batch_size",
	"max_message_bytes", "compression", "start_offset", "session_timeout", "heartbeat_interval",
	"rebalance_timeout", "revoke_timeout", "join_group_backoff", "max_wait", "fetch_max_bytes",
	"queue_capacity", "isolation",
}

// ConfigFromURL reads a Config from a kafka:// URL:
//
//	kafka://[user:password@]host1:9092[,host2:9092…][?param=value&…]
//
// A host without a port gets 9092, except the last of several: net/url reads what follows
// the last colon as the port, so "h1:9092,h2" does not parse. The brokers parameter is an
// alternative list, needed when an IPv6 address starts a list ("[::1]:9092,h2:9092" does not
// parse as a URL host either).
// Credentials in the user part require sasl=plain, scram-sha-256 or scram-sha-512.
//
// Parameters (durations in Go syntax, "250ms"): brokers, client_id, sasl, tls (true: system
// roots), tls_ca_file, tls_cert_file + tls_key_file (client certificate), tls_server_name,
// tls_insecure_skip_verify, dial_timeout, request_timeout, create_topics (false: a missing
// topic is an error), partitions, replication_factor, acks (all | leader), batch_timeout,
// batch_size, max_message_bytes, compression (none | gzip | snappy | lz4 | zstd),
// start_offset (earliest | latest), session_timeout, heartbeat_interval, rebalance_timeout,
// revoke_timeout, join_group_backoff, max_wait, fetch_max_bytes, queue_capacity, isolation
// (read_committed | read_uncommitted). An unknown parameter is an error wrapping
// driver.ErrInvalidURL; so is a bad value. Errors never contain the password.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: kafka: "+format, append([]any{driver.ErrInvalidURL}, args...)...)
	}
	if u == nil {
		return bad("nil URL")
	}
	if u.Scheme != "kafka" {
		return bad("scheme %q; want kafka", u.Scheme)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return bad("unexpected path or fragment; the form is kafka://host:9092[,host2:9092][?params]")
	}
	if u.Host != "" {
		hosts := strings.Split(u.Host, ",")
		for _, h := range hosts {
			b, err := brokerAddr(h)
			if err != nil {
				return bad("%v", err)
			}
			cfg.Brokers = append(cfg.Brokers, b)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %s", err.Error())
	}
	var tlsOn, insecure bool
	var caFile, certFile, keyFile, serverName, mechanism string
	for k, vs := range q {
		if len(vs) != 1 {
			return bad("parameter %s given %d times", k, len(vs))
		}
		v := vs[0]
		dur := func(dst *time.Duration) error {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return fmt.Errorf("%s=%q is not a positive duration (e.g. 250ms, 5s)", k, v)
			}
			*dst = d
			return nil
		}
		num := func(dst *int) error {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				return fmt.Errorf("%s=%q is not a positive integer", k, v)
			}
			*dst = n
			return nil
		}
		boolean := func(dst *bool) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%s=%q is not true or false", k, v)
			}
			*dst = b
			return nil
		}
		var perr error
		switch k {
		case "brokers":
			for _, h := range strings.Split(v, ",") {
				b, err := brokerAddr(strings.TrimSpace(h))
				if err != nil {
					return bad("%v", err)
				}
				cfg.Brokers = append(cfg.Brokers, b)
			}
		case "client_id":
			cfg.ClientID = v
		case "sasl":
			switch strings.ToLower(v) {
			case "plain":
				mechanism = SASLPlain
			case "scram-sha-256":
				mechanism = SASLScramSHA256
			case "scram-sha-512":
				mechanism = SASLScramSHA512
			default:
				return bad("sasl=%q; use plain, scram-sha-256 or scram-sha-512", v)
			}
		case "tls":
			perr = boolean(&tlsOn)
		case "tls_ca_file":
			caFile = v
		case "tls_cert_file":
			certFile = v
		case "tls_key_file":
			keyFile = v
		case "tls_server_name":
			serverName = v
		case "tls_insecure_skip_verify":
			perr = boolean(&insecure)
		case "dial_timeout":
			perr = dur(&cfg.DialTimeout)
		case "request_timeout":
			perr = dur(&cfg.RequestTimeout)
		case "create_topics":
			var create bool
			perr = boolean(&create)
			cfg.DisableTopicCreation = !create
		case "partitions":
			perr = num(&cfg.Partitions)
		case "replication_factor":
			perr = num(&cfg.ReplicationFactor)
		case "acks":
			switch v {
			case "all", "-1":
				cfg.Acks = AcksAll
			case "leader", "1":
				cfg.Acks = AcksLeader
			default:
				perr = fmt.Errorf("acks=%q; use all or leader (Courier never publishes without acknowledgement)", v)
			}
		case "batch_timeout":
			perr = dur(&cfg.BatchTimeout)
		case "batch_size":
			perr = num(&cfg.BatchSize)
		case "max_message_bytes":
			perr = num(&cfg.MaxMessageBytes)
		case "compression":
			if v == "none" {
				v = ""
			}
			cfg.Compression = Compression(v)
		case "start_offset":
			switch v {
			case "earliest", "first":
				cfg.StartOffset = StartEarliest
			case "latest", "last":
				cfg.StartOffset = StartLatest
			default:
				perr = fmt.Errorf("start_offset=%q; use earliest or latest", v)
			}
		case "session_timeout":
			perr = dur(&cfg.SessionTimeout)
		case "heartbeat_interval":
			perr = dur(&cfg.HeartbeatInterval)
		case "rebalance_timeout":
			perr = dur(&cfg.RebalanceTimeout)
		case "revoke_timeout":
			perr = dur(&cfg.RevokeTimeout)
		case "join_group_backoff":
			perr = dur(&cfg.JoinGroupBackoff)
		case "max_wait":
			perr = dur(&cfg.MaxWait)
		case "fetch_max_bytes":
			perr = num(&cfg.FetchMaxBytes)
		case "queue_capacity":
			perr = num(&cfg.QueueCapacity)
		case "isolation":
			switch v {
			case "read_committed":
				cfg.ReadUncommitted = false
			case "read_uncommitted":
				cfg.ReadUncommitted = true
			default:
				perr = fmt.Errorf("isolation=%q; use read_committed or read_uncommitted", v)
			}
		default:
			return bad("unknown parameter %q (known: %s)", k, strings.Join(urlParams, ", "))
		}
		if perr != nil {
			return bad("%v", perr)
		}
	}
	if len(cfg.Brokers) == 0 {
		return bad("no broker given; the form is kafka://host:9092[,host2:9092]")
	}
	if u.User != nil {
		if mechanism == "" {
			return bad("credentials given but no SASL mechanism; add sasl=plain, sasl=scram-sha-256 or sasl=scram-sha-512")
		}
		pass, _ := u.User.Password()
		cfg.SASL = &SASL{Mechanism: mechanism, Username: u.User.Username(), Password: pass}
	} else if mechanism != "" {
		return bad("sasl=%s needs credentials: kafka://user:password@host:9092", strings.ToLower(mechanism))
	}
	if tlsOn || caFile != "" || certFile != "" || keyFile != "" || serverName != "" || insecure {
		tc, err := tlsConfig(caFile, certFile, keyFile, serverName, insecure)
		if err != nil {
			return bad("%v", err)
		}
		cfg.TLS = tc
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, nil
}

// brokerAddr checks one bootstrap address and adds the default port where it is missing.
func brokerAddr(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("empty broker address")
	}
	host, port, err := net.SplitHostPort(h)
	if err != nil {
		if strings.Contains(h, ":") && !strings.HasPrefix(h, "[") {
			return "", fmt.Errorf("broker %q: want host:port", h)
		}
		host, port = strings.Trim(h, "[]"), DefaultPort
	}
	if host == "" {
		return "", fmt.Errorf("broker %q has no host", h)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("broker %q: port %q is not a number from 1 to 65535", h, port)
	}
	return net.JoinHostPort(host, port), nil
}

func tlsConfig(caFile, certFile, keyFile, serverName string, insecure bool) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName, InsecureSkipVerify: insecure} //nolint:gosec // opt-in via tls_insecure_skip_verify
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("tls_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca_file %q holds no PEM certificate", caFile)
		}
		tc.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("tls_cert_file and tls_key_file go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// String describes the configuration without secrets, for logs.
func (c Config) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "brokers=%s", strings.Join(c.Brokers, ","))
	if c.TLS != nil {
		b.WriteString(" tls=on")
	}
	if c.SASL != nil {
		fmt.Fprintf(&b, " sasl=%s user=%s", c.SASL.Mechanism, c.SASL.Username)
	}
	return b.String()
}
