package rabbitmq

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/courierhq/courier/internal/confcheck"
	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"
)

// QueueType selects the kind of queue a subscription is declared as.
type QueueType string

// Queue types.
const (
	// Classic is RabbitMQ's classic queue: fastest, single node. Redeliveries after a
	// requeue are only flagged (Delivery.Redelivered), not counted.
	Classic QueueType = "classic"
	// Quorum is a replicated queue (Raft). It counts deliveries (x-delivery-count), so
	// Message.Attempt is exact across requeues and restarts.
	Quorum QueueType = "quorum"
)

// Defaults for Config. Each applies when the field is zero.
const (
	// DefaultExchangeType is the type of the exchange a topic is declared as.
	DefaultExchangeType = "topic"
	// DefaultMaxMessageBytes is the largest message published (message.Size). RabbitMQ
	// 3.10's own default limit (max_message_size) is 128 MiB; 16 MiB keeps memory use of
	// a busy broker sane.
	DefaultMaxMessageBytes = 16 << 20
	// DefaultMaxHeaderValueBytes is the longest header value accepted. All headers of a
	// message also have to fit one AMQP frame (128 KiB by default); Publish checks that.
	DefaultMaxHeaderValueBytes = 64 << 10
	// DefaultPublishChannels is how many shared confirm-mode channels publish.
	DefaultPublishChannels = 8
	// DefaultMaxInFlight is how many unconfirmed messages one publish call keeps in
	// flight before waiting for confirms.
	DefaultMaxInFlight = 1024
	// DefaultDialTimeout bounds one TCP connect plus the TLS and AMQP handshakes.
	DefaultDialTimeout = 30 * time.Second
	// DefaultHeartbeat is the AMQP heartbeat interval: a dead peer is detected after about
	// two intervals.
	DefaultHeartbeat = 10 * time.Second
	// DefaultReconnectDelay is the first wait before re-dialling a lost connection; it
	// doubles per failed attempt up to DefaultMaxReconnectDelay.
	DefaultReconnectDelay = 100 * time.Millisecond
	// DefaultMaxReconnectDelay caps the wait between re-dial attempts.
	DefaultMaxReconnectDelay = 5 * time.Second
	// DefaultConnectionName is the client-provided connection name shown by RabbitMQ's
	// management tools; " (publish)" or " (consume)" is appended.
	DefaultConnectionName = "courier"
)

// maxBrokerMessageBytes is RabbitMQ's hard ceiling for max_message_size (512 MiB).
const maxBrokerMessageBytes = 512 << 20

// maxShortString is the AMQP limit for exchange and queue names, routing keys, message IDs
// and header names.
const maxShortString = 255

