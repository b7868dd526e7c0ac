package rabbitmq

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/transport"
)

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestConfigFromURL(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		check   func(t *testing.T, c Config)
		wantErr error
		errHas  string
	}{
		{
			name: "plain",
			url:  "amqp://u:p@h:5672/v",
			check: func(t *testing.T, c Config) {
				if c.URL != "amqp://u:p@h:5672/v" {
					t.Errorf("URL = %q", c.URL)
				}
			},
		},
		{
			name: "all own parameters",
			url: "amqps://u:p@h/v?exchange_type=fanout&queue_type=quorum&single_active_consumer=true&precise_publish_time=1&max_message_bytes=1024" +
				"&max_header_value_bytes=512&publish_channels=3&max_in_flight=64&heartbeat=15&connection_timeout=2500" +
				"&reconnect_delay=250ms&max_reconnect_delay=3s&connection_name=orders&cacertfile=/ca.pem",
			check: func(t *testing.T, c Config) {
				want := Config{ExchangeType: "fanout", QueueType: Quorum, SingleActiveConsumer: true, MaxMessageBytes: 1024,
					MaxHeaderValueBytes: 512, PublishChannels: 3, MaxInFlight: 64, Heartbeat: 15 * time.Second,
					DialTimeout: 2500 * time.Millisecond, ReconnectDelay: 250 * time.Millisecond,
					MaxReconnectDelay: 3 * time.Second, ConnectionName: "orders"}
				got := c
				got.URL = ""
				if got.ExchangeType != want.ExchangeType || got.QueueType != want.QueueType || !got.SingleActiveConsumer || !got.PrecisePublishTime ||
					got.MaxMessageBytes != want.MaxMessageBytes || got.MaxHeaderValueBytes != want.MaxHeaderValueBytes ||
					got.PublishChannels != want.PublishChannels || got.MaxInFlight != want.MaxInFlight ||
					got.Heartbeat != want.Heartbeat || got.DialTimeout != want.DialTimeout ||
					got.ReconnectDelay != want.ReconnectDelay || got.MaxReconnectDelay != want.MaxReconnectDelay ||
					got.ConnectionName != want.ConnectionName {
					t.Errorf("got %+v", got)
				}
				// amqp091-go's own parameters stay in the URL, Courier's are removed.
				if c.URL != "amqps://u:p@h/v?cacertfile=%2Fca.pem" {
					t.Errorf("URL = %q", c.URL)
				}
			},
		},
		{
			name: "durations as Go durations",
			url:  "amqp://h/?heartbeat=20s&connection_timeout=1m",
			check: func(t *testing.T, c Config) {
				if c.Heartbeat != 20*time.Second || c.DialTimeout != time.Minute {
					t.Errorf("heartbeat %v, timeout %v", c.Heartbeat, c.DialTimeout)
				}
			},
		},
		{name: "unknown parameter", url: "amqp://h/?prefetch=5", wantErr: transport.ErrInvalidURL, errHas: `unknown parameter "prefetch"`},
		{name: "repeated parameter", url: "amqp://h/?queue_type=quorum&queue_type=classic", wantErr: transport.ErrInvalidURL, errHas: "given 2 times"},
		{name: "bad number", url: "amqp://h/?max_in_flight=-1", wantErr: transport.ErrInvalidURL, errHas: "max_in_flight"},
		{name: "bad bool", url: "amqp://h/?single_active_consumer=maybe", wantErr: transport.ErrInvalidURL, errHas: "single_active_consumer"},
		{name: "bad duration", url: "amqp://h/?reconnect_delay=soon", wantErr: transport.ErrInvalidURL, errHas: "reconnect_delay"},
		{name: "bad exchange type", url: "amqp://h/?exchange_type=headers", wantErr: transport.ErrInvalidConfig, errHas: `ExchangeType "headers"`},
		{name: "heartbeat too short", url: "amqp://h/?heartbeat=500ms", wantErr: transport.ErrInvalidConfig, errHas: "Heartbeat"},
		{name: "wrong scheme", url: "http://u:secret@h/", wantErr: transport.ErrInvalidConfig, errHas: "scheme must be amqp or amqps"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ConfigFromURL(mustURL(t, tc.url))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v; want %v containing %q", err, tc.wantErr, tc.errHas)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("error %q contains the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
}

func TestValidate(t *testing.T) {
	ok := Config{URL: "amqp://guest:guest@localhost/"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	tests := []struct {
		name   string
		mod    func(*Config)
		errHas string
	}{
		{"no URL", func(c *Config) { c.URL = " " }, "URL is required"},
		{"malformed URL keeps the password out", func(c *Config) { c.URL = "amqp://u:hunter2@h:port/" }, "cannot parse URL"},
		{"quorum typo", func(c *Config) { c.QueueType = "quorom" }, "QueueType"},
		{"negative size", func(c *Config) { c.MaxMessageBytes = -1 }, "MaxMessageBytes"},
		{"size over the broker's ceiling", func(c *Config) { c.MaxMessageBytes = 1 << 30 }, "MaxMessageBytes"},
		{"too many channels", func(c *Config) { c.PublishChannels = 5000 }, "PublishChannels"},
		{"negative in flight", func(c *Config) { c.MaxInFlight = -2 }, "MaxInFlight"},
		{"negative dial timeout", func(c *Config) { c.DialTimeout = -time.Second }, "DialTimeout"},
		{"reconnect delays inverted", func(c *Config) { c.ReconnectDelay, c.MaxReconnectDelay = 2*time.Second, time.Second }, "exceeds"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("err = %v; want ErrInvalidConfig containing %q", err, tc.errHas)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	c := Config{URL: "amqp://h/"}.withDefaults()
	if c.ExchangeType != "topic" || c.QueueType != Classic || c.MaxMessageBytes != DefaultMaxMessageBytes ||
		c.PublishChannels != DefaultPublishChannels || c.MaxInFlight != DefaultMaxInFlight ||
		c.Heartbeat != DefaultHeartbeat || c.DialTimeout != DefaultDialTimeout || c.Logger == nil ||
		c.QueueName("t", "s") != "t.s" || c.MaxReconnectDelay != DefaultMaxReconnectDelay {
		t.Errorf("defaults: %+v", c)
	}
	// A long first delay raises the cap instead of breaking the invariant.
	c = Config{URL: "amqp://h/", ReconnectDelay: 10 * time.Second}.withDefaults()
	if c.MaxReconnectDelay != 10*time.Second {
		t.Errorf("MaxReconnectDelay = %v", c.MaxReconnectDelay)
	}
}

func TestSchemesRegistered(t *testing.T) {
	s := strings.Join(transport.Schemes(), ",")
	if !strings.Contains(s, "amqp") || !strings.Contains(s, "amqps") {
		t.Fatalf("schemes %s", s)
	}
}

// TestConfigFromURLDeprecated: old spellings parse with their old meaning and leave notes
// that New logs; the new spellings leave none.
func TestConfigFromURLDeprecated(t *testing.T) {
	tests := []struct {
		url       string
		dial, hb  time.Duration
		noteCount int
	}{
		{"amqp://h/?dial_timeout=2s&heartbeat=15s", 2 * time.Second, 15 * time.Second, 0},
		{"amqp://h/?connection_timeout=2s", 2 * time.Second, 0, 1},           // alias
		{"amqp://h/?connection_timeout=2500", 2500 * time.Millisecond, 0, 2}, // alias and bare milliseconds
		{"amqp://h/?heartbeat=15", 0, 15 * time.Second, 1},                   // bare seconds
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			c, err := ConfigFromURL(mustURL(t, tc.url))
			if err != nil {
				t.Fatal(err)
			}
			if c.DialTimeout != tc.dial || c.Heartbeat != tc.hb || len(c.urlNotes) != tc.noteCount {
				t.Errorf("dial %v heartbeat %v notes %q", c.DialTimeout, c.Heartbeat, c.urlNotes)
			}
		})
	}
	_, err := ConfigFromURL(mustURL(t, "amqp://h/?reconnect_delay=250"))
	if !errors.Is(err, transport.ErrInvalidURL) || !strings.Contains(err.Error(), "reconnect_delay") {
		t.Errorf("a bare number where none was ever accepted: err = %v; want ErrInvalidURL", err)
	}
}
