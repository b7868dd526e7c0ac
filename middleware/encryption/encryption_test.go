package encryption_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fixedKey returns a deterministic key (tests and the committed fuzz corpus depend on it).
func fixedKey(seed byte) []byte {
	k := make([]byte, encryption.KeySize)
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func keyring(t testing.TB, active string, ids ...string) *encryption.Keyring {
	t.Helper()
	keys := map[string][]byte{}
	for _, id := range ids {
		keys[id] = fixedKey(id[len(id)-1])
	}
	kr, err := encryption.NewKeyring(active, keys)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func newEnc(t testing.TB, cfg encryption.Config) *encryption.Encryptor {
	t.Helper()
	e, err := encryption.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

const secret = "card=4111111111111111"

func plainMsg() *message.Message {
	return &message.Message{ID: "m-1", Key: "customer-7", Payload: []byte(secret),
		Headers: message.Headers{"tenant": "acme", "pii-email": "jo@example.com",
			message.HeaderSequence: "1.7", message.HeaderContentType: "application/json"}}
}

func TestKeyringAndConfigValidation(t *testing.T) {
	good := fixedKey(1)
	for name, tc := range map[string]struct {
		active string
		keys   map[string][]byte
	}{
		"active missing": {"k9", map[string][]byte{"k1": good}},
		"short key":      {"k1", map[string][]byte{"k1": good[:16]}},
		"empty ID":       {"", map[string][]byte{"": good}},
		"ID with space":  {"k 1", map[string][]byte{"k 1": good}},
		"ID with comma":  {"k1", map[string][]byte{"k1": good, "a,b": good}},
		"ID too long":    {strings.Repeat("k", 65), map[string][]byte{strings.Repeat("k", 65): good}},
	} {
		if _, err := encryption.NewKeyring(tc.active, tc.keys); !errors.Is(err, encryption.ErrInvalidConfig) {
			t.Errorf("%s: err = %v; want ErrInvalidConfig", name, err)
		}
	}
	kr := keyring(t, "k2", "k1", "k2")
	if kr.ActiveID() != "k2" || strings.Join(kr.IDs(), ",") != "k1,k2" {
		t.Errorf("ActiveID %q IDs %v", kr.ActiveID(), kr.IDs())
	}
	for name, cfg := range map[string]encryption.Config{
		"no keys":           {},
		"reserved header":   {Keyring: kr, Headers: []string{message.HeaderKey}},
		"empty header":      {Keyring: kr, Headers: []string{""}},
		"negative TTL":      {Keyring: kr, DataKeyTTL: -time.Second},
		"negative max uses": {Keyring: kr, DataKeyMaxUses: -1},
	} {
		if _, err := encryption.New(cfg); !errors.Is(err, encryption.ErrInvalidConfig) {
			t.Errorf("%s: err = %v; want ErrInvalidConfig", name, err)
		}
	}
	e := newEnc(t, encryption.Config{Keyring: kr})
	if err := e.SetKeyring(nil); !errors.Is(err, encryption.ErrInvalidConfig) {
		t.Errorf("SetKeyring(nil) = %v", err)
	}
	if len(encryption.GenerateKey()) != encryption.KeySize || bytes.Equal(encryption.GenerateKey(), encryption.GenerateKey()) {
		t.Error("GenerateKey does not return fresh 32-byte keys")
	}
}

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	kek, err := encryption.NewLocalKeyProvider(keyring(t, "kek1", "kek1"))
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]encryption.Config{
		"direct":          {Keyring: keyring(t, "k1", "k1")},
		"envelope":        {KeyProvider: kek},
		"envelope cached": {KeyProvider: kek, DataKeyTTL: time.Minute},
	}
	for name, cfg := range modes {
		t.Run(name, func(t *testing.T) {
			cfg.Headers = []string{"pii-email", "absent-header"}
			e := newEnc(t, cfg)
			m := plainMsg()
			orig := m.Clone()
			c, err := e.Encrypt(ctx, "payments", m)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Payload) != secret || len(m.Headers) != len(orig.Headers) || m.Headers["pii-email"] != orig.Headers["pii-email"] {
				t.Fatal("Encrypt modified the caller's message")
			}
			if bytes.Contains(c.Payload, []byte(secret)) || bytes.Contains(c.Payload, []byte("jo@example.com")) {
				t.Fatal("ciphertext contains plaintext")
			}
			if _, ok := c.Headers["pii-email"]; ok {
				t.Error("encrypted header still visible")
			}
			if c.Headers["tenant"] != "acme" || c.Headers[message.HeaderEncryptionKeyID] == "" {
				t.Errorf("encrypted copy headers %v", c.Headers)
			}
			_, envelope := c.Headers[message.HeaderEncryptionWrappedKey]
			if envelope != (cfg.KeyProvider != nil) {
				t.Errorf("wrapped key header present = %v in mode %s", envelope, name)
			}
			if c.ID != m.ID || c.Key != m.Key {
				t.Error("ID or key changed")
			}
			c.Topic = "payments"
			d, err := e.Decrypt(ctx, c)
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Payload) != secret || d.Headers["pii-email"] != "jo@example.com" || d.Headers["tenant"] != "acme" {
				t.Errorf("decrypted %q %v", d.Payload, d.Headers)
			}
			for _, h := range []string{message.HeaderEncryptionKeyID, message.HeaderEncryptionWrappedKey} {
				if _, ok := d.Headers[h]; ok {
					t.Errorf("decrypted message still has %s", h)
				}
			}
			if _, err := e.Encrypt(ctx, "payments", c); err == nil {
				t.Error("encrypting an encrypted message again succeeded")
			}
		})
	}
}

