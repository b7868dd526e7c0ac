package encryption_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
)

// BenchmarkEncryption: encrypt (publish half) and decrypt (consume half) per message, 1 KiB
// and 64 KiB payloads, direct mode and envelope mode with a cached data key. MB/s is payload
// throughput (b.SetBytes).
func BenchmarkEncryption(b *testing.B) {
	ctx := context.Background()
	kek, err := encryption.NewLocalKeyProvider(keyring(b, "kek1", "kek1"))
	if err != nil {
		b.Fatal(err)
	}
	modes := []struct {
		name string
		cfg  encryption.Config
	}{
		{"direct", encryption.Config{Keyring: keyring(b, "k1", "k1")}},
		{"envelope-cached", encryption.Config{KeyProvider: kek, DataKeyTTL: time.Minute}},
		{"envelope-per-message", encryption.Config{KeyProvider: kek}},
	}
	for _, mode := range modes {
		e := newEnc(b, mode.cfg)
		for _, size := range []int{1 << 10, 64 << 10} {
			payload := make([]byte, size)
			m := &message.Message{ID: "01J8Z6Q3R2", Key: "customer-7", Payload: payload, Headers: message.Headers{"tenant": "acme"}}
			b.Run(fmt.Sprintf("encrypt/%s/%dKiB", mode.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.Encrypt(ctx, "payments", m); err != nil {
						b.Fatal(err)
					}
				}
			})
			c, err := e.Encrypt(ctx, "payments", m)
			if err != nil {
				b.Fatal(err)
			}
			c.Topic = "payments"
			h := e.Consume()(func(context.Context, *message.Message) error { return nil })
			b.Run(fmt.Sprintf("decrypt/%s/%dKiB", mode.name, size>>10), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				d := *c
				for b.Loop() {
					d.Payload, d.Headers = c.Payload, c.Headers
					if err := h(ctx, &d); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
