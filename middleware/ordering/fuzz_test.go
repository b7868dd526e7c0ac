package ordering_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
)

// FuzzParseStamp: courier-seq is set by whoever publishes; parsing any value never panics,
// and what it accepts is a valid stamp that FormatStamp writes back the same.
func FuzzParseStamp(f *testing.F) {
	for _, s := range []string{"1@0", "42@1700000000000", "", "@", "1@", "@1", "0@1", "-1@1", "1@-1",
		"+1@1", "01@01", "9223372036854775807@9223372036854775807", "9223372036854775808@1", "1@1@1",
		"1.5@2", " 1@2", "1@2\x00", "١@٢", "\xff@\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		epoch, seq, err := ordering.ParseStamp(s)
		if err != nil {
			if !errors.Is(err, ordering.ErrBadStamp) {
				t.Fatalf("ParseStamp(%q): %v does not wrap ErrBadStamp", s, err)
			}
			if len(err.Error()) > 512 {
				t.Fatalf("ParseStamp(%q): error of %d bytes; the value must be cut short", s, len(err.Error()))
			}
			return
		}
		if seq < 1 || epoch < 0 {
			t.Fatalf("ParseStamp(%q) = %d, %d; accepted an invalid stamp", s, epoch, seq)
		}
		e2, s2, err := ordering.ParseStamp(ordering.FormatStamp(epoch, seq))
		if err != nil || e2 != epoch || s2 != seq {
			t.Fatalf("round trip of %q: %d, %d, %v", s, e2, s2, err)
		}
	})
}

var discard = slog.New(slog.DiscardHandler)

// FuzzForgedStamp: with encryption on, one plain message of a key with any courier-seq value
// never makes a real message of the key go unhandled or out of order, and never panics; the
// forgery itself is never handled.
func FuzzForgedStamp(f *testing.F) {
	for _, s := range []string{"1@1", "2@E", "1@E+1", "9@E", "1000@E", "1@0", "garbage", "", "1@99999999999999"} {
		f.Add(s)
	}
	kr, err := encryption.NewKeyring("k1", map[string][]byte{"k1": make([]byte, 32)})
	if err != nil {
		f.Fatal(err)
	}
	enc, err := encryption.New(encryption.Config{Keyring: kr})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, stamp string) {
		st := memstore.New(memstore.Options{})
		o, err := ordering.New(ordering.Config{Store: st, Logger: discard})
		if err != nil {
			t.Fatal(err)
		}
		var c capture
		msgs := []*message.Message{{ID: "r1", Key: "k"}, {ID: "r2", Key: "k"}, {ID: "r3", Key: "k"}}
		if err := o.Publish()(enc.Publish()(c.publish))(context.Background(), "t", msgs); err != nil {
			t.Fatal(err)
		}
		// "E" in a seed stands for the real epoch, so that seeds reach the interesting states.
		epoch, _, _ := ordering.ParseStamp(c.got[0].Headers[message.HeaderSequence])
		stamp = strings.ReplaceAll(stamp, "E+1", ordering.FormatStamp(epoch+1, 1)[2:])
		stamp = strings.ReplaceAll(stamp, "E", ordering.FormatStamp(epoch, 1)[2:])
		var handled []string
		h := o.Consume()(enc.Consume()(func(_ context.Context, m *message.Message) error {
			handled = append(handled, m.ID)
			return nil
		}))
		deliver := func(m *message.Message) error {
			m.Topic, m.Subscription, m.Attempt = "t", "s", 1
			return h(context.Background(), m)
		}
		if err := deliver(c.got[0]); err != nil {
			t.Fatal(err)
		}
		forged := &message.Message{ID: "forged", Key: "k", Payload: []byte("x"),
			Headers: message.Headers{message.HeaderSequence: stamp}}
		// Acknowledged as a duplicate (nil), dead-lettered (permanent) or waiting (deferred):
		// never an error the engine would retry as if the store had failed.
		if err := deliver(forged); err != nil && !message.IsPermanent(err) && !message.IsDeferred(err) {
			t.Fatalf("forged %q: %v; want nil, permanent or deferred", stamp, err)
		}
		for _, m := range c.got[1:] {
			if err := deliver(m); err != nil {
				t.Fatalf("after forged %q, real %s: %v", stamp, m.ID, err)
			}
		}
		if got := strings.Join(handled, ","); got != "r1,r2,r3" {
			t.Fatalf("after forged %q handled %s; want r1,r2,r3", stamp, got)
		}
	})
}
