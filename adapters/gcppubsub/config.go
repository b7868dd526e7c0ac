package gcppubsub

import (
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/internal/confcheck"
	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"

	"google.golang.org/api/option"
)

// Scheme is the URL scheme this adapter registers: gcppubsub://PROJECT?….
const Scheme = "gcppubsub"

// Defaults for Config. Each is used when the corresponding field is zero.
const (
	// DefaultAckDeadline is the lease on a delivered message (Pub/Sub's own default ack
	// deadline); see Config.AckDeadline.
	DefaultAckDeadline = 10 * time.Second
	// DefaultPublishDelay is how long the client waits to fill a batch. Small, so that a lone
	// Publish is answered quickly; a Publish of many messages fills batches at once anyway.
	DefaultPublishDelay = time.Millisecond
	// DefaultPublishBatch is the most messages in one Publish RPC.
	DefaultPublishBatch = 100
	// DefaultPublishMaxOutstanding is the most messages published and not yet confirmed; more
	// block (flow control) until confirmations come back.
	DefaultPublishMaxOutstanding = 1000
	// DefaultPublishMaxOutstandingBytes bounds the bytes published and not yet confirmed.
	DefaultPublishMaxOutstandingBytes = 128 << 20
	// DefaultReceiveStreams is the number of StreamingPull streams per subscriber.
	DefaultReceiveStreams = 1
	// DefaultDialTimeout bounds Open's check that Pub/Sub (or the emulator) answers.
	DefaultDialTimeout = 5 * time.Second
)

// Config configures a connection to Google Cloud Pub/Sub or an emulator. Only Project is
// required; every other zero field takes the documented default.
type Config struct {
	// Project is the Google Cloud project ID (6–30 lower-case letters, digits and '-',
	// starting with a letter; "example.com:my-project" for domain-scoped projects). Required.
	Project string

	// Endpoint is the host:port of a Pub/Sub emulator (the gcloud emulator, pstest). When set,
	// the adapter speaks plaintext gRPC without credentials. When empty, the client honours
	// PUBSUB_EMULATOR_HOST; without that it connects to Google with credentials from the
	// standard chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud's application-default
	// credentials, the metadata server). Use ClientOptions for anything else (a regional
	// endpoint, a credentials file).
	Endpoint string

	// DialTimeout bounds Open's readiness check: a TCP connection to Endpoint (when set) and
	// one cheap RPC (GetTopic of a topic that need not exist: any answer, even NotFound or
	// PermissionDenied, shows Pub/Sub is there). Nothing listening fails Open within it, with
	// an error naming the endpoint. Default DefaultDialTimeout.
	DialTimeout time.Duration

	// Prefix is prepended to every topic and subscription ID, so that environments sharing a
	// project ("staging-", "ci-1234-") cannot see each other's resources. Courier names
	// (Message.Topic, dead-letter headers) never include it.
	Prefix string

	// DisableCreate stops the adapter from creating missing topics and subscriptions:
	// publishing to a missing topic fails with driver.ErrTopicNotFound, subscribing to a
	// missing subscription with driver.ErrSubscriptionNotFound. Default false: missing
	// topics and subscriptions are created (which needs pubsub.topics.create and
	// pubsub.subscriptions.create). With DisableCreate, the engine's default dead-letter
	// topic and its "<subscription>.dlq" subscription must exist too.
	DisableCreate bool

	// AckDeadline is the lease on a delivered message, 10s to 600s: the ack deadline of
	// subscriptions the adapter creates and of its streaming pulls (the client's
	// MaxDurationPerAckExtension). A message whose consumer died, or that was in flight on a
	// stream when it closed, is redelivered after it; the client keeps extending it, in steps
	// of AckDeadline, for messages being held. Default DefaultAckDeadline.
	AckDeadline time.Duration

	// RetryMinBackoff and RetryMaxBackoff, when RetryMinBackoff is set, give subscriptions
	// the adapter creates a retry policy: after a nack, Pub/Sub itself waits at least the
	// (exponentially growing) backoff before redelivering. Both 0s to 600s; RetryMaxBackoff
	// defaults to 600s. Without a retry policy Pub/Sub redelivers a nacked message at once
	// and Courier's retry delay is all there is; with one, see "Retries" in the package
	// documentation. The emulators store the policy but do not enforce it.
	RetryMinBackoff, RetryMaxBackoff time.Duration

	// PublishDelay is the client's batching delay (PublishSettings.DelayThreshold). Default
	// DefaultPublishDelay.
	PublishDelay time.Duration

	// PublishBatch is the most messages per Publish RPC (PublishSettings.CountThreshold),
	// at most 1000. Default DefaultPublishBatch.
	PublishBatch int

	// PublishMaxOutstanding and PublishMaxOutstandingBytes bound the messages handed to the
	// client and not yet confirmed per topic; beyond them Publish blocks (flow control
	// "block", not the client's default "ignore") until confirmations arrive or its context
	// ends. Defaults DefaultPublishMaxOutstanding and DefaultPublishMaxOutstandingBytes.
	PublishMaxOutstanding      int
	PublishMaxOutstandingBytes int

	// ReceiveStreams is the number of StreamingPull streams a subscriber opens
	// (ReceiveSettings.NumGoroutines). Default DefaultReceiveStreams; one stream carries
	// several MB/s on Google's service.
	ReceiveStreams int

	// ClientOptions are passed to pubsub.NewClient after the adapter's own (credentials,
	// endpoints, gRPC dial options). Not settable from a URL.
	ClientOptions []option.ClientOption

	// Logger receives the adapter's log lines: topics and subscriptions created, permission
	// fallbacks (Debug), dead-letter policies set or left differing (Info, Warn); never
	// payloads or credentials. Default slog.Default(); a connection opened by transport.Open gets
	// the connection's logger (transport.ConnConfig.Logger). (Open also gives it to the Conn.)
	Logger *slog.Logger
}