// Config configures a connection to RabbitMQ. Only URL is required; every other zero field
// takes the documented default.
type Config struct {
	// URL is amqp://user:password@host:port/vhost or amqps://… (TLS). The vhost is the
	// path, percent-encoded ("/" is "%2F"; an empty path is the default vhost "/").
	// Query parameters understood by amqp091-go may be given: auth_mechanism, channel_max,
	// certfile, keyfile, cacertfile, server_name_indication (TLS client certificate, CA
	// and SNI for amqps). Required. It is never logged; errors show it redacted.
	URL string

	// TLS is used for amqps URLs instead of the TLS parameters of the URL. Its ServerName
	// defaults to the URL's host. It is cloned, never modified.
	TLS *tls.Config

	// ExchangeType is the type of the exchange each topic is declared as: "topic"
	// (default), "fanout" or "direct". Subscriptions bind with "#" on a topic exchange
	// (every message), with "" on the others. On a direct exchange only messages whose
	// Key is empty reach Courier's subscriptions.
	ExchangeType string

	// QueueType is the type of the queues subscriptions are declared as: Classic (default)
	// or Quorum.
	QueueType QueueType

	// QueueName names the queue of a subscription. Queue names are global to a vhost, while
	// Courier's subscription names belong to a topic, so the default, DefaultQueueName, is
	// topic + "." + subscription. The result must be at most 255 bytes.
	QueueName func(topic, subscription string) string

	// SingleActiveConsumer declares every subscription queue with
	// x-single-active-consumer: of the subscribers sharing a subscription only one receives
	// at a time, the others stand by, so each key's order holds across processes. Off by
	// default: then subscribers compete for messages and per-key order holds within each
	// subscriber only. It applies whether or not a subscriber disables ordering, because a
	// queue's arguments are fixed when it is first declared.
	SingleActiveConsumer bool

	// PrecisePublishTime carries Message.PublishTime with nanosecond precision in the
	// courier-published header. By default it travels only in the AMQP timestamp property,
	// which AMQP defines in whole seconds (the field every AMQP client reads), so received
	// messages have PublishTime truncated to the second: the header costs about 30 bytes per
	// message on the broker's disk and measurably lowers pipelined publish throughput.
	PrecisePublishTime bool

	// ReportUnroutable publishes with the mandatory flag, so that a message no queue is bound
	// for (a topic nobody subscribed to yet) fails with driver.ErrUnroutable. Default false:
	// like Pub/Sub and memory://, the broker drops it and Publish succeeds — Courier's
	// portable behaviour for a topic without subscriptions (see the README, "Portability").
	ReportUnroutable bool

	// MaxMessageBytes is the largest message accepted (message.Size: payload, key, ID and
	// headers). Default DefaultMaxMessageBytes (16 MiB); at most 512 MiB. Keep it at or
	// below the broker's max_message_size, or the broker refuses such messages itself
	// (they then fail with ErrMessageTooLarge too, naming the broker's limit).
	MaxMessageBytes int

	// MaxHeaderValueBytes is the longest header value accepted. Default
	// DefaultMaxHeaderValueBytes (64 KiB).
	MaxHeaderValueBytes int

	// PublishChannels is how many confirm-mode channels the publish connection opens (as
	// they are needed). Concurrent publish calls share them in turn: a call publishes its
	// batch on one and waits for its confirms without holding it, so confirms of concurrent
	// calls are pipelined. Default DefaultPublishChannels (8).
	PublishChannels int

	// MaxInFlight is the most unconfirmed messages of one publish call. Default
	// DefaultMaxInFlight (1024).
	MaxInFlight int

	// DialTimeout bounds each connection attempt. Default DefaultDialTimeout (30s).
	DialTimeout time.Duration

	// Heartbeat is the AMQP heartbeat interval; at least one second. Default
	// DefaultHeartbeat (10s).
	Heartbeat time.Duration

	// ReconnectDelay is the wait before the first re-dial after a lost connection; it
	// doubles (with jitter) up to MaxReconnectDelay. Defaults DefaultReconnectDelay
	// (100ms) and DefaultMaxReconnectDelay (5s).
	ReconnectDelay    time.Duration
	MaxReconnectDelay time.Duration

	// ConnectionName is shown by RabbitMQ's management tools. Default
	// DefaultConnectionName.
	ConnectionName string

	// Logger receives the adapter's log lines (reconnects, lost consumers). Payloads and
	// credentials are never logged. Default slog.Default(); a connection opened by
	// transport.Open gets the connection's logger (transport.ConnConfig.Logger).
	Logger *slog.Logger

	// urlNotes are ConfigFromURL's deprecation notes, logged by New.
	urlNotes []string
}

// DefaultQueueName is the default Config.QueueName: topic + "." + subscription.
func DefaultQueueName(topic, subscription string) string { return topic + "." + subscription }

var exchangeTypes = []string{"topic", "fanout", "direct"}

