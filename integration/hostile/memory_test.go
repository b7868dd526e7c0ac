package hostile

import (
	"context"
	"testing"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TestMatrixMemory runs the matrix on memory://, publishing raw messages through the
// adapter's driver (which stores what it is given, as a broker would).
func TestMatrixMemory(t *testing.T) {
	var conn *transport.Conn
	tg := target{name: "memory", url: "memory://hostile", publish: func(ctx context.Context, t *testing.T, topic string, r raw) error {
		m := &message.Message{Key: r.Key, Payload: r.Payload, Headers: message.Headers{}}
		if r.ID != nil {
			m.ID = *r.ID
		}
		for _, h := range r.Headers {
			m.Headers[h[0]] = h[1]
		}
		return conn.Driver().Publish(ctx, topic, []*message.Message{m})
	}}
	f := newFixture(t, tg)
	conn = f.conn
	runMatrixOn(t, f)
}
