package rabbitmq

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
)

// deliveryOf turns a publishing into the delivery a consumer would see.
func deliveryOf(p amqp.Publishing) amqp.Delivery {
	return amqp.Delivery{Headers: p.Headers, MessageId: p.MessageId, Timestamp: p.Timestamp, Body: p.Body,
		DeliveryMode: p.DeliveryMode, ContentType: p.ContentType}
}

func TestMessageRoundTrip(t *testing.T) {
	pt := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	tests := []*message.Message{
		{ID: "id-1", Key: "k", Payload: []byte("hello"), Headers: message.Headers{"a": "1", "ü": "ö"}, PublishTime: pt},
		{ID: strings.Repeat("x", 256), Key: strings.Repeat("y", 300), Payload: []byte{0, 1, 2}, PublishTime: pt},
		{ID: "no-key-no-headers", PublishTime: pt},
	}
	for _, in := range tests {
		p := toPublishing(in, amqp.Table{}, true)
		if p.DeliveryMode != amqp.Persistent {
			t.Errorf("delivery mode %d; want persistent", p.DeliveryMode)
		}
		d := deliveryOf(p)
		var out message.Message
		fromDelivery(&out, &d)
		if out.ID != in.ID || out.Key != in.Key || string(out.Payload) != string(in.Payload) || !out.PublishTime.Equal(pt) {
			t.Errorf("round trip: got id %q key %q payload %q time %v; want %q %q %q %v",
				trunc(out.ID), trunc(out.Key), out.Payload, out.PublishTime, trunc(in.ID), trunc(in.Key), in.Payload, pt)
		}
		if len(out.Headers) != len(in.Headers) {
			t.Errorf("headers %v; want %v", out.Headers, in.Headers)
		}
		for k, v := range in.Headers {
			if out.Headers[k] != v {
				t.Errorf("header %q = %q; want %q", k, out.Headers[k], v)
			}
		}
		if out.Payload == nil {
			t.Error("nil payload; want empty")
		}
	}
}

func TestPublishTimeSeconds(t *testing.T) {
	pt := time.Date(2026, 3, 4, 5, 6, 7, 891011121, time.UTC)
	p := toPublishing(&message.Message{ID: "x", PublishTime: pt}, amqp.Table{}, false)
	if p.Headers != nil {
		t.Errorf("headers %v; want none for a message without key and headers", p.Headers)
	}
	d := deliveryOf(p)
	var m message.Message
	fromDelivery(&m, &d)
	if !m.PublishTime.Equal(pt) && !m.PublishTime.Equal(pt.Truncate(time.Second)) {
		t.Errorf("PublishTime %v; want %v to the second", m.PublishTime, pt)
	}
}

func TestPublishTimeAsText(t *testing.T) {
	// Messages published as text (by another tool or version) are read too.
	pt := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	d := amqp.Delivery{Headers: amqp.Table{message.HeaderPublishTime: pt.Format(time.RFC3339Nano)}, Timestamp: pt.Truncate(time.Second)}
	var m message.Message
	fromDelivery(&m, &d)
	if !m.PublishTime.Equal(pt) || len(m.Headers) != 0 {
		t.Errorf("PublishTime %v, headers %v; want %v and none", m.PublishTime, m.Headers, pt)
	}
	// Without the header, the timestamp property (seconds) is used.
	d = amqp.Delivery{Timestamp: pt.Truncate(time.Second)}
	m = message.Message{}
	fromDelivery(&m, &d)
	if !m.PublishTime.Equal(pt.Truncate(time.Second)) {
		t.Errorf("PublishTime %v from the timestamp property", m.PublishTime)
	}
}

func trunc(s string) string {
	if len(s) > 12 {
		return s[:12] + "…"
	}
	return s
}

func TestRoutingKey(t *testing.T) {
	if routingKey("abc") != "abc" {
		t.Error("short key changed")
	}
	long := strings.Repeat("k", 256)
	rk := routingKey(long)
	if len(rk) != 64 || rk != routingKey(long) || rk == routingKey(long+"x") {
		t.Errorf("long key routing key %q: want a stable 64-char hash", rk)
	}
}

