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

	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"
)

// Defaults for Config. Each applies when the field is left zero.
const (
	DefaultClientID          = "courier"
	DefaultPort              = "9092"
	DefaultDialTimeout       = 5 * time.Second
	DefaultRequestTimeout    = 10 * time.Second
	DefaultBatchTimeout      = 50 * time.Microsecond
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
	// sent. It is also the extra latency of a lone publish. Default 50µs: Courier's publisher
	// already merges concurrent Publish calls into one batch per call (transport coalescing),
	// so waiting for company here only delays them; kafka-go's own default is 1s.
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

	// urlNotes are ConfigFromURL's deprecation notes, logged by New.
	urlNotes []string
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

// fromURL is what ConfigFromURL fills: the Config and the parts of TLS and SASL that are
// combined once every parameter is read.
type fromURL struct {
	Config
	tlsOn, insecure                       bool
	caFile, certFile, keyFile, serverName string
	mechanism                             string
}

func durationParam(name, def, doc string, f func(*Config) *time.Duration) urlparam.Param[fromURL] {
	return urlparam.Param[fromURL]{Name: name, Kind: urlparam.Duration, Default: def, Doc: doc,
		Set: urlparam.SetDuration(func(c *fromURL) *time.Duration { return f(&c.Config) })}
}

func intParam(name, def, doc string, f func(*Config) *int) urlparam.Param[fromURL] {
	return urlparam.Param[fromURL]{Name: name, Kind: urlparam.Int, Min: 1, Default: def, Doc: doc,
		Set: urlparam.SetInt(func(c *fromURL) *int { return f(&c.Config) })}
}

// urlParams are the parameters ConfigFromURL understands.
var urlParams = urlparam.Table[fromURL]{
	Scheme: "kafka",
	Params: []urlparam.Param[fromURL]{
		{Name: "brokers", Kind: urlparam.List, Doc: "more bootstrap servers, `host:port,…` (needed when an IPv6 address starts the list)",
			Set: func(c *fromURL, v urlparam.Value) error {
				for _, h := range v.List {
					b, err := brokerAddr(h)
					if err != nil {
						return err
					}
					c.Brokers = append(c.Brokers, b)
				}
				return nil
			}},
		{Name: "client_id", Kind: urlparam.String, Default: DefaultClientID, Doc: "client ID sent with every request",
			Set: urlparam.SetString(func(c *fromURL) *string { return &c.ClientID })},
		{Name: "sasl", Kind: urlparam.String, Doc: "`plain`, `scram-sha-256` or `scram-sha-512`, with the URL's user and password", Set: setSASL},
		{Name: "tls", Kind: urlparam.Bool, Default: "false", Doc: "TLS with the system's roots",
			Set: urlparam.SetBool(func(c *fromURL) *bool { return &c.tlsOn })},
		{Name: "tls_ca_file", Kind: urlparam.String, Doc: "PEM file of the CA certificates to trust",
			Set: urlparam.SetString(func(c *fromURL) *string { return &c.caFile })},
		{Name: "tls_cert_file", Kind: urlparam.String, Doc: "PEM client certificate (with `tls_key_file`)",
			Set: urlparam.SetString(func(c *fromURL) *string { return &c.certFile })},
		{Name: "tls_key_file", Kind: urlparam.String, Doc: "PEM client key (with `tls_cert_file`)",
			Set: urlparam.SetString(func(c *fromURL) *string { return &c.keyFile })},
		{Name: "tls_server_name", Kind: urlparam.String, Doc: "server name to verify (default: the broker's host)",
			Set: urlparam.SetString(func(c *fromURL) *string { return &c.serverName })},
		{Name: "tls_insecure_skip_verify", Kind: urlparam.Bool, Default: "false", Doc: "do not verify the brokers' certificates (tests only)",
			Set: urlparam.SetBool(func(c *fromURL) *bool { return &c.insecure })},
		durationParam("dial_timeout", DefaultDialTimeout.String(), "bound on one connection attempt (TCP, TLS, SASL)", func(c *Config) *time.Duration { return &c.DialTimeout }),
		durationParam("request_timeout", DefaultRequestTimeout.String(), "bound on metadata and topic-creation requests and Open's check", func(c *Config) *time.Duration { return &c.RequestTimeout }),
		{Name: "create", Aliases: []string{"create_topics"}, Kind: urlparam.Bool, Default: "true", Doc: "create missing topics (`false`: a missing topic is an error)",
			Set: urlparam.SetNotBool(func(c *fromURL) *bool { return &c.DisableTopicCreation })},
		intParam("partitions", "broker's", "partitions of the topics Courier creates", func(c *Config) *int { return &c.Partitions }),
		intParam("replication_factor", "broker's", "replication factor of the topics Courier creates", func(c *Config) *int { return &c.ReplicationFactor }),
		{Name: "acks", Kind: urlparam.String, Default: "all", Doc: "`all` (every in-sync replica) or `leader`", Set: setAcks},
		durationParam("batch_timeout", DefaultBatchTimeout.String(), "how long a partition's batch waits for more records", func(c *Config) *time.Duration { return &c.BatchTimeout }),
		intParam("batch_size", strconv.Itoa(DefaultBatchSize), "most records per partition in one produce request", func(c *Config) *int { return &c.BatchSize }),
		intParam("max_message_bytes", strconv.Itoa(DefaultMaxMessageBytes), "largest message Publish accepts", func(c *Config) *int { return &c.MaxMessageBytes }),
		{Name: "compression", Kind: urlparam.String, Default: "none", Doc: "`none`, `gzip`, `snappy`, `lz4` or `zstd`",
			Set: func(c *fromURL, v urlparam.Value) error {
				if c.Compression = Compression(v.Raw); v.Raw == "none" {
					c.Compression = CompressionNone
				}
				return nil
			}},
		{Name: "start_offset", Kind: urlparam.String, Default: "earliest", Doc: "where a new subscription starts: `earliest` or `latest`", Set: setStartOffset},
		durationParam("session_timeout", DefaultSessionTimeout.String(), "a member silent this long leaves its group", func(c *Config) *time.Duration { return &c.SessionTimeout }),
		durationParam("heartbeat_interval", DefaultHeartbeatInterval.String(), "interval between group heartbeats", func(c *Config) *time.Duration { return &c.HeartbeatInterval }),
		durationParam("rebalance_timeout", DefaultRebalanceTimeout.String(), "how long a rebalance waits for members to rejoin", func(c *Config) *time.Duration { return &c.RebalanceTimeout }),
		durationParam("revoke_timeout", DefaultRevokeTimeout.String(), "wait for handlers of revoked partitions (below rebalance_timeout)", func(c *Config) *time.Duration { return &c.RevokeTimeout }),
		durationParam("join_group_backoff", DefaultJoinGroupBackoff.String(), "pause after a failed attempt to join a group", func(c *Config) *time.Duration { return &c.JoinGroupBackoff }),
		durationParam("max_wait", DefaultMaxWait.String(), "how long a fetch waits at the broker for records", func(c *Config) *time.Duration { return &c.MaxWait }),
		intParam("fetch_max_bytes", strconv.Itoa(DefaultFetchMaxBytes), "most bytes one fetch returns per partition", func(c *Config) *int { return &c.FetchMaxBytes }),
		intParam("queue_capacity", strconv.Itoa(DefaultQueueCapacity), "records a subscriber buffers ahead", func(c *Config) *int { return &c.QueueCapacity }),
		{Name: "isolation", Kind: urlparam.String, Default: "read_committed", Doc: "`read_committed` or `read_uncommitted`",
			Set: func(c *fromURL, v urlparam.Value) error {
				switch v.Raw {
				case "read_committed", "read_uncommitted":
					c.ReadUncommitted = v.Raw == "read_uncommitted"
					return nil
				}
				return fmt.Errorf("use read_committed or read_uncommitted")
			}},
	},
}

func setSASL(c *fromURL, v urlparam.Value) error {
	switch strings.ToLower(v.Raw) {
	case "plain":
		c.mechanism = SASLPlain
	case "scram-sha-256":
		c.mechanism = SASLScramSHA256
	case "scram-sha-512":
		c.mechanism = SASLScramSHA512
	default:
		return fmt.Errorf("use plain, scram-sha-256 or scram-sha-512")
	}
	return nil
}

func setAcks(c *fromURL, v urlparam.Value) error {
	switch v.Raw {
	case "all", "-1":
		c.Acks = AcksAll
	case "leader", "1":
		c.Acks = AcksLeader
	default:
		return fmt.Errorf("use all or leader (Courier never publishes without acknowledgement)")
	}
	return nil
}

func setStartOffset(c *fromURL, v urlparam.Value) error {
	switch v.Raw {
	case "earliest", "first":
		c.StartOffset = StartEarliest
	case "latest", "last":
		c.StartOffset = StartLatest
	default:
		return fmt.Errorf("use earliest or latest")
	}
	return nil
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
// The parameters are those of urlParams, listed with their defaults in the README ("Brokers
// and URLs"); durations are Go durations ("250ms"). create_topics is the deprecated spelling
// of create (a warning is logged when the connection opens). An unknown parameter is an
// error wrapping driver.ErrInvalidURL that lists the valid ones; so is a bad value. Errors
// never contain the password.
func ConfigFromURL(u *url.URL) (Config, error) {
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
	var p fromURL
	if u.Host != "" {
		for _, h := range strings.Split(u.Host, ",") {
			b, err := brokerAddr(h)
			if err != nil {
				return bad("%v", err)
			}
			p.Brokers = append(p.Brokers, b)
		}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return bad("query: %s", err.Error())
	}
	_, notes, err := urlParams.Parse(q, &p)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	cfg, err := p.finish(u)
	if err != nil {
		return bad("%v", err)
	}
	cfg.urlNotes = notes
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, nil
}

// finish combines the credentials of u and the TLS parameters into the Config.
func (p *fromURL) finish(u *url.URL) (Config, error) {
	cfg := p.Config
	if len(cfg.Brokers) == 0 {
		return cfg, fmt.Errorf("no broker given; the form is kafka://host:9092[,host2:9092]")
	}
	if u.User != nil {
		if p.mechanism == "" {
			return cfg, fmt.Errorf("credentials given but no SASL mechanism; add sasl=plain, sasl=scram-sha-256 or sasl=scram-sha-512")
		}
		pass, _ := u.User.Password()
		cfg.SASL = &SASL{Mechanism: p.mechanism, Username: u.User.Username(), Password: pass}
	} else if p.mechanism != "" {
		return cfg, fmt.Errorf("sasl=%s needs credentials: kafka://user:password@host:9092", strings.ToLower(p.mechanism))
	}
	if p.tlsOn || p.caFile != "" || p.certFile != "" || p.keyFile != "" || p.serverName != "" || p.insecure {
		tc, err := tlsConfig(p.caFile, p.certFile, p.keyFile, p.serverName, p.insecure)
		if err != nil {
			return cfg, err
		}
		cfg.TLS = tc
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
