package sqs

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/courierhq/courier/transport"
)

func TestConfigFromURL(t *testing.T) {
	tests := []struct {
		url     string
		want    func(Config) bool
		wantErr string
	}{
		{url: "sqs://", want: func(c Config) bool { return c.Region == "" && !c.DisableCreate }},
		{url: "sqs:///", want: func(c Config) bool { return true }},
		{url: "sqs://?region=eu-west-1&endpoint=http://127.0.0.1:9324", want: func(c Config) bool {
			return c.Region == "eu-west-1" && c.Endpoint == "http://127.0.0.1:9324"
		}},
		{url: "sqs://?create=false&account_id=123456789012&profile=dev", want: func(c Config) bool {
			return c.DisableCreate && c.QueueOwnerAccountID == "123456789012" && c.Profile == "dev"
		}},
		{url: "sqs://?visibility_timeout=90&wait_time=5s&retention=1h&operation_timeout=1m", want: func(c Config) bool {
			return c.VisibilityTimeout == 90*time.Second && c.WaitTime == 5*time.Second &&
				c.MessageRetention == time.Hour && c.OperationTimeout == time.Minute
		}},
		{url: "sqs://?max_message_bytes=2048&pollers=2&max_pollers=3&publish_concurrency=1&max_attempts=5", want: func(c Config) bool {
			return c.MaxMessageBytes == 2048 && c.Pollers == 2 && c.MaxPollers == 3 && c.PublishConcurrency == 1 && c.MaxAttempts == 5
		}},
		{url: "sqs://?fifo_default_group=g1&fifo_group_per_message=true&fifo_dedup_by_id=1", want: func(c Config) bool {
			return c.FIFODefaultGroup == "g1" && c.FIFOGroupPerMessage && c.FIFODeduplicateByID
		}},
		{url: "sqs://?regoin=eu-west-1", wantErr: `unknown parameter "regoin"`},
		{url: "sqs://?region=a&region=b", wantErr: "given 2 times"},
		{url: "sqs://?create=maybe", wantErr: "not a boolean"},
		{url: "sqs://?visibility_timeout=soon", wantErr: "not a duration"},
		{url: "sqs://?visibility_timeout=13h", wantErr: "outside 1s..12h"},
		{url: "sqs://?visibility_timeout=500ms", wantErr: "outside 1s..12h"},
		{url: "sqs://?wait_time=21s", wantErr: "outside 0..20s"},
		{url: "sqs://?max_message_bytes=100", wantErr: "outside 1024..1048576"},
		{url: "sqs://?max_message_bytes=2000000", wantErr: "outside 1024..1048576"},
		{url: "sqs://?pollers=-1", wantErr: "non-negative integer"},
		{url: "sqs://?retention=10s", wantErr: "outside 60s..14 days"},
		{url: "sqs://?fifo_default_group=has%20space", wantErr: "MessageGroupId"},
		{url: "sqs://?endpoint=127.0.0.1:9324", wantErr: "not an http(s) URL"},
		{url: "sqs://queue-host/path", wantErr: "no host or path"},
		{url: "sqs://AKIA:secretvalue@/", wantErr: "credentials do not belong in the URL"},
		{url: "amqp://x", wantErr: "want sqs://"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ConfigFromURL(u)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, transport.ErrInvalidURL) {
					t.Fatalf("err = %v; want ErrInvalidURL containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "secretvalue") {
					t.Errorf("error leaks the secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tc.want(cfg) {
				t.Errorf("config %+v does not match", cfg)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []Config{
		{MaxAttempts: -1},
		{OperationTimeout: -time.Second},
		{VisibilityTimeout: 13 * time.Hour},
		{WaitTime: time.Minute},
		{MaxMessageBytes: 10},
		{MessageRetention: time.Second},
		{MaxPollers: -1},
		{Pollers: -2},
		{PublishConcurrency: -1},
		{FIFODefaultGroup: strings.Repeat("g", 129)},
		{QueueOwnerAccountID: "a b"},
		{QueueAttributes: map[string]string{"": "x"}},
	}
	for _, c := range bad {
		if err := c.Validate(); !errors.Is(err, transport.ErrInvalidConfig) {
			t.Errorf("Validate(%+v) = %v; want ErrInvalidConfig", c, err)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("zero Config: %v", err)
	}
}

func TestNewNeedsRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_PROFILE", "")
	_, err := New(context.Background(), Config{})
	if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), "region") {
		t.Fatalf("New without a region: err = %v; want ErrInvalidConfig about the region", err)
	}
	d, err := New(context.Background(), Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("a", "b", "")})
	if err != nil {
		t.Fatal(err)
	}
	if c := d.Capabilities(); c.MaxMessageBytes != MaxMessageBytes || c.FanOut || !c.Redelivery || !c.NativeDeadLetter {
		t.Errorf("capabilities %+v", c)
	}
	if err := d.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(context.Background()); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("second Close: %v", err)
	}
}