func TestForeignHeaders(t *testing.T) {
	d := amqp.Delivery{Headers: amqp.Table{
		"s": "str", "b": true, "i": int32(-5), "l": int64(7), "f": 1.5, "bytes": []byte("raw"),
		"tbl":     amqp.Table{"x": "y"},
		"arr":     []any{"a"},
		"x-death": []any{amqp.Table{"queue": "q"}}, "x-first-death-queue": "q", "x-delivery-count": int64(2),
		"x-request-id": "kept",
	}}
	var m message.Message
	fromDelivery(&m, &d)
	want := map[string]string{"s": "str", "b": "true", "i": "-5", "l": "7", "f": "1.5", "bytes": "raw", "x-request-id": "kept"}
	if len(m.Headers) != len(want) {
		t.Errorf("headers %v; want %v", m.Headers, want)
	}
	for k, v := range want {
		if m.Headers[k] != v {
			t.Errorf("header %q = %q; want %q", k, m.Headers[k], v)
		}
	}
}

func death(queue, reason string) amqp.Table {
	return amqp.Table{"queue": queue, "reason": reason, "count": int64(1)}
}

func TestAttemptOf(t *testing.T) {
	const prefix = "t.s.delay."
	tests := []struct {
		name      string
		d         amqp.Delivery
		quorum    bool
		want      int
		fromRetry bool
	}{
		{"first delivery", amqp.Delivery{}, false, 1, false},
		{"classic redelivery", amqp.Delivery{Redelivered: true}, false, 2, false},
		{"quorum count", amqp.Delivery{Redelivered: true, Headers: amqp.Table{"x-delivery-count": int64(3)}}, true, 4, false},
		{"back from the delay queue", amqp.Delivery{Headers: amqp.Table{message.HeaderAttempt: "3",
			"x-death": []any{death("t.s.delay.20", "expired")}}}, false, 3, true},
		{"back from the delay queue, then requeued", amqp.Delivery{Redelivered: true, Headers: amqp.Table{message.HeaderAttempt: "3",
			"x-death": []any{death("t.s.delay.20", "expired")}}}, false, 4, true},
		{"quorum, back from the delay queue and requeued twice", amqp.Delivery{Redelivered: true, Headers: amqp.Table{
			message.HeaderAttempt: "2", "x-delivery-count": int64(2), "x-death": []any{death("t.s.delay.20", "expired")}}}, true, 4, true},
		{"dead-letter copy: header is information only", amqp.Delivery{Headers: amqp.Table{message.HeaderAttempt: "5"}}, false, 1, false},
		{"natively dead-lettered after delayed retries", amqp.Delivery{Headers: amqp.Table{message.HeaderAttempt: "5",
			"x-death": []any{death("t.s", "rejected"), death("t.s.delay.20", "expired")}}}, false, 1, false},
		{"another subscription's delay queue", amqp.Delivery{Headers: amqp.Table{message.HeaderAttempt: "5",
			"x-death": []any{death("other.delay.20", "expired")}}}, false, 1, false},
		{"garbage attempt", amqp.Delivery{Headers: amqp.Table{message.HeaderAttempt: "x",
			"x-death": []any{death("t.s.delay.20", "expired")}}}, false, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, fromRetry := attemptOf(&tc.d, prefix, tc.quorum)
			if got != tc.want || fromRetry != tc.fromRetry {
				t.Errorf("attempt %d (from retry %v); want %d (%v)", got, fromRetry, tc.want, tc.fromRetry)
			}
		})
	}
}

func TestRetryPublishing(t *testing.T) {
	d := amqp.Delivery{MessageId: "m", Body: []byte("b"), UserId: "someone", Expiration: "100",
		ContentType: "application/json", Timestamp: time.Unix(100, 0),
		Headers: amqp.Table{"app": "v", message.HeaderKey: "k", "x-death": []any{death("q", "expired")},
			"x-first-death-reason": "expired", message.HeaderAttempt: "2"}}
	p := retryPublishing(&d, &message.Message{ID: "m", Key: "k"}, 3)
	if p.Headers[message.HeaderAttempt] != "3" || p.Headers["app"] != "v" || p.Headers[message.HeaderKey] != "k" {
		t.Errorf("headers %v", p.Headers)
	}
	if _, ok := p.Headers["x-death"]; ok {
		t.Error("x-death copied")
	}
	if _, ok := p.Headers["x-first-death-reason"]; ok {
		t.Error("x-first-death-reason copied")
	}
	if p.UserId != "" || p.Expiration != "" {
		t.Errorf("user-id %q / expiration %q copied", p.UserId, p.Expiration)
	}
	if p.MessageId != "m" || string(p.Body) != "b" || p.ContentType != "application/json" || p.DeliveryMode != amqp.Persistent {
		t.Errorf("properties not kept: %+v", p)
	}
}