// projectRe: a project ID, optionally domain-scoped.
var projectRe = regexp.MustCompile(`^([a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)

// Validate reports a configuration that cannot work; the error wraps
// driver.ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: pubsub: %s", driver.ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if err := confcheck.NonNegative(confcheck.Dur("DialTimeout", c.DialTimeout), confcheck.Dur("PublishDelay", c.PublishDelay),
		confcheck.Int("PublishMaxOutstanding", c.PublishMaxOutstanding), confcheck.Int("PublishMaxOutstandingBytes", c.PublishMaxOutstandingBytes)); err != nil {
		return bad("%v", err)
	}
	switch {
	case c.Project == "":
		return bad("Project is required")
	case !projectRe.MatchString(c.Project):
		return bad("project ID %q is malformed: 6–30 lower-case letters, digits and '-', starting with a letter, not ending with '-'", c.Project)
	case strings.ContainsAny(c.Endpoint, "/ ?#@"):
		return bad("Endpoint %q must be host:port (no scheme, path or credentials)", c.Endpoint)
	case c.AckDeadline != 0 && (c.AckDeadline < 10*time.Second || c.AckDeadline > 600*time.Second):
		return bad("AckDeadline %v is outside Pub/Sub's 10s–600s", c.AckDeadline)
	case c.AckDeadline%time.Second != 0:
		return bad("AckDeadline %v is not a whole number of seconds", c.AckDeadline)
	case c.RetryMinBackoff < 0 || c.RetryMinBackoff > 600*time.Second:
		return bad("RetryMinBackoff %v is outside Pub/Sub's 0s–600s", c.RetryMinBackoff)
	case c.RetryMaxBackoff < 0 || c.RetryMaxBackoff > 600*time.Second:
		return bad("RetryMaxBackoff %v is outside Pub/Sub's 0s–600s", c.RetryMaxBackoff)
	case c.RetryMaxBackoff != 0 && c.RetryMinBackoff == 0:
		return bad("RetryMaxBackoff needs RetryMinBackoff")
	case c.RetryMaxBackoff != 0 && c.RetryMaxBackoff < c.RetryMinBackoff:
		return bad("RetryMaxBackoff %v is below RetryMinBackoff %v", c.RetryMaxBackoff, c.RetryMinBackoff)
	case c.PublishBatch < 0 || c.PublishBatch > 1000:
		return bad("PublishBatch %d is outside 1–1000", c.PublishBatch)
	case c.PublishMaxOutstandingBytes != 0 && c.PublishMaxOutstandingBytes < maxRequestBytes:
		return bad("PublishMaxOutstandingBytes %d is below the largest message (%d bytes)", c.PublishMaxOutstandingBytes, maxRequestBytes)
	case c.ReceiveStreams < 0 || c.ReceiveStreams > 64:
		return bad("ReceiveStreams %d is outside 1–64", c.ReceiveStreams)
	}
	if c.Prefix != "" {
		// The prefix must leave every ID valid on its own: start with a letter, allowed
		// characters only.
		if err := checkID("prefix", c.Prefix+"xxx"); err != nil {
			return bad("Prefix %q: %v", c.Prefix, err)
		}
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.AckDeadline == 0 {
		c.AckDeadline = DefaultAckDeadline
	}
	if c.RetryMinBackoff != 0 && c.RetryMaxBackoff == 0 {
		c.RetryMaxBackoff = 600 * time.Second
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.PublishDelay == 0 {
		c.PublishDelay = DefaultPublishDelay
	}
	if c.PublishBatch == 0 {
		c.PublishBatch = DefaultPublishBatch
	}
	if c.PublishMaxOutstanding == 0 {
		c.PublishMaxOutstanding = DefaultPublishMaxOutstanding
	}
	if c.PublishMaxOutstandingBytes == 0 {
		c.PublishMaxOutstandingBytes = DefaultPublishMaxOutstandingBytes
	}
	if c.ReceiveStreams == 0 {
		c.ReceiveStreams = DefaultReceiveStreams
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func durationParam(name, def, doc string, f func(*Config) *time.Duration) urlparam.Param[Config] {
	return urlparam.Param[Config]{Name: name, Kind: urlparam.Duration, Default: def, Doc: doc, Set: urlparam.SetDuration(f)}
}

func intParam(name, def, doc string, f func(*Config) *int) urlparam.Param[Config] {
	return urlparam.Param[Config]{Name: name, Kind: urlparam.Int, Default: def, Doc: doc, Set: urlparam.SetInt(f)}
}

// urlParams are the query parameters ConfigFromURL understands.
var urlParams = urlparam.Table[Config]{
	Scheme: Scheme,
	Params: []urlparam.Param[Config]{
		{Name: "endpoint", Kind: urlparam.String, Default: "Google", Doc: "emulator `host:port` (plaintext gRPC, no credentials)",
			Set: urlparam.SetString(func(c *Config) *string { return &c.Endpoint })},
		{Name: "prefix", Kind: urlparam.String, Doc: "prefix of every topic and subscription ID",
			Set: urlparam.SetString(func(c *Config) *string { return &c.Prefix })},
		{Name: "create", Kind: urlparam.Bool, Default: "true", Doc: "create missing topics and subscriptions",
			Set: urlparam.SetNotBool(func(c *Config) *bool { return &c.DisableCreate })},
		durationParam("dial_timeout", DefaultDialTimeout.String(), "bound on Open's check that Pub/Sub answers", func(c *Config) *time.Duration { return &c.DialTimeout }),
		durationParam("ack_deadline", DefaultAckDeadline.String(), "message lease / ack deadline, 10s to 600s", func(c *Config) *time.Duration { return &c.AckDeadline }),
		durationParam("retry_min_backoff", "no policy", "retry policy of created subscriptions: first backoff", func(c *Config) *time.Duration { return &c.RetryMinBackoff }),
		durationParam("retry_max_backoff", "600s", "retry policy of created subscriptions: largest backoff", func(c *Config) *time.Duration { return &c.RetryMaxBackoff }),
		durationParam("publish_delay", DefaultPublishDelay.String(), "batching delay", func(c *Config) *time.Duration { return &c.PublishDelay }),
		intParam("publish_batch", strconv.Itoa(DefaultPublishBatch), "messages per Publish RPC, at most 1000", func(c *Config) *int { return &c.PublishBatch }),
		intParam("publish_max_outstanding", strconv.Itoa(DefaultPublishMaxOutstanding), "publish flow control, messages", func(c *Config) *int { return &c.PublishMaxOutstanding }),
		intParam("publish_max_outstanding_bytes", strconv.Itoa(DefaultPublishMaxOutstandingBytes), "publish flow control, bytes", func(c *Config) *int { return &c.PublishMaxOutstandingBytes }),
		intParam("receive_streams", strconv.Itoa(DefaultReceiveStreams), "StreamingPull streams per subscriber", func(c *Config) *int { return &c.ReceiveStreams }),
	},
}

// ConfigFromURL reads a Config from a URL of the form
//
//	gcppubsub://PROJECT[?param=value&…]
//
// The parameters (all optional) are those of urlParams, listed with their defaults in the
// README ("Brokers and URLs"): endpoint, prefix, create, dial_timeout, ack_deadline,
// retry_min_backoff, retry_max_backoff, publish_delay, publish_batch,
// publish_max_outstanding, publish_max_outstanding_bytes, receive_streams. Durations are Go
// durations ("30s").
//
// Credentials never go in the URL: the standard Google chain supplies them. Errors wrap
// driver.ErrInvalidURL or driver.ErrInvalidConfig and name the parameter; unknown
// parameters are rejected.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	bad := func(format string, args ...any) (Config, error) {
		return Config{}, fmt.Errorf("%w: %s: %s", driver.ErrInvalidURL, Scheme, fmt.Sprintf(format, args...))
	}
	if u == nil {
		return bad("nil URL")
	}
	if u.Scheme != Scheme {
		return bad("scheme %q is not %q", u.Scheme, Scheme)
	}
	if u.User != nil {
		return bad("credentials do not belong in the URL; the standard Google credential chain (GOOGLE_APPLICATION_CREDENTIALS, gcloud auth application-default login) supplies them")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") {
		return bad("unexpected path %q; the form is %s://PROJECT?param=value", u.EscapedPath(), Scheme)
	}
	if u.Host == "" {
		return bad("no project: the form is %s://PROJECT?param=value", Scheme)
	}
	cfg.Project = u.Host
	if _, _, err := urlParams.Parse(u.Query(), &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// idRe is Pub/Sub's rule for topic and subscription IDs.
var idRe = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)

// checkID reports whether id is a valid Pub/Sub topic or subscription ID.
func checkID(what, id string) error {
	switch {
	case len(id) < 3 || len(id) > 255:
		return fmt.Errorf("%s ID %.64q is %d characters; Pub/Sub allows 3 to 255", what, id, len(id))
	case strings.HasPrefix(id, "goog"):
		return fmt.Errorf("%s ID %q starts with \"goog\", which Pub/Sub reserves", what, id)
	case !idRe.MatchString(id):
		return fmt.Errorf("%s ID %q: Pub/Sub IDs start with a letter and contain only letters, digits and - _ . ~ + %%", what, id)
	}
	return nil
}
