package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"google.golang.org/api/support/bundler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func TestConfigFromURL(t *testing.T) {
	full := "gcppubsub://my-project-1?endpoint=127.0.0.1:8085&prefix=ci-7-&create=false&ack_deadline=30s" +
		"&retry_min_backoff=10s&retry_max_backoff=1m&publish_delay=5ms&publish_batch=500" +
		"&publish_max_outstanding=200&publish_max_outstanding_bytes=20000000&receive_streams=2"
	tests := []struct {
		url     string
		want    Config
		kind    error  // expected error kind, nil for success
		mention string // the error must mention this
	}{
		{url: "gcppubsub://my-project-1", want: Config{Project: "my-project-1"}},
		{url: "gcppubsub://my-project-1/", want: Config{Project: "my-project-1"}},
		{url: full, want: Config{
			Project: "my-project-1", Endpoint: "127.0.0.1:8085", Prefix: "ci-7-", DisableCreate: true,
			AckDeadline: 30 * time.Second, RetryMinBackoff: 10 * time.Second, RetryMaxBackoff: time.Minute,
			PublishDelay: 5 * time.Millisecond, PublishBatch: 500, PublishMaxOutstanding: 200,
			PublishMaxOutstandingBytes: 20_000_000, ReceiveStreams: 2,
		}},
		{url: "gcppubsub://example.com:my-project", kind: transport.ErrInvalidURL}, // ":my-project" parses as a port
		{url: "gcppubsub://?endpoint=x:1", kind: transport.ErrInvalidURL, mention: "no project"},
		{url: "gcppubsub://p-123456/topics/x", kind: transport.ErrInvalidURL, mention: "path"},
		{url: "gcppubsub://user:hunter2@p-123456", kind: transport.ErrInvalidURL, mention: "credential"},
		{url: "gcppubsub://p-123456?colour=blue", kind: transport.ErrInvalidURL, mention: `"colour"`},
		{url: "gcppubsub://p-123456?ack_deadline=soon", kind: transport.ErrInvalidURL, mention: "ack_deadline"},
		{url: "gcppubsub://p-123456?publish_batch=many", kind: transport.ErrInvalidURL, mention: "publish_batch"},
		{url: "gcppubsub://p-123456?create=perhaps", kind: transport.ErrInvalidURL, mention: "create"},
		{url: "gcppubsub://p-123456?prefix=a&prefix=b", kind: transport.ErrInvalidURL, mention: "2 times"},
		{url: "gcppubsub://p-123456?ack_deadline=5s", kind: transport.ErrInvalidConfig, mention: "AckDeadline"},
		{url: "gcppubsub://Bad_Project", kind: transport.ErrInvalidConfig, mention: "Bad_Project"},
		{url: "gcppubsub://abc", kind: transport.ErrInvalidConfig, mention: "malformed"},
		{url: "gcppubsub://p-123456?prefix=9lives-", kind: transport.ErrInvalidConfig, mention: "Prefix"},
		{url: "memory://", kind: transport.ErrInvalidURL, mention: "scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				if tc.kind == transport.ErrInvalidURL {
					return // rejected even earlier, by url.Parse
				}
				t.Fatal(err)
			}
			got, err := ConfigFromURL(u)
			if tc.kind == nil {
				if err != nil {
					t.Fatalf("ConfigFromURL: %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("got  %+v\nwant %+v", got, tc.want)
				}
				return
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v; want %v", err, tc.kind)
			}
			if !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("error %q does not mention %q", err, tc.mention)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks the password", err)
			}
		})
	}
}

