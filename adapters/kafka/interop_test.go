package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestInteropCourierToPlainReader: a record published by Courier, read by a plain kafka-go
// reader, carries the key, headers, payload and timestamp as documented in marshaler.go.
func TestInteropCourierToPlainReader(t *testing.T) {
	c := openConn(t, "partitions=3")
	topic := topicName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	published := time.Date(2026, 5, 4, 3, 2, 1, 987654321, time.UTC)
	m := &message.Message{
		ID:          "order-42",
		Key:         "customer-7",
		Payload:     []byte(`{"total":"19.90"}`),
		Headers:     message.Headers{"tenant": "acme", "trace-id": "abc123", "unicode": "héllo 👋"},
		PublishTime: published,
	}
	if err := c.Publish(ctx, topic, m); err != nil {
		t.Fatal(err)
	}
	keyless := &message.Message{ID: "no-key", Payload: []byte("x")}
	if err := c.Publish(ctx, topic, keyless); err != nil {
		t.Fatal(err)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers: strings.Split(bootstrap(t), ","), GroupID: "plain-reader", Topic: topic,
		MaxWait: 200 * time.Millisecond, StartOffset: kafkago.FirstOffset,
		HeartbeatInterval: 200 * time.Millisecond, ReadLagInterval: -1,
	})
	defer r.Close()
	got := map[string]kafkago.Message{}
	for len(got) < 2 {
		rec, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("plain reader: %v", err)
		}
		id := ""
		for _, h := range rec.Headers {
			if h.Key == message.HeaderID {
				id = string(h.Value)
			}
		}
		got[id] = rec
	}

	rec, ok := got["order-42"]
	if !ok {
		t.Fatalf("no record with header %s=order-42; got %v", message.HeaderID, got)
	}
	if string(rec.Key) != "customer-7" || string(rec.Value) != string(m.Payload) {
		t.Errorf("key=%q value=%q", rec.Key, rec.Value)
	}
	headers := map[string]string{}
	for _, h := range rec.Headers {
		headers[h.Key] = string(h.Value)
	}
	want := map[string]string{message.HeaderID: "order-42", "tenant": "acme", "trace-id": "abc123", "unicode": "héllo 👋"}
	for k, v := range want {
		if headers[k] != v {
			t.Errorf("header %q = %q; want %q", k, headers[k], v)
		}
	}
	if len(headers) != len(want) {
		t.Errorf("headers %v; want exactly %v", headers, want)
	}
	if !rec.Time.Equal(published.Truncate(time.Millisecond)) {
		t.Errorf("record time %v; want the publish time to the millisecond, %v", rec.Time, published)
	}
	// The key's partition is murmur2's, as a Java producer would choose (3 partitions).
	if want := javaPartition([]byte("customer-7"), 3); rec.Partition != want {
		t.Errorf("key customer-7 on partition %d; the Java partitioner puts it on %d", rec.Partition, want)
	}
	if k := got["no-key"].Key; k != nil {
		t.Errorf("a message without a key has record key %q; want null", k)
	}
}

// javaPartition is Kafka's Java DefaultPartitioner for a keyed record: murmur2 (seed
// 0x9747b28c), made positive, modulo the partition count. Written from the Java source's
// algorithm, independently of kafka-go's.
func javaPartition(key []byte, partitions int) int {
	return int(javaMurmur2(key)&0x7fffffff) % partitions
}