func TestEmptyAndLargePayloads(t *testing.T) {
	ctx := context.Background()
	e := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1")})
	for _, p := range [][]byte{nil, {}, bytes.Repeat([]byte{0xa5}, 1<<20)} {
		c, err := e.Encrypt(ctx, "t", &message.Message{ID: "x", Payload: p})
		if err != nil {
			t.Fatal(err)
		}
		if len(c.Payload) != len(p)+encryption.Overhead {
			t.Errorf("ciphertext of %d bytes is %d bytes; want +%d", len(p), len(c.Payload), encryption.Overhead)
		}
		c.Topic = "t"
		d, err := e.Decrypt(ctx, c)
		if err != nil || !bytes.Equal(d.Payload, p) {
			t.Errorf("%d bytes: round trip err %v, equal %v", len(p), err, bytes.Equal(d.Payload, p))
		}
	}
}

// encrypted returns an encrypted copy of plainMsg as received from topic "payments".
func encrypted(t testing.TB, e *encryption.Encryptor) *message.Message {
	t.Helper()
	c, err := e.Encrypt(context.Background(), "payments", plainMsg())
	if err != nil {
		t.Fatal(err)
	}
	c.Topic = "payments"
	return c
}

func checkFails(t *testing.T, e *encryption.Encryptor, m *message.Message, kinds ...error) error {
	t.Helper()
	_, err := e.Decrypt(context.Background(), m)
	if err == nil {
		t.Fatal("decryption succeeded")
	}
	if !message.IsPermanent(err) {
		t.Errorf("err %v is not permanent", err)
	}
	matched := false
	for _, k := range kinds {
		matched = matched || errors.Is(err, k)
	}
	if !matched {
		t.Errorf("err = %v; want one of %v", err, kinds)
	}
	if strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "jo@example.com") {
		t.Errorf("error leaks plaintext: %v", err)
	}
	if !strings.Contains(err.Error(), m.ID) {
		t.Errorf("error %q does not name message %s", err, m.ID)
	}
	return err
}

