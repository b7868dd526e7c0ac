package kafka

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/transport"
)

func TestConfigFromURL(t *testing.T) {
	tests := []struct {
		url   string
		check func(t *testing.T, c Config)
	}{
		{"kafka://127.0.0.1:9092", func(t *testing.T, c Config) {
			if !slices.Equal(c.Brokers, []string{"127.0.0.1:9092"}) || c.SASL != nil || c.TLS != nil {
				t.Errorf("got %+v", c)
			}
		}},
		{"kafka://h1:9092,h2:9093/", func(t *testing.T, c Config) {
			if !slices.Equal(c.Brokers, []string{"h1:9092", "h2:9093"}) {
				t.Errorf("brokers %v", c.Brokers)
			}
		}},
		{"kafka://h1,h2:9093", func(t *testing.T, c Config) {
			if !slices.Equal(c.Brokers, []string{"h1:9092", "h2:9093"}) {
				t.Errorf("brokers %v; want the default port on h1", c.Brokers)
			}
		}},
		{"kafka://localhost", func(t *testing.T, c Config) {
			if !slices.Equal(c.Brokers, []string{"localhost:9092"}) {
				t.Errorf("brokers %v", c.Brokers)
			}
		}},
		{"kafka:///?brokers=[::1]:9092,h2:9092", func(t *testing.T, c Config) {
			if !slices.Equal(c.Brokers, []string{"[::1]:9092", "h2:9092"}) {
				t.Errorf("brokers %v", c.Brokers)
			}
		}},
		{"kafka://u%40corp:p%40ss@h:9092?sasl=scram-sha-512&tls=true", func(t *testing.T, c Config) {
			if c.SASL == nil || c.SASL.Mechanism != SASLScramSHA512 || c.SASL.Username != "u@corp" || c.SASL.Password != "p@ss" {
				t.Errorf("sasl %+v", c.SASL)
			}
			if c.TLS == nil || c.TLS.InsecureSkipVerify {
				t.Errorf("tls %+v", c.TLS)
			}
		}},
		{"kafka://u:p@h?sasl=plain", func(t *testing.T, c Config) {
			if c.SASL.Mechanism != SASLPlain {
				t.Errorf("mechanism %q", c.SASL.Mechanism)
			}
		}},
		{"kafka://h?create_topics=false&partitions=6&replication_factor=3&acks=leader&batch_timeout=5ms&batch_size=50&max_message_bytes=2000000&fetch_max_bytes=3000000&compression=zstd&start_offset=latest&isolation=read_uncommitted&client_id=svc&queue_capacity=10", func(t *testing.T, c Config) {
			want := Config{Brokers: []string{"h:9092"}, DisableTopicCreation: true, Partitions: 6, ReplicationFactor: 3,
				Acks: AcksLeader, BatchTimeout: 5 * time.Millisecond, BatchSize: 50, MaxMessageBytes: 2000000, FetchMaxBytes: 3000000,
				Compression: CompressionZstd, StartOffset: StartLatest, ReadUncommitted: true, ClientID: "svc", QueueCapacity: 10}
			if c.String() != want.String() || c.DisableTopicCreation != want.DisableTopicCreation || c.Partitions != 6 ||
				c.ReplicationFactor != 3 || c.Acks != AcksLeader || c.BatchTimeout != want.BatchTimeout || c.BatchSize != 50 ||
				c.MaxMessageBytes != 2000000 || c.FetchMaxBytes != 3000000 || c.Compression != CompressionZstd ||
				c.StartOffset != StartLatest || !c.ReadUncommitted || c.ClientID != "svc" || c.QueueCapacity != 10 {
				t.Errorf("got %+v", c)
			}
		}},
		{"kafka://h?session_timeout=20s&heartbeat_interval=2s&rebalance_timeout=30s&revoke_timeout=5s&join_group_backoff=3s&max_wait=1s&dial_timeout=2s&request_timeout=7s", func(t *testing.T, c Config) {
			if c.SessionTimeout != 20*time.Second || c.HeartbeatInterval != 2*time.Second || c.RebalanceTimeout != 30*time.Second ||
				c.RevokeTimeout != 5*time.Second || c.JoinGroupBackoff != 3*time.Second || c.MaxWait != time.Second ||
				c.DialTimeout != 2*time.Second || c.RequestTimeout != 7*time.Second {
				t.Errorf("got %+v", c)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			c, err := ConfigFromURL(u)
			if err != nil {
				t.Fatalf("ConfigFromURL: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestConfigFromURLErrors(t *testing.T) {
	tests := []struct{ url, want string }{
		{"kafka://", "no broker"},
		{"kafka://h:9092?bogus=1", `unknown parameter "bogus"`},
		{"kafka://h:9092?partitions=0", "positive integer"},
		{"kafka://h:9092?partitions=x", "positive integer"},
		{"kafka://h:9092?batch_timeout=5", "duration"},
		{"kafka://h:9092?acks=0", "acks"},
		{"kafka://h:9092?tls=maybe", "true or false"},
		{"kafka://h:9092?sasl=gssapi", "sasl"},
		{"kafka://u:secret-pw@h:9092", "no SASL mechanism"},
		{"kafka://h:9092?sasl=plain", "needs credentials"},
		{"kafka://h:9092/some/path", "path"},
		{"kafka://h:9092?compression=brotli", "compression"},
		{"kafka://h:9092?start_offset=middle", "start_offset"},
		{"kafka://h:9092?isolation=dirty", "isolation"},
		{"kafka://h:99999", "port"},
		{"kafka:///?brokers=::1", "host:port"},
		{"kafka://h:9092?tls_ca_file=/does/not/exist", "tls_ca_file"},
		{"kafka://h:9092?tls_cert_file=/x", "go together"},
		{"kafka://h:9092?heartbeat_interval=20s", "below SessionTimeout"},
		{"kafka://h:9092?revoke_timeout=20s", "below RebalanceTimeout"},
		{"kafka://h:9092?max_message_bytes=5000000", "FetchMaxBytes"},
		{"kafka://h:9092?partitions=1&partitions=2", "given 2 times"},
		{"amqp://h:9092", "scheme"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			u, err := url.Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ConfigFromURL(u)
			if !errors.Is(err, transport.ErrInvalidURL) {
				t.Fatalf("err = %v; want ErrInvalidURL", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q; want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("err leaks the password: %v", err)
			}
		})
	}
}

func TestConfigTLSFiles(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("kafka://h:9092?tls_ca_file=" + url.QueryEscape(ca))
	if _, err := ConfigFromURL(u); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("err = %v; want a complaint about the CA file", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no brokers", Config{}, "no brokers"},
		{"no port", Config{Brokers: []string{"h"}}, "host:port"},
		{"negative", Config{Brokers: []string{"h:1"}, BatchSize: -1}, "BatchSize"},
		{"negative duration", Config{Brokers: []string{"h:1"}, MaxWait: -time.Second}, "MaxWait"},
		{"sasl mechanism", Config{Brokers: []string{"h:1"}, SASL: &SASL{Mechanism: "KERBEROS", Username: "u", Password: "p"}}, "mechanism"},
		{"sasl password", Config{Brokers: []string{"h:1"}, SASL: &SASL{Mechanism: SASLPlain, Username: "u"}}, "password"},
		{"acks", Config{Brokers: []string{"h:1"}, Acks: 7}, "Acks"},
		{"replication", Config{Brokers: []string{"h:1"}, ReplicationFactor: 40000}, "ReplicationFactor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want ErrInvalidConfig mentioning %q", err, tc.want)
			}
		})
	}
	if err := (Config{Brokers: []string{"h:9092"}}).Validate(); err != nil {
		t.Fatalf("minimal config: %v", err)
	}
	d := (Config{Brokers: []string{"h:9092"}}).withDefaults()
	if d.BatchTimeout != DefaultBatchTimeout || d.MaxMessageBytes != DefaultMaxMessageBytes || d.ClientID != DefaultClientID {
		t.Errorf("defaults not applied: %+v", d)
	}
	if got := d.batchBytes(); got != 1<<20 {
		t.Errorf("batch bytes %d; want kafka-go's default 1 MiB", got)
	}
}

func TestCheckTopicName(t *testing.T) {
	for _, ok := range []string{"orders", "orders.v2", "a_b-c", "X9"} {
		if err := checkTopicName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{".", "..", "ördern", "a:b", "a+b"} {
		if err := checkTopicName(bad); !errors.Is(err, transport.ErrInvalidTopic) {
			t.Errorf("%q: err = %v; want ErrInvalidTopic", bad, err)
		}
	}
}

func TestRedactedURL(t *testing.T) {
	// Open's errors carry the URL through transport.RedactURL; check the kafka form.
	got := transport.RedactURL("kafka://user:hunter2@h1:9092,h2:9092?sasl=plain")
	if strings.Contains(got, "hunter2") {
		t.Fatalf("RedactURL kept the password: %s", got)
	}
}

// TestConfigFromURLCreate: create is the name shared with the other adapters; create_topics
// still works, with a note New logs.
func TestConfigFromURLCreate(t *testing.T) {
	for _, tc := range []struct {
		url     string
		disable bool
		notes   int
	}{
		{"kafka://h?create=false", true, 0},
		{"kafka://h?create=true", false, 0},
		{"kafka://h?create_topics=false", true, 1},
		{"kafka://h", false, 0},
	} {
		u, _ := url.Parse(tc.url)
		c, err := ConfigFromURL(u)
		if err != nil || c.DisableTopicCreation != tc.disable || len(c.urlNotes) != tc.notes {
			t.Errorf("%s: disable %v, notes %q, err %v", tc.url, c.DisableTopicCreation, c.urlNotes, err)
		}
	}
	u, _ := url.Parse("kafka://h?bogus=1")
	_, err := ConfigFromURL(u)
	if err == nil || !strings.Contains(err.Error(), "valid: acks, batch_size") || !strings.Contains(err.Error(), "create_topics, dial_timeout") {
		t.Errorf("unknown parameter: err = %v; want the valid names listed", err)
	}
}