func TestDelayBucket(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want int64
	}{
		{0, 1}, {time.Microsecond, 1}, {time.Millisecond, 1}, {15 * time.Millisecond, 15},
		{20 * time.Millisecond, 20}, {100 * time.Millisecond, 104}, {30 * time.Second, 30720},
		{100 * 24 * time.Hour, maxDelayMillis},
	}
	for _, tc := range tests {
		if got := delayBucket(tc.in); got != tc.want {
			t.Errorf("delayBucket(%v) = %d; want %d", tc.in, got, tc.want)
		}
	}
	// Never shorter than asked, at most 12.5% longer.
	for ms := int64(1); ms < 1<<22; ms = ms*3/2 + 1 {
		got := delayBucket(time.Duration(ms) * time.Millisecond)
		if got < ms || float64(got) > float64(ms)*1.125 {
			t.Fatalf("delayBucket(%dms) = %d", ms, got)
		}
	}
}

func TestDelayQueueNames(t *testing.T) {
	tp := &topology{queue: "t.s", delayPrefix: delayPrefix("t.s")}
	name, args := tp.delayQueue(100 * time.Millisecond)
	if name != "t.s.delay.104" || args[argDeadLetterRoutingKey] != "t.s" || args[argDeadLetterExchange] != "" ||
		args[amqp.QueueMessageTTLArg] != int64(104) {
		t.Errorf("delay queue %q %v", name, args)
	}
	if exp := args[argExpires].(int64); exp < 104+delayRedeclare.Milliseconds() {
		t.Errorf("x-expires %d would let a queue holding a message expire", exp)
	}
	long := strings.Repeat("q", 250)
	p := delayPrefix(long)
	if len(p)+10 > 255 || !strings.HasPrefix(p, "courier.delay.") || p != delayPrefix(long) {
		t.Errorf("prefix for a long queue name: %q", p)
	}
}

// TestPlainProducerKeyAndID: a delivery from a plain AMQP producer (no courier-key, no
// message-id) gets its key from the routing key (not on the default exchange, where the
// routing key is a queue name) and a non-empty ID that redelivery bookkeeping does not change
// and that differs with the contents; the delayed-retry copy carries both.
func TestPlainProducerKeyAndID(t *testing.T) {
	d := amqp.Delivery{Exchange: "orders", RoutingKey: "customer-7", Body: []byte("hello"),
		Headers: amqp.Table{"tenant": "acme"}, Timestamp: time.Unix(100, 0)}
	var m message.Message
	fromDelivery(&m, &d)
	if m.Key != "customer-7" || !strings.HasPrefix(m.ID, "amqp-") || len(m.ID) != 5+32 {
		t.Fatalf("key %q id %q; want the routing key and a derived ID", m.Key, m.ID)
	}
	redelivered := d
	redelivered.Redelivered = true
	redelivered.Headers = amqp.Table{"tenant": "acme", "x-delivery-count": int64(3), "x-death": []any{death("q", "rejected")},
		message.HeaderAttempt: "2"}
	var m2 message.Message
	fromDelivery(&m2, &redelivered)
	if m2.ID != m.ID {
		t.Errorf("redelivery changed the derived ID: %q → %q", m.ID, m2.ID)
	}
	for name, change := range map[string]func(*amqp.Delivery){
		"body":      func(x *amqp.Delivery) { x.Body = []byte("hellO") },
		"header":    func(x *amqp.Delivery) { x.Headers = amqp.Table{"tenant": "acmf"} },
		"timestamp": func(x *amqp.Delivery) { x.Timestamp = time.Unix(101, 0) },
	} {
		other := d
		change(&other)
		var m3 message.Message
		fromDelivery(&m3, &other)
		if m3.ID == m.ID {
			t.Errorf("another %s, same derived ID %q", name, m.ID)
		}
	}
	p := retryPublishing(&d, &m, 2)
	if p.MessageId != m.ID || p.Headers[message.HeaderKey] != "customer-7" {
		t.Errorf("retry copy: message-id %q, courier-key %v; want %q and the routing key", p.MessageId, p.Headers[message.HeaderKey], m.ID)
	}
	back := amqp.Delivery{Exchange: "", RoutingKey: "orders.s.delay-100", MessageId: p.MessageId, Headers: p.Headers, Body: p.Body}
	var m4 message.Message
	fromDelivery(&m4, &back)
	if m4.ID != m.ID || m4.Key != "customer-7" {
		t.Errorf("after the delay queue: id %q key %q; want %q and customer-7", m4.ID, m4.Key, m.ID)
	}

	direct := amqp.Delivery{Exchange: "", RoutingKey: "some-queue", MessageId: "given"}
	var m5 message.Message
	fromDelivery(&m5, &direct)
	if m5.Key != "" || m5.ID != "given" {
		t.Errorf("default exchange: key %q id %q; want no key and the message-id", m5.Key, m5.ID)
	}
}