// Validate reports a configuration that cannot work. Errors wrap driver.ErrInvalidConfig
// and never contain the URL's password.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: rabbitmq: "+format, append([]any{driver.ErrInvalidConfig}, args...)...)
	}
	if strings.TrimSpace(c.URL) == "" {
		return bad("URL is required (amqp://user:password@host:port/vhost)")
	}
	if _, err := parseURI(c.URL); err != nil {
		return bad("%v", err)
	}
	if err := confcheck.NonNegative(confcheck.Int("MaxHeaderValueBytes", c.MaxHeaderValueBytes),
		confcheck.Int("MaxInFlight", c.MaxInFlight), confcheck.Dur("DialTimeout", c.DialTimeout)); err != nil {
		return bad("%v", err)
	}
	switch {
	case c.ExchangeType != "" && !slices.Contains(exchangeTypes, c.ExchangeType):
		return bad("ExchangeType %q is not one of %s", c.ExchangeType, strings.Join(exchangeTypes, ", "))
	case c.QueueType != "" && c.QueueType != Classic && c.QueueType != Quorum:
		return bad("QueueType %q is not %q or %q", c.QueueType, Classic, Quorum)
	case c.MaxMessageBytes < 0 || c.MaxMessageBytes > maxBrokerMessageBytes:
		return bad("MaxMessageBytes %d is outside 0..%d (RabbitMQ's ceiling)", c.MaxMessageBytes, maxBrokerMessageBytes)
	case c.PublishChannels < 0 || c.PublishChannels > 1024:
		return bad("PublishChannels %d is outside 0..1024", c.PublishChannels)
	case c.Heartbeat != 0 && c.Heartbeat < time.Second:
		return bad("Heartbeat %v is below one second", c.Heartbeat)
	case c.Heartbeat > 65535*time.Second:
		return bad("Heartbeat %v is above 65535s", c.Heartbeat)
	case c.ReconnectDelay < 0 || c.MaxReconnectDelay < 0:
		return bad("reconnect delays must not be negative")
	case c.ReconnectDelay != 0 && c.MaxReconnectDelay != 0 && c.ReconnectDelay > c.MaxReconnectDelay:
		return bad("ReconnectDelay %v exceeds MaxReconnectDelay %v", c.ReconnectDelay, c.MaxReconnectDelay)
	}
	return nil
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	if c.ExchangeType == "" {
		c.ExchangeType = DefaultExchangeType
	}
	if c.QueueType == "" {
		c.QueueType = Classic
	}
	if c.QueueName == nil {
		c.QueueName = DefaultQueueName
	}
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxHeaderValueBytes == 0 {
		c.MaxHeaderValueBytes = DefaultMaxHeaderValueBytes
	}
	if c.PublishChannels == 0 {
		c.PublishChannels = DefaultPublishChannels
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ReconnectDelay == 0 {
		c.ReconnectDelay = DefaultReconnectDelay
	}
	if c.MaxReconnectDelay == 0 {
		c.MaxReconnectDelay = max(DefaultMaxReconnectDelay, c.ReconnectDelay)
	}
	if c.ConnectionName == "" {
		c.ConnectionName = DefaultConnectionName
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// parseURI parses an AMQP URL without ever repeating it (url.Parse errors quote the input,
// password included).
func parseURI(raw string) (amqp.URI, error) {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return amqp.URI{}, fmt.Errorf("cannot parse URL %s: %v (a password with reserved characters must be percent-encoded)", driver.RedactURL(raw), err)
	}
	if u.Scheme != "amqp" && u.Scheme != "amqps" {
		return amqp.URI{}, fmt.Errorf("URL %s: scheme must be amqp or amqps", driver.RedactURL(raw))
	}
	uri, err := amqp.ParseURI(raw)
	if err != nil {
		return amqp.URI{}, fmt.Errorf("URL %s: %v", driver.RedactURL(raw), sanitize(err.Error(), u))
	}
	return uri, nil
}

// sanitize removes the URL's password from a message, in case a library quoted it.
func sanitize(msg string, u *url.URL) string {
	if u == nil || u.User == nil {
		return msg
	}
	if p, ok := u.User.Password(); ok && p != "" {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return msg
}

// urlParams are the URL parameters ConfigFromURL understands: Courier's own (moved into
// Config) and, as passthrough, amqp091-go's (left in Config.URL).
var urlParams = urlparam.Table[Config]{
	Scheme: "rabbitmq",
	Params: []urlparam.Param[Config]{
		{Name: "exchange_type", Kind: urlparam.String, Default: DefaultExchangeType, Doc: "`topic`, `fanout` or `direct`: the exchange a topic is declared as",
			Set: func(c *Config, v urlparam.Value) error { c.ExchangeType = v.Raw; return nil }},
		{Name: "queue_type", Kind: urlparam.String, Default: string(Classic), Doc: "`classic` or `quorum`: the queues subscriptions are declared as",
			Set: func(c *Config, v urlparam.Value) error { c.QueueType = QueueType(v.Raw); return nil }},
		{Name: "single_active_consumer", Kind: urlparam.Bool, Default: "false", Doc: "one active consumer per subscription queue (order across processes)",
			Set: urlparam.SetBool(func(c *Config) *bool { return &c.SingleActiveConsumer })},
		{Name: "precise_publish_time", Kind: urlparam.Bool, Default: "false", Doc: "carry PublishTime in nanoseconds in a header (else whole seconds)",
			Set: urlparam.SetBool(func(c *Config) *bool { return &c.PrecisePublishTime })},
		{Name: "max_message_bytes", Kind: urlparam.Int, Default: "16777216", Doc: "largest message accepted (at most 512 MiB)",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.MaxMessageBytes })},
		{Name: "max_header_value_bytes", Kind: urlparam.Int, Default: "65536", Doc: "longest header value accepted",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.MaxHeaderValueBytes })},
		{Name: "publish_channels", Kind: urlparam.Int, Default: "8", Doc: "shared confirm-mode channels publishing",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.PublishChannels })},
		{Name: "max_in_flight", Kind: urlparam.Int, Default: "1024", Doc: "unconfirmed messages per publish call",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.MaxInFlight })},
		{Name: "heartbeat", Kind: urlparam.Duration, LegacyUnit: time.Second, Default: DefaultHeartbeat.String(), Doc: "AMQP heartbeat interval, at least 1s",
			Set: urlparam.SetDuration(func(c *Config) *time.Duration { return &c.Heartbeat })},
		{Name: "dial_timeout", Aliases: []string{"connection_timeout"}, Kind: urlparam.Duration, LegacyUnit: time.Millisecond,
			Default: DefaultDialTimeout.String(), Doc: "bound on one connection attempt (TCP, TLS, AMQP handshake)",
			Set: urlparam.SetDuration(func(c *Config) *time.Duration { return &c.DialTimeout })},
		{Name: "reconnect_delay", Kind: urlparam.Duration, Default: DefaultReconnectDelay.String(), Doc: "first wait before re-dialling a lost connection",
			Set: urlparam.SetDuration(func(c *Config) *time.Duration { return &c.ReconnectDelay })},
		{Name: "max_reconnect_delay", Kind: urlparam.Duration, Default: DefaultMaxReconnectDelay.String(), Doc: "cap of the doubling re-dial wait",
			Set: urlparam.SetDuration(func(c *Config) *time.Duration { return &c.MaxReconnectDelay })},
		{Name: "connection_name", Kind: urlparam.String, Default: DefaultConnectionName, Doc: "connection name shown by RabbitMQ's management tools",
			Set: urlparam.SetString(func(c *Config) *string { return &c.ConnectionName })},
	},
	Passthrough: []string{"auth_mechanism", "channel_max", "certfile", "keyfile", "cacertfile", "server_name_indication"},
}