// TestOpenURLDoesNotLeakCredentials goes through transport.Open, as programs do.
func TestOpenURLDoesNotLeakCredentials(t *testing.T) {
	_, err := transport.Open(context.Background(), "gcppubsub://user:hunter2@p-123456?token=s3cret")
	if !errors.Is(err, transport.ErrInvalidURL) {
		t.Fatalf("err = %v; want ErrInvalidURL", err)
	}
	for _, secret := range []string{"hunter2", "s3cret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error %q leaks %q", err, secret)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	ok := Config{Project: "courier-test"}
	tests := []struct {
		name    string
		mod     func(*Config)
		mention string // "" for valid
	}{
		{"minimal", func(*Config) {}, ""},
		{"domain-scoped project", func(c *Config) { c.Project = "example.com:my-project" }, ""},
		{"no project", func(c *Config) { c.Project = "" }, "Project is required"},
		{"upper-case project", func(c *Config) { c.Project = "Courier-Test" }, "malformed"},
		{"project ends with -", func(c *Config) { c.Project = "courier-test-" }, "malformed"},
		{"endpoint with scheme", func(c *Config) { c.Endpoint = "http://localhost:8085" }, "host:port"},
		{"ack deadline too long", func(c *Config) { c.AckDeadline = 11 * time.Minute }, "AckDeadline"},
		{"ack deadline fractional", func(c *Config) { c.AckDeadline = 10500 * time.Millisecond }, "whole number"},
		{"max backoff without min", func(c *Config) { c.RetryMaxBackoff = time.Minute }, "needs RetryMinBackoff"},
		{"max below min", func(c *Config) { c.RetryMinBackoff, c.RetryMaxBackoff = time.Minute, time.Second }, "below"},
		{"backoff too long", func(c *Config) { c.RetryMinBackoff = time.Hour }, "RetryMinBackoff"},
		{"batch too big", func(c *Config) { c.PublishBatch = 1001 }, "PublishBatch"},
		{"outstanding bytes below a message", func(c *Config) { c.PublishMaxOutstandingBytes = 1 << 20 }, "largest message"},
		{"negative delay", func(c *Config) { c.PublishDelay = -1 }, "PublishDelay"},
		{"too many streams", func(c *Config) { c.ReceiveStreams = 100 }, "ReceiveStreams"},
		{"prefix with slash", func(c *Config) { c.Prefix = "a/b" }, "Prefix"},
		{"goog prefix", func(c *Config) { c.Prefix = "google-" }, "goog"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if tc.mention == "" {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("Validate = %v; want ErrInvalidConfig mentioning %q", err, tc.mention)
			}
		})
	}
}