func javaMurmur2(key []byte) uint32 {
	const m, r = 0x5bd1e995, 24
	h := uint32(0x9747b28c) ^ uint32(len(key))
	n := len(key) / 4
	for i := 0; i < n; i++ {
		k := uint32(key[4*i]) | uint32(key[4*i+1])<<8 | uint32(key[4*i+2])<<16 | uint32(key[4*i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	switch rest := key[4*n:]; len(rest) {
	case 3:
		h ^= uint32(rest[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(rest[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(rest[0])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

// TestJavaMurmur2 checks the reference partitioner above against published murmur2 values
// of the Java client (as librdkafka's test suite lists them).
func TestJavaMurmur2(t *testing.T) {
	for key, want := range map[string]uint32{
		"kafka": 0xd067cf64, "giberish123456789": 0x8f552b0c, "1234": 0x9fc97b14, "234": 0xe7c009ca,
		"34": 0x873930da, "4": 0x5a4b5ca1, "": 0x106e08d9,
	} {
		if got := javaMurmur2([]byte(key)); got != want {
			t.Errorf("murmur2(%q) = %#x; want %#x", key, got, want)
		}
	}
}

// TestInteropPlainWriterToCourier: records written by a plain kafka-go writer are consumed by
// Courier, with the documented ID for records that carry no courier-id header.
func TestInteropPlainWriterToCourier(t *testing.T) {
	c := openConn(t, "partitions=1")
	topic := topicName(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := c.Subscribe(ctx, topic, "from-plain", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// An explicit transport, closed at the end: the default one lives for the process.
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(strings.Split(bootstrap(t), ",")...), Topic: topic,
		RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond, Transport: tr}
	defer w.Close()
	ts := time.Now().Truncate(time.Millisecond)
	err = w.WriteMessages(ctx,
		kafkago.Message{Key: []byte("k1"), Value: []byte("plain-1"), Time: ts,
			Headers: []kafkago.Header{{Key: "origin", Value: []byte("java-ish")}}},
		kafkago.Message{Value: []byte("plain-2"), Headers: []kafkago.Header{{Key: message.HeaderID, Value: []byte("given-id")}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *message.Message, 2)
	var native kafkago.Message
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Run(rctx, func(_ context.Context, m *message.Message) error {
			if m.Key == "k1" && !m.As(&native) {
				t.Error("As(*kafka.Message) = false")
			}
			got <- m.Clone()
			return nil
		})
	}()
	msgs := map[string]*message.Message{}
	for len(msgs) < 2 {
		select {
		case m := <-got:
			msgs[string(m.Payload)] = m
		case <-ctx.Done():
			t.Fatalf("only %d of 2 records consumed", len(msgs))
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Error(err)
	}
	m1 := msgs["plain-1"]
	if m1.Key != "k1" || m1.Headers["origin"] != "java-ish" || m1.Topic != topic || m1.Attempt != 1 {
		t.Errorf("plain-1: key=%q headers=%v topic=%q attempt=%d", m1.Key, m1.Headers, m1.Topic, m1.Attempt)
	}
	if want := topic + "/0/0"; m1.ID != want {
		t.Errorf("record without courier-id got ID %q; want %q", m1.ID, want)
	}
	if !m1.PublishTime.Equal(ts) {
		t.Errorf("PublishTime %v; want the record time %v", m1.PublishTime, ts)
	}
	if native.Offset != 0 || string(native.Value) != "plain-1" || native.Topic != topic {
		t.Errorf("As gave offset=%d value=%q topic=%q", native.Offset, native.Value, native.Topic)
	}
	if m2 := msgs["plain-2"]; m2.ID != "given-id" || m2.Key != "" || len(m2.Headers) != 0 {
		t.Errorf("plain-2: id=%q key=%q headers=%v; want id given-id, no key, no headers", m2.ID, m2.Key, m2.Headers)
	}
}

// TestStartPosition: a new subscription receives only what is published after Subscribe
// returned (A before, B after, the group joining later still sees only B); with StartEarliest
// it reads the retained log from the start (A and B).
func TestStartPosition(t *testing.T) {
	for _, tc := range []struct {
		name  string
		start transport.StartPosition
		want  []string
	}{
		{"latest (default)", transport.StartLatest, []string{"B"}},
		{"earliest", transport.StartEarliest, []string{"A", "B"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openConn(t, "partitions=3")
			topic := topicName(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Publish(ctx, topic, &message.Message{ID: "A", Key: "k", Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			s, err := c.Subscribe(ctx, topic, "start", transport.SubscriberConfig{Start: tc.start})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Publish(ctx, topic, &message.Message{ID: "B", Key: "k", Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			got := make(chan string, 10)
			rctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			go func() {
				done <- s.Run(rctx, func(_ context.Context, m *message.Message) error {
					got <- m.ID
					return nil
				})
			}()
			var ids []string
			for len(ids) < len(tc.want) {
				select {
				case id := <-got:
					ids = append(ids, id)
				case <-ctx.Done():
					t.Fatalf("got %v; want %v", ids, tc.want)
				}
			}
			select { // nothing more (A, for latest)
			case id := <-got:
				ids = append(ids, id)
			case <-time.After(time.Second):
			}
			stop()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if fmt.Sprint(ids) != fmt.Sprint(tc.want) {
				t.Errorf("delivered %v; want %v", ids, tc.want)
			}
		})
	}
}

// TestInteropPlainWriterRedelivered: records a plain kafka-go writer produces, with binary,
// empty and text values, reach Courier as adaptertest.PlainToCourier requires, the record key
// as Key and topic/partition/offset as the ID; once handled they are committed for good: a
// later subscriber of the same group that would start from the earliest offset without a
// commit receives nothing.
func TestInteropPlainWriterRedelivered(t *testing.T) {
	topic := topicName(t)
	tr := &kafkago.Transport{}
	defer tr.CloseIdleConnections()
	w := &kafkago.Writer{Addr: kafkago.TCP(strings.Split(bootstrap(t), ",")...), Topic: topic,
		RequiredAcks: kafkago.RequireAll, BatchTimeout: time.Millisecond, Transport: tr, Balancer: &kafkago.Hash{}}
	defer w.Close()
	adaptertest.PlainToCourier(t, adaptertest.PlainProducer{
		Conn: openConn(t, "partitions=2"), Topic: topic,
		Publish: func(ctx context.Context, i int, v []byte) error {
			return w.WriteMessages(ctx, kafkago.Message{Key: []byte(fmt.Sprintf("cust-%d", i)), Value: v,
				Headers: []kafkago.Header{{Key: "tenant", Value: []byte("acme")}, {Key: "n", Value: []byte(fmt.Sprint(i))}}})
		},
		Check: func(t *testing.T, i int, first, _ *message.Message) {
			if !strings.HasPrefix(first.ID, topic+"/") {
				t.Errorf("value %d: ID %q; want topic/partition/offset", i, first.ID)
			}
		},
		Later: func(c transport.SubscriberConfig) transport.SubscriberConfig {
			c.Start = transport.StartEarliest
			return c
		},
		Quiet: 5 * time.Second,
	})
}
