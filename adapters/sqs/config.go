package sqs

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

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

	// Credentials overrides the credential chain (for example a static provider for an
	// emulator). Default: the standard AWS chain. Credentials never appear in errors or logs.
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

	// Logger receives the adapter's log lines (never payloads or credentials). Default
	// slog.Default().
	Logger *slog.Logger
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

// urlParams lists the query parameters ConfigFromURL understands.
var urlParams = []string{
	"region", "endpoint", "profile", "max_attempts", "operation_timeout", "create", "account_id",
	"visibility_timeout", "wait_time", "max_message_bytes", "retention", "max_pollers", "pollers",
	"publish_concurrency", "fifo_default_group", "fifo_group_per_message", "fifo_dedup_by_id",
}

// ConfigFromURL reads a Config from an sqs:// URL:
//
//	sqs://?region=eu-west-1&endpoint=http://127.0.0.1:9324&create=false&visibility_timeout=60s
//
// Parameters: region, endpoint, profile, max_attempts, operation_timeout, create (bool,
// default true), account_id, visibility_timeout, wait_time, max_message_bytes, retention,
// max_pollers, pollers, publish_concurrency, fifo_default_group, fifo_group_per_message (bool),
// fifo_dedup_by_id (bool).
// Durations are Go durations ("90s", "1h") or whole seconds ("90"). The URL has no host or
// path: queues are named per Publish and Subscribe. Credentials come from the AWS chain, never
// from the URL. Unknown or repeated parameters and bad values are errors wrapping
// driver.ErrInvalidURL.
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
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		if !slices.Contains(urlParams, k) {
			return cfg, fmt.Errorf("%w: sqs: unknown parameter %q (known: %s)", driver.ErrInvalidURL, k, strings.Join(urlParams, ", "))
		}
		if len(vs) != 1 {
			return cfg, fmt.Errorf("%w: sqs: parameter %q given %d times", driver.ErrInvalidURL, k, len(vs))
		}
		v := vs[0]
		badValue := func(want string) error {
			return fmt.Errorf("%w: sqs: %s=%q is not %s", driver.ErrInvalidURL, k, v, want)
		}
		switch k {
		case "region":
			cfg.Region = v
		case "endpoint":
			e, err := url.Parse(v)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return cfg, fmt.Errorf("%w: sqs: endpoint=%q is not an http(s) URL", driver.ErrInvalidURL, driver.RedactURL(v))
			}
			cfg.Endpoint = v
		case "profile":
			cfg.Profile = v
		case "account_id":
			cfg.QueueOwnerAccountID = v
		case "fifo_default_group":
			cfg.FIFODefaultGroup = v
		case "create", "fifo_group_per_message", "fifo_dedup_by_id":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return cfg, badValue("a boolean")
			}
			switch k {
			case "create":
				cfg.DisableCreate = !b
			case "fifo_group_per_message":
				cfg.FIFOGroupPerMessage = b
			default:
				cfg.FIFODeduplicateByID = b
			}
		case "operation_timeout", "visibility_timeout", "wait_time", "retention":
			d, err := parseDuration(v)
			if err != nil {
				return cfg, badValue("a duration")
			}
			switch k {
			case "operation_timeout":
				cfg.OperationTimeout = d
			case "visibility_timeout":
				cfg.VisibilityTimeout = d
			case "wait_time":
				cfg.WaitTime = d
			default:
				cfg.MessageRetention = d
			}
		default: // integers
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return cfg, badValue("a non-negative integer")
			}
			switch k {
			case "max_attempts":
				cfg.MaxAttempts = n
			case "max_message_bytes":
				cfg.MaxMessageBytes = n
			case "max_pollers":
				cfg.MaxPollers = n
			case "pollers":
				cfg.Pollers = n
			case "publish_concurrency":
				cfg.PublishConcurrency = n
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, nil
}

// parseDuration accepts a Go duration or a number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("bad duration")
	}
	return d, nil
}

// seconds rounds d up to whole seconds, as SQS takes them.
func seconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	return int32((d + time.Second - 1) / time.Second)
}