func TestTamperingFails(t *testing.T) {
	kr := keyring(t, "k1", "k1", "k2")
	e := newEnc(t, encryption.Config{Keyring: kr, Headers: []string{"pii-email"}})

	t.Run("every bit flip", func(t *testing.T) {
		orig := encrypted(t, e)
		for i := 0; i < len(orig.Payload)*8; i++ {
			m := orig.Clone()
			m.Payload = bytes.Clone(orig.Payload)
			m.Payload[i/8] ^= 1 << (i % 8)
			if _, err := e.Decrypt(context.Background(), m); err == nil || !message.IsPermanent(err) ||
				!(errors.Is(err, encryption.ErrDecrypt) || errors.Is(err, encryption.ErrMalformed)) {
				t.Fatalf("bit %d flipped: err = %v", i, err)
			}
		}
	})
	t.Run("every truncation", func(t *testing.T) {
		orig := encrypted(t, e)
		for n := 0; n < len(orig.Payload); n++ {
			m := orig.Clone()
			m.Payload = orig.Payload[:n]
			if _, err := e.Decrypt(context.Background(), m); err == nil || !message.IsPermanent(err) {
				t.Fatalf("truncated to %d bytes: err = %v", n, err)
			}
		}
	})
	tests := []struct {
		name   string
		change func(m *message.Message)
		kinds  []error
	}{
		{"moved to another ID", func(m *message.Message) { m.ID = "m-2" }, []error{encryption.ErrDecrypt}},
		{"moved to another topic", func(m *message.Message) { m.Topic = "refunds" }, []error{encryption.ErrDecrypt}},
		{"moved to another key", func(m *message.Message) { m.Key = "customer-8" }, []error{encryption.ErrDecrypt}},
		{"key ID swapped for another known key", func(m *message.Message) { m.Headers[message.HeaderEncryptionKeyID] = "k2" }, []error{encryption.ErrDecrypt}},
		{"sequence number changed", func(m *message.Message) { m.Headers[message.HeaderSequence] = "1.8" }, []error{encryption.ErrDecrypt}},
		{"sequence number removed", func(m *message.Message) { delete(m.Headers, message.HeaderSequence) }, []error{encryption.ErrDecrypt}},
		{"schema header added", func(m *message.Message) { m.Headers[message.HeaderSchema] = "lax.v0" }, []error{encryption.ErrDecrypt}},
		{"content type changed", func(m *message.Message) { m.Headers[message.HeaderContentType] = "text/plain" }, []error{encryption.ErrDecrypt}},
		{"unknown key ID", func(m *message.Message) { m.Headers[message.HeaderEncryptionKeyID] = "k9" }, []error{encryption.ErrUnknownKey}},
		{"plaintext", func(m *message.Message) { delete(m.Headers, message.HeaderEncryptionKeyID); m.Payload = []byte("hi") }, []error{encryption.ErrNotEncrypted}},
		{"unknown version", func(m *message.Message) { m.Payload[0] = 9 }, []error{encryption.ErrMalformed}},
		{"unknown flag", func(m *message.Message) { m.Payload[1] |= 0x80 }, []error{encryption.ErrMalformed}},
		{"envelope flag set", func(m *message.Message) { m.Payload[1] |= 2 }, []error{encryption.ErrMalformed}},
		{"dead-letter topic header is ignored by default", func(m *message.Message) {
			m.Topic = "payments.dlq"
			m.Headers[message.HeaderDeadLetterTopic] = "payments"
		}, []error{encryption.ErrDecrypt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := encrypted(t, e)
			m.Payload = bytes.Clone(m.Payload)
			tc.change(m)
			checkFails(t, e, m, tc.kinds...)
		})
	}
	t.Run("TrustDeadLetterTopic", func(t *testing.T) {
		inspect := newEnc(t, encryption.Config{Keyring: kr, TrustDeadLetterTopic: true, Headers: []string{"pii-email"}})
		m := encrypted(t, e)
		m.Topic = "payments.dlq"
		m.Headers[message.HeaderDeadLetterTopic] = "payments"
		if d, err := inspect.Decrypt(context.Background(), m); err != nil || string(d.Payload) != secret {
			t.Errorf("dead-letter copy: %v", err)
		}
		m.Headers[message.HeaderDeadLetterTopic] = "refunds"
		checkFails(t, inspect, m, encryption.ErrDecrypt)
	})
}

func TestAllowPlaintext(t *testing.T) {
	e := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1"), AllowPlaintext: true})
	m := &message.Message{ID: "p", Payload: []byte("legacy"), Headers: message.Headers{"a": "b"}}
	d, err := e.Decrypt(context.Background(), m)
	if err != nil || string(d.Payload) != "legacy" || d.Headers["a"] != "b" {
		t.Errorf("plaintext passed as %q %v, err %v", d.Payload, d.Headers, err)
	}
	// An encrypted message still has to decrypt.
	c := encrypted(t, e)
	c.Payload = bytes.Clone(c.Payload)
	c.Payload[len(c.Payload)-1] ^= 1
	checkFails(t, e, c, encryption.ErrDecrypt)
}

// countingProvider wraps a LocalKeyProvider, counts calls and can fail.
type countingProvider struct {
	*encryption.LocalKeyProvider
	wraps, unwraps atomic.Int64
	unwrapErr      error
}

