package kafka_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/courierhq/courier/adapters/kafka"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// within runs fn and fails the test when it takes longer than limit: errors must come back
// in bounded time, never as a hang.
func within(t *testing.T, limit time.Duration, fn func(ctx context.Context) error) (time.Duration, error) {
	t.Helper()
	// The context is generous: the bound under test is the adapter's own, not ctx's.
	ctx, cancel := context.WithTimeout(context.Background(), 4*limit)
	defer cancel()
	start := time.Now()
	err := fn(ctx)
	took := time.Since(start)
	if took > limit {
		t.Errorf("took %v; want an answer within %v", took, limit)
	}
	return took, err
}

func TestUnreachableBrokers(t *testing.T) {
	// A port nobody listens on: connection refused at once.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := l.Addr().String()
	l.Close()

	// A port that accepts and never answers: the request timeout must fire.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})

	for _, tc := range []struct {
		name, url string
		limit     time.Duration
	}{
		{"connection refused", "kafka://" + refused, 5 * time.Second},
		{"port 1", "kafka://127.0.0.1:1?dial_timeout=1s", 5 * time.Second},
		{"silent server", "kafka://" + silent.Addr().String() + "?dial_timeout=1s&request_timeout=2s", 5 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			took, err := within(t, tc.limit, func(ctx context.Context) error {
				_, err := transport.Open(ctx, tc.url)
				return err
			})
			if !errors.Is(err, transport.ErrUnavailable) {
				t.Fatalf("open: err = %v; want ErrUnavailable", err)
			}
			t.Logf("%v after %v", err, took)
		})
	}
}

func TestUnknownTopicWithCreationOff(t *testing.T) {
	c := openConn(t, "create_topics=false")
	topic := topicName(t)
	_, err := within(t, 5*time.Second, func(ctx context.Context) error {
		return c.Publish(ctx, topic, &message.Message{Payload: []byte("x")})
	})
	if !errors.Is(err, transport.ErrTopicNotFound) {
		t.Fatalf("publish to a missing topic: err = %v; want ErrTopicNotFound", err)
	}
	if !strings.Contains(err.Error(), topic) {
		t.Errorf("error %q does not name the topic", err)
	}
	_, err = within(t, 5*time.Second, func(ctx context.Context) error {
		_, err := c.Subscribe(ctx, topic, "s1", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
			func(context.Context, *message.Message, transport.Failure) error { return nil })})
		return err
	})
	if !errors.Is(err, transport.ErrTopicNotFound) {
		t.Fatalf("subscribe to a missing topic: err = %v; want ErrTopicNotFound", err)
	}

	// The same topic, once created elsewhere, works without reopening.
	creator := openConn(t, "partitions=1")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := creator.Publish(ctx, topic, &message.Message{Payload: []byte("first")}); err != nil {
		t.Fatalf("publish with creation on: %v", err)
	}
	if err := c.Publish(ctx, topic, &message.Message{Payload: []byte("second")}); err != nil {
		t.Fatalf("publish to the now existing topic with creation off: %v", err)
	}
}