// ConfigFromURL reads a Config from an amqp:// or amqps:// URL:
//
//	amqp://user:password@host:5672/vhost?queue_type=quorum&max_in_flight=2048
//
// Besides amqp091-go's own parameters (auth_mechanism, channel_max, certfile, keyfile,
// cacertfile, server_name_indication), which stay in Config.URL, it understands the
// parameters of urlParams, listed with their defaults in the README ("Brokers and URLs"):
// exchange_type, queue_type, single_active_consumer, precise_publish_time,
// max_message_bytes, max_header_value_bytes, publish_channels, max_in_flight, heartbeat,
// dial_timeout, reconnect_delay, max_reconnect_delay, connection_name. Durations are Go
// durations ("15s"); the old spellings connection_timeout (for dial_timeout) and bare
// integers for heartbeat (seconds) and connection_timeout (milliseconds) still work, with a
// deprecation warning logged when the connection opens.
//
// Unknown parameters are an error (wrapping driver.ErrInvalidURL) that lists the known
// ones. A parameter given twice is an error.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	if u == nil {
		return cfg, fmt.Errorf("%w: rabbitmq: nil URL", driver.ErrInvalidURL)
	}
	rest, notes, err := urlParams.Parse(u.Query(), &cfg)
	if err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	cfg.urlNotes = notes
	clean := *u
	clean.RawQuery = rest.Encode()
	clean.Fragment, clean.RawFragment = "", ""
	cfg.URL = clean.String()
	if err := cfg.Validate(); err != nil {
		// Report a bad URL as such, keeping the configuration kind too.
		return cfg, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, nil
}