func TestCheckID(t *testing.T) {
	tests := []struct {
		id      string
		mention string // "" for valid
	}{
		{"abc", ""},
		{"orders.v1-eu_west~x+y%z", ""},
		{"Orders", ""},
		{strings.Repeat("a", 255), ""},
		{"s1", "3 to 255"},
		{strings.Repeat("a", 256), "3 to 255"},
		{"1abc", "start with a letter"},
		{"-abc", "start with a letter"},
		{"goog-events", "goog"},
		{"a:b:c", "only letters"},
		{"ключи", "only letters"},
	}
	for _, tc := range tests {
		err := checkID("topic", tc.id)
		if tc.mention == "" {
			if err != nil {
				t.Errorf("checkID(%q) = %v; want nil", tc.id, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("checkID(%.20q) = %v; want an error mentioning %q", tc.id, err, tc.mention)
		}
	}
}

func TestHoldFor(t *testing.T) {
	tests := []struct{ delay, minBackoff, want time.Duration }{
		{0, 0, 0},
		{time.Second, 0, time.Second},
		{time.Second, 10 * time.Second, 0}, // the retry policy already waits longer
		{30 * time.Second, 10 * time.Second, 20 * time.Second},
	}
	for _, tc := range tests {
		if got := holdFor(tc.delay, tc.minBackoff); got != tc.want {
			t.Errorf("holdFor(%v, %v) = %v; want %v", tc.delay, tc.minBackoff, got, tc.want)
		}
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	pub := time.Date(2026, 1, 2, 3, 4, 5, 6789, time.FixedZone("x", 3600))
	m := &message.Message{
		ID: "id-1", Key: "k", Payload: []byte{0, 1, 2},
		Headers:     message.Headers{"a": "1", "": "empty name is the transport's business", message.HeaderID: "forged"},
		PublishTime: pub,
	}
	pm, err := marshal(m, &timeFormatter{})
	if err != nil {
		t.Fatal(err)
	}
	if pm.OrderingKey != "k" || string(pm.Data) != "\x00\x01\x02" || pm.Attributes[message.HeaderID] != "id-1" {
		t.Errorf("marshal: %+v", pm)
	}
	// What the server adds on the way back.
	pm.ID = "server-7"
	pm.PublishTime = pub.Add(time.Second)
	pm.Attributes["googclient_traceparent"] = "00-abc"
	var got message.Message
	unmarshal(&got, pm)
	if got.ID != "id-1" || got.Key != "k" || string(got.Payload) != "\x00\x01\x02" {
		t.Errorf("unmarshal: id=%q key=%q payload=%q", got.ID, got.Key, got.Payload)
	}
	if !got.PublishTime.Equal(pub) || !got.BrokerTime.Equal(pub.Add(time.Second)) {
		t.Errorf("times: publish %v broker %v; want %v and a second later", got.PublishTime, got.BrokerTime, pub)
	}
	want := message.Headers{"a": "1", "": "empty name is the transport's business"}
	if fmt.Sprint(got.Headers) != fmt.Sprint(want) {
		t.Errorf("headers %v; want %v (no courier-id, courier-published or goog… attributes)", got.Headers, want)
	}

	// A message published without Courier: Pub/Sub's ID and time stand in.
	var foreign message.Message
	unmarshal(&foreign, &pubsub.Message{ID: "server-8", PublishTime: pub, Attributes: map[string]string{"x": "y"}})
	if foreign.ID != "server-8" || !foreign.PublishTime.Equal(pub) || foreign.Headers["x"] != "y" {
		t.Errorf("foreign message: %+v", foreign)
	}
	var bare message.Message
	unmarshal(&bare, &pubsub.Message{ID: "server-9", Attributes: map[string]string{message.HeaderID: "c-9"}})
	if bare.Headers != nil {
		t.Errorf("headers %v; want nil when only Courier's attributes came", bare.Headers)
	}
}

func TestMarshalRejects(t *testing.T) {
	many := message.Headers{}
	for i := range MaxAttributes - 1 {
		many[fmt.Sprintf("h%d", i)] = "v"
	}
	tests := []struct {
		name    string
		m       *message.Message
		mention string
	}{
		{"too many headers", &message.Message{ID: "x", Headers: many}, "attributes"},
		{"goog header", &message.Message{ID: "x", Headers: message.Headers{"googfoo": "v"}}, "goog"},
		{"long key", &message.Message{ID: "x", Key: strings.Repeat("k", MaxOrderingKeyBytes+1)}, "ordering keys"},
		{"long ID", &message.Message{ID: strings.Repeat("i", MaxAttributeValueBytes+1)}, "ID is"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := marshal(tc.m, &timeFormatter{})
			if !errors.Is(err, transport.ErrInvalidMessage) || !strings.Contains(err.Error(), tc.mention) {
				t.Errorf("marshal = %v; want ErrInvalidMessage mentioning %q", err, tc.mention)
			}
		})
	}
	delete(many, "h0")
	if _, err := marshal(&message.Message{ID: "x", Headers: many}, &timeFormatter{}); err != nil {
		t.Errorf("98 headers: %v; want accepted (2 attributes are Courier's)", err)
	}
}

func TestAttemptTable(t *testing.T) {
	var tab attemptTable
	if n := tab.next("s", "m1"); n != 1 {
		t.Fatalf("first delivery: attempt %d; want 1", n)
	}
	tab.record("s", "m1", 1)
	tab.record("s", "m1", 2)
	if n := tab.next("s", "m1"); n != 3 {
		t.Errorf("after two nacks: attempt %d; want 3", n)
	}
	if n := tab.next("other", "m1"); n != 1 {
		t.Errorf("same message on another subscription: attempt %d; want 1", n)
	}
	tab.forget("s", "m1")
	if n := tab.next("s", "m1"); n != 1 {
		t.Errorf("after ack: attempt %d; want 1", n)
	}
	for i := range maxTracked + 10 {
		tab.record("s", fmt.Sprint(i), 1)
	}
	if n := len(tab.m); n > maxTracked {
		t.Errorf("table holds %d entries; bound is %d", n, maxTracked)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{status.Error(codes.NotFound, "x"), transport.ErrTopicNotFound},
		{status.Error(codes.PermissionDenied, "x"), transport.ErrAccessDenied},
		{status.Error(codes.Unauthenticated, "x"), transport.ErrAccessDenied},
		{status.Error(codes.InvalidArgument, "x"), transport.ErrInvalidMessage},
		{status.Error(codes.Unavailable, "x"), transport.ErrUnavailable},
		{status.Error(codes.ResourceExhausted, "x"), transport.ErrUnavailable},
		{errors.New("dial tcp: connection refused"), transport.ErrUnavailable},
		{pubsub.ErrPublisherStopped, transport.ErrClosed},
		{fmt.Errorf("bundle: %w", bundler.ErrOversizedItem), transport.ErrMessageTooLarge},
	}
	for _, tc := range tests {
		if got := classify(tc.err, transport.ErrTopicNotFound, transport.ErrInvalidMessage); got != tc.want {
			t.Errorf("classify(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	err := wrap(context.Background(), "publish", status.Error(codes.PermissionDenied, "no"), transport.ErrTopicNotFound, transport.ErrInvalidMessage)
	if !errors.Is(err, transport.ErrAccessDenied) || status.Code(err) != codes.PermissionDenied {
		t.Errorf("wrap keeps neither the kind nor the status: %v", err)
	}
	if err := wrap(context.Background(), "publish", context.Canceled, nil, nil); !errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("wrap(context.Background(), context.Canceled) = %v; want the context error, not ErrUnavailable", err)
	}
	if err := wrap(context.Background(), "publish", context.DeadlineExceeded, nil, nil); !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("wrap(context.Background(), context.DeadlineExceeded) = %v; want both the context error and ErrUnavailable", err)
	}
}