func TestOversizeRecord(t *testing.T) {
	t.Run("over Courier's limit", func(t *testing.T) {
		c := openConn(t, "max_message_bytes=1000")
		if got := c.Capabilities().MaxMessageBytes; got != 1000 {
			t.Fatalf("MaxMessageBytes = %d; want 1000", got)
		}
		_, err := within(t, 5*time.Second, func(ctx context.Context) error {
			return c.Publish(ctx, topicName(t), &message.Message{ID: "big", Payload: bytes.Repeat([]byte("x"), 1001)})
		})
		var pe *transport.PublishError
		if !errors.Is(err, transport.ErrMessageTooLarge) || !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].ID != "big" {
			t.Fatalf("err = %v; want a PublishError with ErrMessageTooLarge for message big", err)
		}
	})
	t.Run("default limit is below the broker's", func(t *testing.T) {
		c := openConn(t, "")
		limit := c.Capabilities().MaxMessageBytes
		if limit != kafka.DefaultMaxMessageBytes {
			t.Fatalf("MaxMessageBytes = %d; want %d", limit, kafka.DefaultMaxMessageBytes)
		}
		// The largest message Courier accepts, with headers and a key, is stored by a broker
		// with the default message.max.bytes.
		m := &message.Message{Key: "k", Headers: message.Headers{"a": "b"}}
		m.ID = "largest"
		m.Payload = bytes.Repeat([]byte("x"), limit-len(m.Key)-len(m.ID)-2)
		if m.Size() != limit {
			t.Fatalf("size %d; want %d", m.Size(), limit)
		}
		_, err := within(t, 20*time.Second, func(ctx context.Context) error {
			return c.Publish(ctx, topicName(t), m)
		})
		if err != nil {
			t.Fatalf("publish of a message at the limit: %v", err)
		}
	})
	t.Run("record framing over the writer's limit", func(t *testing.T) {
		// message.Size counts header names and values; the record also frames each header.
		// 30,000 tiny headers push a message at Courier's limit over the 1 MiB request limit:
		// it fails alone, its neighbours are stored.
		c := openConn(t, "partitions=1")
		limit := c.Capabilities().MaxMessageBytes
		big := &message.Message{ID: "framed", Headers: message.Headers{}}
		for i := 0; i < 30000; i++ {
			big.Headers[fmt.Sprintf("h%05d", i)] = ""
		}
		big.Payload = bytes.Repeat([]byte("x"), limit-big.Size())
		if big.Size() != limit {
			t.Fatalf("size %d; want %d", big.Size(), limit)
		}
		topic := topicName(t)
		_, err := within(t, 20*time.Second, func(ctx context.Context) error {
			return c.Publish(ctx, topic, &message.Message{ID: "a", Payload: []byte("1")}, big, &message.Message{ID: "b", Payload: []byte("2")})
		})
		var pe *transport.PublishError
		if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Index != 1 || !errors.Is(err, transport.ErrMessageTooLarge) {
			t.Fatalf("err = %v; want only message 1 failed with ErrMessageTooLarge", err)
		}
		t.Logf("%v", err)
	})
	t.Run("over the broker's limit", func(t *testing.T) {
		// Courier's limit raised above the broker's (default message.max.bytes 1 MiB):
		// the broker refuses the record, and the error says so.
		c := openConn(t, "max_message_bytes=3000000&fetch_max_bytes=4000000")
		topic := topicName(t)
		_, err := within(t, 20*time.Second, func(ctx context.Context) error {
			return c.Publish(ctx, topic,
				&message.Message{ID: "ok", Payload: []byte("small")},
				&message.Message{ID: "huge", Payload: bytes.Repeat([]byte("x"), 1_500_000)})
		})
		var pe *transport.PublishError
		if !errors.Is(err, transport.ErrMessageTooLarge) || !errors.As(err, &pe) {
			t.Fatalf("err = %v; want a PublishError with ErrMessageTooLarge", err)
		}
		for _, f := range pe.Failed {
			if f.ID == "huge" && !errors.Is(f.Err, transport.ErrMessageTooLarge) {
				t.Errorf("huge failed with %v; want ErrMessageTooLarge", f.Err)
			}
		}
		t.Logf("%v", err)
	})
}

// saslCluster starts a kfake cluster that requires SASL, with one user per mechanism.
func saslCluster(t *testing.T) string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(kafka.SASLPlain, "alice", "plain-pw"),
		kfake.Superuser(kafka.SASLScramSHA256, "bob", "scram256-pw"),
		kfake.Superuser(kafka.SASLScramSHA512, "carol", "scram512-pw"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return strings.Join(c.ListenAddrs(), ",")
}

func TestSASL(t *testing.T) {
	addr := saslCluster(t)
	for _, tc := range []struct {
		name, userinfo, mech string
		ok                   bool
	}{
		{"plain", "alice:plain-pw", "plain", true},
		{"scram-sha-256", "bob:scram256-pw", "scram-sha-256", true},
		{"scram-sha-512", "carol:scram512-pw", "scram-sha-512", true},
		{"plain wrong password", "alice:WRONG-pw", "plain", false},
		{"scram-sha-256 wrong password", "bob:WRONG-pw", "scram-sha-256", false},
		{"scram-sha-512 unknown user", "mallory:WRONG-pw", "scram-sha-512", false},
		{"mechanism the user lacks", "alice:plain-pw", "scram-sha-512", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := "kafka://" + tc.userinfo + "@" + addr + "?sasl=" + tc.mech + "&dial_timeout=2s&request_timeout=5s&partitions=1&" + testParams
			var c *transport.Conn
			_, err := within(t, 10*time.Second, func(ctx context.Context) error {
				var err error
				c, err = transport.Open(ctx, u)
				return err
			})
			if !tc.ok {
				if !errors.Is(err, transport.ErrAccessDenied) || errors.Is(err, transport.ErrUnavailable) {
					t.Fatalf("open with bad credentials: err = %v; want ErrAccessDenied (and not ErrUnavailable)", err)
				}
				if strings.Contains(err.Error(), "WRONG-pw") || strings.Contains(err.Error(), "plain-pw") {
					t.Fatalf("error leaks the password: %v", err)
				}
				t.Logf("%v", err)
				return
			}
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer c.Close(context.Background())
			roundTrip(t, c)
		})
	}
}

