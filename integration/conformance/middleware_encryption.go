package conformance

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/Encryption/RoundTrip", testEncryptionRoundTrip},
		namedTest{"Middleware/Encryption/RotationInFlight", testEncryptionRotation},
		namedTest{"Middleware/Encryption/TamperedDeadLettered", testEncryptionTampered},
	)
}

// encKeyring builds a keyring of deterministic test keys named ids.
func encKeyring(t *testing.T, active string, ids ...string) *encryption.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for i, id := range ids {
		keys[id] = bytes.Repeat([]byte{byte(i + 1)}, encryption.KeySize)
	}
	kr, err := encryption.NewKeyring(active, keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newEncryptor(t *testing.T, cfg encryption.Config) *encryption.Encryptor {
	t.Helper()
	e, err := encryption.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// encBinary is a payload with every byte value, to catch brokers mangling ciphertext.
func encBinary(i int) []byte {
	p := make([]byte, 300)
	for j := range p {
		p[j] = byte(i + j)
	}
	return p
}

// testEncryptionRoundTrip: in direct and envelope mode, what the broker carries is ciphertext
// without the encrypted header; the consume half restores payload and header exactly.
func testEncryptionRoundTrip(t *testing.T, h *Harness) {
	kek, err := encryption.NewLocalKeyProvider(encKeyring(t, "kek1", "kek1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []struct {
		name string
		cfg  encryption.Config
	}{
		{"direct", encryption.Config{Keyring: encKeyring(t, "k1", "k1")}},
		{"envelope", encryption.Config{KeyProvider: kek}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			mode.cfg.Headers = []string{"customer-email"}
			e := newEncryptor(t, mode.cfg)
			c := h.open(t)
			topic := h.NewTopic(t)
			// Raw subscriber: sees what the broker carries, decrypts in the handler.
			raw, plain := newCollector(), newCollector()
			h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{}), func(ctx context.Context, m *message.Message) error {
				raw.record(m)
				d, err := e.Decrypt(ctx, m)
				if err != nil {
					return err
				}
				plain.record(d)
				return nil
			})
			pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{e.Publish()}})
			n := h.n(10)
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = &message.Message{ID: fmt.Sprintf("enc-%d", i), Key: fmt.Sprintf("k%d", i%2), Payload: encBinary(i),
					Headers: message.Headers{"customer-email": fmt.Sprintf("jö%d@example.com", i), "tenant": "acme"}}
			}
			publishVia(t, pub, topic, msgs...)
			plain.waitDistinct(t, n, h.Timeout)
			byID := map[string]*message.Message{}
			for _, m := range msgs {
				byID[m.ID] = m
			}
			for _, r := range raw.snapshot() {
				if bytes.Contains(r.Payload, byID[r.ID].Payload[:32]) {
					t.Errorf("%s: the broker carried plaintext", r.ID)
				}
				if _, ok := r.Headers["customer-email"]; ok {
					t.Errorf("%s: the encrypted header travelled in clear", r.ID)
				}
				if r.Headers[message.HeaderEncryptionKeyID] == "" {
					t.Errorf("%s: no key ID header", r.ID)
				}
			}
			for _, r := range plain.snapshot() {
				want := byID[r.ID]
				if !bytes.Equal(r.Payload, want.Payload) || r.Key != want.Key ||
					r.Headers["customer-email"] != want.Headers["customer-email"] || r.Headers["tenant"] != "acme" {
					t.Errorf("%s decrypted to key %q headers %v payload %x…", r.ID, r.Key, r.Headers, r.Payload[:min(8, len(r.Payload))])
				}
			}
		})
	}
}