func TestQueueNames(t *testing.T) {
	for _, ok := range []string{"a", "orders", "Orders_2-x", "q.fifo", strings.Repeat("x", 80), strings.Repeat("x", 75) + ".fifo"} {
		if err := checkQueueName(ok); err != nil {
			t.Errorf("checkQueueName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".fifo", "a.b", "a b", "ключ", "a.dlq", strings.Repeat("x", 81), strings.Repeat("x", 76) + ".fifo"} {
		if err := checkQueueName(bad); !errors.Is(err, transport.ErrInvalidTopic) {
			t.Errorf("checkQueueName(%q) = %v; want ErrInvalidTopic", bad, err)
		}
	}
	cases := map[string]string{
		"orders":      "orders-dlq",
		"orders.fifo": "orders-dlq.fifo",
	}
	for in, want := range cases {
		if got := deadLetterName(in); got != want {
			t.Errorf("deadLetterName(%q) = %q; want %q", in, got, want)
		}
	}
	for _, long := range []string{strings.Repeat("y", 80), strings.Repeat("y", 75) + ".fifo", strings.Repeat("z", 78)} {
		got := deadLetterName(long)
		if err := checkQueueName(got); err != nil {
			t.Errorf("deadLetterName(%q) = %q: %v", long, got, err)
		}
		if strings.HasSuffix(long, ".fifo") != strings.HasSuffix(got, ".fifo") {
			t.Errorf("deadLetterName(%q) = %q changes the queue type", long, got)
		}
	}
	if deadLetterName(strings.Repeat("y", 80)) == deadLetterName(strings.Repeat("y", 79)+"z") {
		t.Error("shortened dead-letter names collide")
	}
}

// closedEOF mimics smithy-go's request body: after Close, reads answer io.EOF.
type closedEOF struct {
	r      *strings.Reader
	closed bool
}

func (b *closedEOF) Read(p []byte) (int, error) {
	if b.closed {
		return 0, io.EOF
	}
	return b.r.Read(p)
}

func (b *closedEOF) Close() error { b.closed = true; return nil }

type recordingClient struct{ got *http.Request }

func (c *recordingClient) Do(r *http.Request) (*http.Response, error) {
	c.got = r
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

// TestPrivateBodies: the request net/http sends keeps its whole body even when the SDK closes
// the body it built right after Do returns (aws-sdk-go-v2#2737).
func TestPrivateBodies(t *testing.T) {
	rc := &recordingClient{}
	orig := &closedEOF{r: strings.NewReader(`{"QueueUrl":"q"}`)}
	req, _ := http.NewRequest(http.MethodPost, "http://sqs.test/", orig)
	if _, err := (privateBodies{rc}).Do(req); err != nil {
		t.Fatal(err)
	}
	orig.Close() // what smithy-go does once the response headers are in
	body, err := io.ReadAll(rc.got.Body)
	if err != nil || string(body) != `{"QueueUrl":"q"}` || rc.got.ContentLength != int64(len(body)) {
		t.Fatalf("sent body %q (length %d), %v", body, rc.got.ContentLength, err)
	}
	again, _ := rc.got.GetBody()
	if b, _ := io.ReadAll(again); string(b) != `{"QueueUrl":"q"}` {
		t.Errorf("GetBody gave %q", b)
	}
	if req.Body != orig {
		t.Error("the caller's request was modified")
	}
}

// TestConfigFromURLDeprecatedSeconds: a bare number of seconds still parses, with a note New
// logs; Go durations leave none.
func TestConfigFromURLDeprecatedSeconds(t *testing.T) {
	for _, tc := range []struct {
		url   string
		want  time.Duration
		notes int
	}{
		{"sqs://?visibility_timeout=90s", 90 * time.Second, 0},
		{"sqs://?visibility_timeout=90", 90 * time.Second, 1},
		{"sqs://?visibility_timeout=1m30s", 90 * time.Second, 0},
	} {
		u, _ := url.Parse(tc.url)
		c, err := ConfigFromURL(u)
		if err != nil || c.VisibilityTimeout != tc.want || len(c.urlNotes) != tc.notes {
			t.Errorf("%s: %v, notes %q, err %v", tc.url, c.VisibilityTimeout, c.urlNotes, err)
		}
	}
}