func (p *countingProvider) WrapKey(ctx context.Context, dek []byte) (string, []byte, error) {
	p.wraps.Add(1)
	return p.LocalKeyProvider.WrapKey(ctx, dek)
}

func (p *countingProvider) UnwrapKey(ctx context.Context, id string, w []byte) ([]byte, error) {
	p.unwraps.Add(1)
	if p.unwrapErr != nil {
		return nil, p.unwrapErr
	}
	return p.LocalKeyProvider.UnwrapKey(ctx, id, w)
}

func newCounting(t testing.TB, kr *encryption.Keyring) *countingProvider {
	t.Helper()
	l, err := encryption.NewLocalKeyProvider(kr)
	if err != nil {
		t.Fatal(err)
	}
	return &countingProvider{LocalKeyProvider: l}
}

func TestEnvelope(t *testing.T) {
	ctx := context.Background()
	kr := keyring(t, "kek1", "kek1", "kek2")

	t.Run("data key per message, unwrap per message", func(t *testing.T) {
		p := newCounting(t, kr)
		e := newEnc(t, encryption.Config{KeyProvider: p, UnwrapCacheSize: -1})
		a, b := encrypted(t, e), encrypted(t, e)
		if a.Headers[message.HeaderEncryptionWrappedKey] == b.Headers[message.HeaderEncryptionWrappedKey] {
			t.Error("two messages share a data key without DataKeyTTL")
		}
		for i := 0; i < 3; i++ {
			if _, err := e.Decrypt(ctx, a); err != nil {
				t.Fatal(err)
			}
		}
		if p.wraps.Load() != 2 || p.unwraps.Load() != 3 {
			t.Errorf("wraps %d unwraps %d; want 2, 3 (no cache)", p.wraps.Load(), p.unwraps.Load())
		}
	})
	t.Run("cached data key and unwrap cache", func(t *testing.T) {
		p := newCounting(t, kr)
		e := newEnc(t, encryption.Config{KeyProvider: p, DataKeyTTL: time.Hour, DataKeyMaxUses: 3})
		var ms []*message.Message
		for i := 0; i < 7; i++ {
			ms = append(ms, encrypted(t, e))
		}
		if p.wraps.Load() != 3 { // uses 3 + 3 + 1
			t.Errorf("%d wraps for 7 messages at 3 uses per key; want 3", p.wraps.Load())
		}
		if ms[0].Headers[message.HeaderEncryptionWrappedKey] != ms[2].Headers[message.HeaderEncryptionWrappedKey] ||
			ms[2].Headers[message.HeaderEncryptionWrappedKey] == ms[3].Headers[message.HeaderEncryptionWrappedKey] {
			t.Error("data key reuse does not follow DataKeyMaxUses")
		}
		for _, m := range ms {
			if _, err := e.Decrypt(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
		if p.unwraps.Load() != 3 {
			t.Errorf("%d unwraps for 3 distinct data keys; want 3 (cached)", p.unwraps.Load())
		}
	})
	t.Run("KEK rotation", func(t *testing.T) {
		p := newCounting(t, keyring(t, "kek1", "kek1"))
		e := newEnc(t, encryption.Config{KeyProvider: p})
		old := encrypted(t, e)
		if err := p.SetKeyring(keyring(t, "kek2", "kek1", "kek2")); err != nil {
			t.Fatal(err)
		}
		fresh := encrypted(t, e)
		if fresh.Headers[message.HeaderEncryptionKeyID] != "kek2" {
			t.Errorf("new messages under %q; want kek2", fresh.Headers[message.HeaderEncryptionKeyID])
		}
		for _, m := range []*message.Message{old, fresh} {
			if _, err := e.Decrypt(ctx, m); err != nil {
				t.Errorf("%s: %v", m.Headers[message.HeaderEncryptionKeyID], err)
			}
		}
	})
	t.Run("failures", func(t *testing.T) {
		p := newCounting(t, kr)
		e := newEnc(t, encryption.Config{KeyProvider: p, UnwrapCacheSize: -1})
		m := encrypted(t, e)

		bad := m.Clone()
		bad.Headers[message.HeaderEncryptionWrappedKey] = "***"
		checkFails(t, e, bad, encryption.ErrMalformed)

		missing := m.Clone()
		delete(missing.Headers, message.HeaderEncryptionWrappedKey)
		checkFails(t, e, missing, encryption.ErrMalformed)

		other := encrypted(t, e) // a valid wrapped key of another message
		swapped := m.Clone()
		swapped.Headers[message.HeaderEncryptionWrappedKey] = other.Headers[message.HeaderEncryptionWrappedKey]
		checkFails(t, e, swapped, encryption.ErrDecrypt)

		unknownKEK := m.Clone()
		unknownKEK.Headers[message.HeaderEncryptionKeyID] = "kek9"
		checkFails(t, e, unknownKEK, encryption.ErrUnknownKey)

		direct := newEnc(t, encryption.Config{Keyring: kr})
		checkFails(t, direct, m, encryption.ErrUnknownKey) // envelope message, no provider

		envOnly := newEnc(t, encryption.Config{KeyProvider: p})
		checkFails(t, envOnly, encrypted(t, direct), encryption.ErrUnknownKey) // direct message, no keyring

		// A provider outage is not the message's fault: retryable, not permanent.
		outage := errors.New("kms: connection refused")
		p.unwrapErr = outage
		_, err := e.Decrypt(ctx, m)
		if !errors.Is(err, outage) || message.IsPermanent(err) {
			t.Errorf("provider outage: err = %v; want it, not permanent", err)
		}
		p.unwrapErr = encryption.ErrUnknownKey
		if _, err := e.Decrypt(ctx, m); !message.IsPermanent(err) {
			t.Errorf("provider's ErrUnknownKey: err = %v; want permanent", err)
		}
	})
	t.Run("wrap failure fails the publish", func(t *testing.T) {
		e := newEnc(t, encryption.Config{KeyProvider: failingWrap{}})
		if _, err := e.Encrypt(ctx, "t", plainMsg()); err == nil || !strings.Contains(err.Error(), "wrap data key") {
			t.Errorf("err = %v", err)
		}
		e = newEnc(t, encryption.Config{KeyProvider: badIDWrap{}})
		if _, err := e.Encrypt(ctx, "t", plainMsg()); !errors.Is(err, encryption.ErrInvalidConfig) {
			t.Errorf("bad KEK ID: err = %v", err)
		}
	})
}

type failingWrap struct{}

func (failingWrap) WrapKey(context.Context, []byte) (string, []byte, error) {
	return "", nil, errors.New("kms down")
}
func (failingWrap) UnwrapKey(context.Context, string, []byte) ([]byte, error) { return nil, nil }

type badIDWrap struct{}

func (badIDWrap) WrapKey(context.Context, []byte) (string, []byte, error) {
	return "bad id", []byte("x"), nil
}
func (badIDWrap) UnwrapKey(context.Context, string, []byte) ([]byte, error) { return nil, nil }

func TestRotation(t *testing.T) {
	ctx := context.Background()
	producer := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1")})
	consumer := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1", "k2")}) // step 1
	old := encrypted(t, producer)
	if err := producer.SetKeyring(keyring(t, "k2", "k1", "k2")); err != nil { // step 2
		t.Fatal(err)
	}
	fresh := encrypted(t, producer)
	if old.Headers[message.HeaderEncryptionKeyID] != "k1" || fresh.Headers[message.HeaderEncryptionKeyID] != "k2" {
		t.Fatalf("key IDs %q, %q", old.Headers[message.HeaderEncryptionKeyID], fresh.Headers[message.HeaderEncryptionKeyID])
	}
	for _, m := range []*message.Message{old, fresh} {
		if _, err := consumer.Decrypt(ctx, m); err != nil {
			t.Errorf("consumer with both keys: %v", err)
		}
	}
	// Step 3 too early: a consumer that dropped k1 dead-letters what is still in flight.
	dropped := newEnc(t, encryption.Config{Keyring: keyring(t, "k2", "k2")})
	checkFails(t, dropped, old, encryption.ErrUnknownKey)
}

func TestPublishMiddleware(t *testing.T) {
	e := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1"), Headers: []string{"pii-email"}})
	var got []*message.Message
	pub := e.Publish()(func(_ context.Context, _ string, msgs []*message.Message) error { got = msgs; return nil })
	msgs := []*message.Message{plainMsg(), {ID: "m-2", Payload: []byte("two")}}
	first := msgs[0]
	if err := pub(context.Background(), "payments", msgs); err != nil {
		t.Fatal(err)
	}
	if msgs[0] != first || string(first.Payload) != secret || first.Headers["pii-email"] == "" {
		t.Fatal("the caller's slice or message changed")
	}
	if len(got) != 2 || got[0] == first || bytes.Contains(got[0].Payload, []byte(secret)) || got[1].ID != "m-2" {
		t.Fatalf("sent %v", got)
	}
	// One bad message fails the batch before anything is sent.
	got = nil
	dup := plainMsg()
	dup.Headers[message.HeaderEncryptionKeyID] = "k1"
	if err := pub(context.Background(), "payments", []*message.Message{plainMsg(), dup}); err == nil || !strings.Contains(err.Error(), "message 1") || got != nil {
		t.Errorf("err %v, sent %v", err, got)
	}
}

func TestConsumeMiddlewareDoesNotWriteIntoTheReceivedMessage(t *testing.T) {
	e := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1"), Headers: []string{"pii-email"}})
	m := encrypted(t, e)
	payload, headers := m.Payload, m.Headers
	payloadCopy, nheaders := bytes.Clone(payload), len(headers)
	var seen *message.Message
	h := e.Consume()(func(_ context.Context, m *message.Message) error {
		seen = m.Clone()
		return errors.New("handler failed")
	})
	if err := h(context.Background(), m); err == nil {
		t.Fatal("handler error lost")
	}
	if string(seen.Payload) != secret || seen.Headers["pii-email"] != "jo@example.com" {
		t.Errorf("handler saw %q %v", seen.Payload, seen.Headers)
	}
	if !bytes.Equal(payload, payloadCopy) || len(headers) != nheaders || headers["pii-email"] != "" {
		t.Error("the received payload or header map was written into")
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	p := newCounting(t, keyring(t, "kek1", "kek1"))
	e := newEnc(t, encryption.Config{KeyProvider: p, DataKeyTTL: time.Hour, DataKeyMaxUses: 10, UnwrapCacheSize: 2})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				m, err := e.Encrypt(ctx, "t", &message.Message{ID: "x", Payload: []byte("p")})
				if err != nil {
					t.Error(err)
					return
				}
				m.Topic = "t"
				if _, err := e.Decrypt(ctx, m); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if w := p.wraps.Load(); w != 40 {
		t.Errorf("%d wraps for 400 messages at 10 per data key; want 40", w)
	}
}

// TestEngineDeadLettersTampered: on memory://, a tampered message goes to the dead-letter
// topic after one attempt, still encrypted (the copy is the message as received), with the
// reason; a good one reaches the handler decrypted.
func TestEngineDeadLettersTampered(t *testing.T) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	e := newEnc(t, encryption.Config{Keyring: keyring(t, "k1", "k1")})
	sub, err := conn.Subscribe(ctx, "payments", "ledger", transport.SubscriberConfig{Middleware: []message.Middleware{e.Consume()}})
	if err != nil {
		t.Fatal(err)
	}
	dlq, err := conn.Subscribe(ctx, "payments.dlq", "ledger.dlq", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	handled, dead := make(chan *message.Message, 4), make(chan *message.Message, 4)
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = sub.Run(rctx, func(_ context.Context, m *message.Message) error { handled <- m.Clone(); return nil })
	}()
	go func() {
		defer wg.Done()
		_ = dlq.Run(rctx, func(_ context.Context, m *message.Message) error { dead <- m.Clone(); return nil })
	}()
	defer func() { cancel(); wg.Wait() }()

	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{e.Publish()}})
	if err := pub.Publish(ctx, "payments", plainMsg()); err != nil {
		t.Fatal(err)
	}
	good := encrypted(t, e)
	tampered := &message.Message{ID: "m-1", Key: good.Key, Headers: good.Headers, Payload: bytes.Clone(good.Payload)}
	tampered.ID = "tampered"
	if err := conn.Publish(ctx, "payments", tampered); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-handled:
		if string(m.Payload) != secret {
			t.Errorf("handled %q", m.Payload)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("good message not handled")
	}
	select {
	case m := <-dead:
		if m.ID != "tampered" || !bytes.Equal(m.Payload, tampered.Payload) {
			t.Errorf("dead-letter copy %s is not the message as received", m.ID)
		}
		if r := m.Header(message.HeaderDeadLetterReason); !strings.Contains(r, "authentication failed") || m.Header(message.HeaderDeadLetterPermanent) != "true" {
			t.Errorf("reason %q permanent %q", r, m.Header(message.HeaderDeadLetterPermanent))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tampered message not dead-lettered")
	}
}
