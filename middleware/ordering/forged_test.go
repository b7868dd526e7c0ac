package ordering_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/internal/testlog"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/middleware/store/storetest"
)

// forgedStores are the stores the forged-stamp tests run on; the integration build adds
// Redis and PostgreSQL.
var forgedStores = []string{"memstore"}

// forgery is a test bench: real messages of one key published through the publish half
// (so the store's counter issued their stamps), consumed through the consume half — with
// encryption, when enc is set — and forged messages injected on the consume side.
type forgery struct {
	t       *testing.T
	topic   string
	ord     *ordering.Ordering
	enc     *encryption.Encryptor
	real    []*message.Message
	handled []string
	logs    *testlog.Buffer
}

func newForgery(t *testing.T, st ordering.Store, withEncryption bool, n int) *forgery {
	t.Helper()
	f := &forgery{t: t, topic: fmt.Sprintf("forged-%d", time.Now().UnixNano())}
	f.ord, f.logs = newOrdering(t, st, func(c *ordering.Config) { c.GapTimeout = 50 * time.Millisecond })
	pub := f.ord.Publish()
	if withEncryption {
		kr, err := encryption.NewKeyring("k1", map[string][]byte{"k1": make([]byte, 32)})
		if err != nil {
			t.Fatal(err)
		}
		if f.enc, err = encryption.New(encryption.Config{Keyring: kr}); err != nil {
			t.Fatal(err)
		}
		pub = func(next message.PublishFunc) message.PublishFunc { return f.ord.Publish()(f.enc.Publish()(next)) }
	}
	var c capture
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprintf("real-%d", i+1), Key: "k", Payload: []byte(fmt.Sprintf(`{"n":%d}`, i+1))}
	}
	if err := pub(c.publish)(context.Background(), f.topic, msgs); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.got {
		m.Topic, m.Subscription, m.Attempt = f.topic, "s", 1
	}
	f.real = c.got
	return f
}

// deliver runs m through the consume chain and returns the error.
func (f *forgery) deliver(m *message.Message) error {
	h := func(_ context.Context, m *message.Message) error {
		f.handled = append(f.handled, m.ID)
		return nil
	}
	if f.enc != nil {
		h = f.enc.Consume()(h)
	}
	return f.ord.Consume()(h)(context.Background(), m)
}

// forge returns a plain message of the key, as any producer could publish it.
func (f *forgery) forge(stamp string) *message.Message {
	return &message.Message{ID: "forged", Key: "k", Topic: f.topic, Subscription: "s", Attempt: 1,
		Payload: []byte(`{"n":666}`), Headers: message.Headers{message.HeaderSequence: stamp}}
}

func (f *forgery) stamp(i int) (epoch, seq int64) {
	e, s, err := ordering.ParseStamp(f.real[i].Headers[message.HeaderSequence])
	if err != nil {
		f.t.Fatal(err)
	}
	return e, s
}

// TestForgedStamps: one plain message with a forged courier-seq stamp must not make the
// key's real messages be acknowledged unhandled; every real message is handled, in order.
func TestForgedStamps(t *testing.T) {
	for _, name := range forgedStores {
		t.Run(name, func(t *testing.T) { forgedStampCases(t, name) })
	}
}

func forgedStampCases(t *testing.T, store string) {
	cases := []struct {
		name      string
		encrypted bool
		stamp     func(epoch, last int64) string // forged stamp; last: the last real number issued
		wantErr   error                          // the forged message's error
		wait      bool                           // the forgery waits for a gap first
	}{
		{"newer epoch, plain", false, func(e, _ int64) string { return ordering.FormatStamp(e+1, 1) }, ordering.ErrImplausibleStamp, false},
		{"newer epoch, encrypted chain", true, func(e, _ int64) string { return ordering.FormatStamp(e+1, 1) }, ordering.ErrImplausibleStamp, false},
		{"far future epoch", false, func(e, _ int64) string { return ordering.FormatStamp(1<<62, 1) }, ordering.ErrImplausibleStamp, false},
		{"number never issued, skip ahead", false, func(e, l int64) string { return ordering.FormatStamp(e, l+1000) }, ordering.ErrImplausibleStamp, true},
		{"next number, encrypted chain", true, func(e, _ int64) string { return ordering.FormatStamp(e, 2) }, encryption.ErrNotEncrypted, false},
		{"malformed", false, func(int64, int64) string { return "1@" }, ordering.ErrBadStamp, false},
		{"negative", false, func(e, _ int64) string { return "-3@" + fmt.Sprint(e) }, ordering.ErrBadStamp, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			const n = 4
			f := newForgery(t, storetest.Open(t, store), tc.encrypted, n)
			if err := f.deliver(f.real[0]); err != nil {
				t.Fatalf("real 1: %v", err)
			}
			e, _ := f.stamp(0)
			_, last := f.stamp(n - 1)
			forged := f.forge(tc.stamp(e, last))
			err := f.deliver(forged)
			for tc.wait && message.IsDeferred(err) {
				time.Sleep(60 * time.Millisecond)
				err = f.deliver(forged)
			}
			if !message.IsPermanent(err) || !errors.Is(err, tc.wantErr) {
				t.Fatalf("forged %q: err = %v; want permanent %v (dead-lettered)", forged.Headers[message.HeaderSequence], err, tc.wantErr)
			}
			for i := 1; i < n; i++ {
				if err := f.deliver(f.real[i]); err != nil {
					t.Fatalf("real %d after the forgery: %v", i+1, err)
				}
			}
			want := "real-1,real-2,real-3,real-4"
			if got := strings.Join(f.handled, ","); got != want {
				t.Errorf("handled %s; want %s: no real message lost, none out of order, the forgery not handled", got, want)
			}
			if strings.Contains(f.logs.String(), "666") {
				t.Error("a log line quotes the forged payload")
			}
		})
	}
}

// TestForgedNextNumberPlainIsLimited documents the limit without encryption: a plain stamp
// that the counter did issue cannot be told from the real message. It takes that number's
// place (the real one is then a duplicate) but cannot reset or advance the key beyond it.
func TestForgedNextNumberPlainIsLimited(t *testing.T) {
	f := newForgery(t, memstore.New(memstore.Options{}), false, 3)
	if err := f.deliver(f.real[0]); err != nil {
		t.Fatal(err)
	}
	e, _ := f.stamp(0)
	if err := f.deliver(f.forge(ordering.FormatStamp(e, 2))); err != nil {
		t.Fatalf("a plausible unauthenticated stamp: %v; want handled", err)
	}
	for i := 1; i < 3; i++ {
		if err := f.deliver(f.real[i]); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(f.handled, ","); got != "real-1,forged,real-3" {
		t.Errorf("handled %s; want real-1,forged,real-3", got)
	}
}