// testEncryptionRotation: messages encrypted under the old key are still in the broker when
// the producer switches to the new key; a consumer holding both keys handles all of them.
func testEncryptionRotation(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	producer := newEncryptor(t, encryption.Config{Keyring: encKeyring(t, "k1", "k1")})
	consumer := newEncryptor(t, encryption.Config{Keyring: encKeyring(t, "k1", "k1", "k2")})
	sub := h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{consumer.Consume()}})
	pub := c.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{producer.Publish()}})

	n := h.n(20)
	old := numbered("old", n/2)
	publishVia(t, pub, topic, old...) // in flight: nobody consumes yet
	if err := producer.SetKeyring(encKeyring(t, "k2", "k1", "k2")); err != nil {
		t.Fatal(err)
	}
	fresh := numbered("new", n-n/2)
	publishVia(t, pub, topic, fresh...)

	col := newCollector()
	h.run(t, sub, col.handler)
	col.waitDistinct(t, n, h.Timeout)
	want := map[string]string{}
	for _, m := range append(old, fresh...) {
		want[m.ID] = string(m.Payload)
	}
	for _, r := range col.snapshot() {
		if string(r.Payload) != want[r.ID] {
			t.Errorf("%s decrypted to %q; want %q", r.ID, r.Payload, want[r.ID])
		}
	}
}

// testEncryptionTampered: a flipped bit, a ciphertext moved to another message ID, an unknown
// key and a plaintext message are each dead-lettered at once, as received, with the reason;
// the handler sees none of them.
func testEncryptionTampered(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	e := newEncryptor(t, encryption.Config{Keyring: encKeyring(t, "k1", "k1")})
	stranger := newEncryptor(t, encryption.Config{Keyring: encKeyring(t, "k9", "k9")})
	var calls atomic.Int64
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Middleware: []message.Middleware{e.Consume()}}),
		func(context.Context, *message.Message) error { calls.Add(1); return nil })
	dlq := h.dlqCollector(t, c, topic, "s1")

	seal := func(e *encryption.Encryptor, id string) *message.Message {
		m, err := e.Encrypt(context.Background(), topic, &message.Message{ID: id, Key: "k", Payload: []byte("secret " + id)})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	flipped := seal(e, "bitflip")
	flipped.Payload[len(flipped.Payload)/2] ^= 0x01
	original := seal(e, "original")
	moved := &message.Message{ID: "moved", Key: original.Key, Payload: original.Payload, Headers: original.Headers}
	unknown := seal(stranger, "unknown-key")
	plaintext := &message.Message{ID: "plaintext", Key: "k", Payload: []byte("secret in clear")}
	publish(t, c, topic, []*message.Message{flipped, moved, unknown, plaintext}, 4)

	dlq.waitDistinct(t, 4, h.Timeout)
	wantReason := map[string]string{
		"bitflip":     "authentication failed",
		"moved":       "authentication failed",
		"unknown-key": "unknown key",
		"plaintext":   "not encrypted",
	}
	sent := map[string][]byte{"bitflip": flipped.Payload, "moved": moved.Payload, "unknown-key": unknown.Payload, "plaintext": plaintext.Payload}
	for _, r := range dlq.snapshot() {
		reason := r.Headers[message.HeaderDeadLetterReason]
		if !strings.Contains(reason, wantReason[r.ID]) || !strings.Contains(reason, r.ID) {
			t.Errorf("%s: reason %q; want it to say %q and name the message", r.ID, reason, wantReason[r.ID])
		}
		if strings.Contains(reason, "secret") {
			t.Errorf("%s: reason leaks plaintext: %q", r.ID, reason)
		}
		if r.Headers[message.HeaderDeadLetterPermanent] != "true" || r.Headers[message.HeaderDeadLetterAttempts] != "1" {
			t.Errorf("%s: dead-letter headers %v; want permanent after 1 attempt", r.ID, r.Headers)
		}
		if !bytes.Equal(r.Payload, sent[r.ID]) {
			t.Errorf("%s: the dead-letter copy is not the message as received", r.ID)
		}
	}
	time.Sleep(200 * time.Millisecond)
	if n := calls.Load(); n != 0 {
		t.Errorf("handler called %d times for undecryptable messages", n)
	}
}
