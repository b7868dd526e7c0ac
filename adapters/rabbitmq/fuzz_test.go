package rabbitmq

import (
	"testing"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
)

// FuzzFromDelivery: whatever a plain producer (or the broker) puts in a delivery's headers and
// properties, decoding it never panics, gives a non-empty ID and an attempt of at least 1.
func FuzzFromDelivery(f *testing.F) {
	f.Add("courier-key", "k", "", "orders", "rk", []byte("body"), "courier-attempt", "3", int64(2))
	f.Add("", "\xff", "\xfe", "", "", []byte(nil), "x-death", "", int64(-1))
	f.Add("courier-published", "not a time", "id", "x", "k", []byte{0}, "x-delivery-count", "99999999999999999999", int64(1<<62))
	f.Fuzz(func(t *testing.T, name, value, id, exchange, rk string, body []byte, name2, value2 string, count int64) {
		d := &amqp.Delivery{MessageId: id, Exchange: exchange, RoutingKey: rk, Body: body,
			Headers: amqp.Table{name: value, name2: value2, "x-delivery-count": count,
				"x-death": []any{amqp.Table{"count": count, "queue": value2}}}}
		var m message.Message
		fromDelivery(&m, d)
		if m.ID == "" {
			t.Fatalf("empty ID for %+v", d)
		}
		for _, quorum := range []bool{false, true} {
			if n, _ := attemptOf(d, "courier.delay.", quorum); n < 1 {
				t.Fatalf("attempt %d for %+v", n, d)
			}
		}
		_ = utf8.ValidString(m.Key) // the key may be anything a producer sent; the engine copes
	})
}