// TestSASLAgainstPlaintextBroker: credentials for a broker that has no SASL listener give a
// clear error in bounded time (the native test broker listens in plaintext only).
func TestSASLAgainstPlaintextBroker(t *testing.T) {
	for _, mech := range []string{"plain", "scram-sha-256"} {
		t.Run(mech, func(t *testing.T) {
			u := "kafka://user:some-pw@" + bootstrap(t) + "?sasl=" + mech + "&dial_timeout=2s&request_timeout=4s"
			took, err := within(t, 10*time.Second, func(ctx context.Context) error {
				_, err := transport.Open(ctx, u)
				return err
			})
			if err == nil {
				t.Fatal("open with SASL against a broker without SASL: no error")
			}
			if !errors.Is(err, transport.ErrAccessDenied) && !errors.Is(err, transport.ErrUnavailable) {
				t.Fatalf("err = %v; want ErrAccessDenied or ErrUnavailable", err)
			}
			if strings.Contains(err.Error(), "some-pw") {
				t.Fatalf("error leaks the password: %v", err)
			}
			t.Logf("%v (after %v)", err, took)
		})
	}
}

// roundTrip publishes one message and consumes it on c.
func roundTrip(t *testing.T, c *transport.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topic := topicName(t)
	s, err := c.Subscribe(ctx, topic, "rt", transport.SubscriberConfig{})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	got := make(chan *message.Message, 1)
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() {
		done <- s.Run(rctx, func(_ context.Context, m *message.Message) error {
			select {
			case got <- m.Clone():
			default:
			}
			return nil
		})
	}()
	if err := c.Publish(ctx, topic, &message.Message{ID: "rt-1", Payload: []byte("hello")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	select {
	case m := <-got:
		if m.ID != "rt-1" || string(m.Payload) != "hello" {
			t.Errorf("got id=%q payload=%q", m.ID, m.Payload)
		}
	case <-ctx.Done():
		t.Fatal("message not delivered")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

// TestGroupAccessDenied: a subscriber whose credentials may use the topic but not the
// consumer group fails for good (Run returns ErrAccessDenied) instead of retrying forever.
func TestGroupAccessDenied(t *testing.T) {
	allow := func(res kmsg.ACLResourceType, name string) kfake.ACL {
		return kfake.ACL{Resource: res, Name: name, Pattern: kmsg.ACLResourcePatternTypeLiteral,
			Operation: kmsg.ACLOperationAll, Allow: true}
	}
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.EnableACLs(),
		kfake.Superuser(kafka.SASLPlain, "admin", "admin-pw"),
		kfake.User(kafka.SASLPlain, "app", "app-pw",
			allow(kmsg.ACLResourceTypeTopic, "*"), allow(kmsg.ACLResourceTypeCluster, "kafka-cluster")))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	u := "kafka://app:app-pw@" + strings.Join(cluster.ListenAddrs(), ",") + "?sasl=plain&partitions=1&" + testParams
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := transport.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	topic := topicName(t)
	if err := c.Publish(ctx, topic, &message.Message{Payload: []byte("x")}); err != nil {
		t.Fatalf("publish with topic rights: %v", err)
	}
	// Subscribe reads the group's offsets (to start a new group at the end of the topic), so
	// the refusal usually comes from Subscribe; else from Run.
	s, err := c.Subscribe(ctx, topic, "forbidden-group", transport.SubscriberConfig{})
	if err == nil {
		_, err = within(t, 15*time.Second, func(ctx context.Context) error {
			return s.Run(ctx, func(context.Context, *message.Message) error { return nil })
		})
	}
	if !errors.Is(err, transport.ErrAccessDenied) {
		t.Fatalf("Subscribe/Run without group rights: err = %v; want ErrAccessDenied", err)
	}
	t.Logf("%v", err)
}
