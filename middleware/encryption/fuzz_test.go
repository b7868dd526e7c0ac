package encryption_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/encryption"
)

var updateCorpus = flag.Bool("update-corpus", false, "rewrite testdata/fuzz/FuzzDecrypt from fresh ciphertexts")

const corpusDir = "testdata/fuzz/FuzzDecrypt"

// fuzzEncryptors returns the decrypting Encryptor of the fuzz target (direct and envelope
// mode, fixed keys, so committed ciphertexts stay valid) and two producers.
func fuzzEncryptors(t testing.TB) (consumer, direct, envelope *encryption.Encryptor) {
	kr := keyring(t, "k1", "k1", "k2")
	kek, err := encryption.NewLocalKeyProvider(keyring(t, "kek1", "kek1"))
	if err != nil {
		t.Fatal(err)
	}
	hdrs := []string{"h"}
	consumer = newEnc(t, encryption.Config{Keyring: kr, KeyProvider: kek, Headers: hdrs, UnwrapCacheSize: -1})
	direct = newEnc(t, encryption.Config{Keyring: kr, Headers: hdrs})
	envelope = newEnc(t, encryption.Config{KeyProvider: kek, Headers: hdrs})
	return consumer, direct, envelope
}

// seedPlaintext is the only plaintext a genuine fuzz input decrypts to: a forgery would have
// to produce it for its own ID, topic and key.
func seedPlaintext(id, topic, key string) string {
	return fmt.Sprintf("secret of %q on %q keyed %q", id, topic, key)
}

type fuzzInput struct {
	name                                   string
	payload                                []byte
	keyID, wrapped, id, topic, msgKey, seq string
	genuine                                bool
}

func (in fuzzInput) message() *message.Message {
	m := &message.Message{ID: in.id, Topic: in.topic, Key: in.msgKey, Payload: in.payload, Headers: message.Headers{"app": "x"}}
	if in.keyID != "" {
		m.Headers[message.HeaderEncryptionKeyID] = in.keyID
	}
	if in.wrapped != "" {
		m.Headers[message.HeaderEncryptionWrappedKey] = in.wrapped
	}
	if in.seq != "" {
		m.Headers[message.HeaderSequence] = in.seq
	}
	return m
}

// seedInputs encrypts a few messages (both modes, with and without encrypted headers,
// empty and binary payload fields) and derives tampered variants.
func seedInputs(t testing.TB, direct, envelope *encryption.Encryptor) []fuzzInput {
	var out []fuzzInput
	add := func(name string, e *encryption.Encryptor, id, topic, key, seq string, withHeader bool) {
		m := &message.Message{ID: id, Key: key, Payload: []byte(seedPlaintext(id, topic, key)), Headers: message.Headers{"app": "x"}}
		if withHeader {
			m.Headers["h"] = "hv:" + id
		}
		if seq != "" {
			m.Headers[message.HeaderSequence] = seq
		}
		c, err := e.Encrypt(context.Background(), topic, m)
		if err != nil {
			t.Fatal(err)
		}
		in := fuzzInput{name: name, payload: c.Payload, keyID: c.Headers[message.HeaderEncryptionKeyID],
			wrapped: c.Headers[message.HeaderEncryptionWrappedKey], id: id, topic: topic, msgKey: key, seq: seq, genuine: true}
		out = append(out, in)
		flipped := in
		flipped.name, flipped.genuine = name+"-bitflip", false
		flipped.payload = bytes.Clone(in.payload)
		flipped.payload[len(flipped.payload)/2] ^= 0x10
		moved := in
		moved.name, moved.genuine, moved.id = name+"-moved", false, id+"-other"
		truncated := in
		truncated.name, truncated.genuine, truncated.payload = name+"-truncated", false, in.payload[:len(in.payload)-5]
		reseq := in
		reseq.name, reseq.genuine, reseq.seq = name+"-reseq", false, in.seq+"1"
		out = append(out, flipped, moved, truncated, reseq)
	}
	add("direct", direct, "01J8Z6Q3", "payments", "", "", false)
	add("direct-headers", direct, "id-2", "orders.v1", "customer-7", "3.41", true)
	add("envelope", envelope, "id-3", "payments", "k", "", false)
	add("envelope-headers", envelope, "id-4", "t", "ключ", "9.1", true)
	out = append(out,
		fuzzInput{name: "plaintext", payload: []byte("hello"), id: "p", topic: "t"},
		fuzzInput{name: "unknown-key", payload: out[0].payload, keyID: "k9", id: out[0].id, topic: out[0].topic},
		fuzzInput{name: "bad-wrapped", payload: out[10].payload, keyID: out[10].keyID, wrapped: "%%%", id: out[10].id, topic: out[10].topic, msgKey: out[10].msgKey},
		fuzzInput{name: "short", payload: []byte{1, 0, 2}, keyID: "k1", id: "s", topic: "t"},
	)
	return out
}

// FuzzDecrypt feeds arbitrary payloads and headers to the decrypt path. It must never panic,
// every failure must be permanent and of a known kind, the input must not change, and a
// success must be genuine: the plaintext of its own ID, topic and key.
func FuzzDecrypt(f *testing.F) {
	consumer, direct, envelope := fuzzEncryptors(f)
	for _, in := range seedInputs(f, direct, envelope) {
		f.Add(in.payload, in.keyID, in.wrapped, in.id, in.topic, in.msgKey, in.seq)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, payload []byte, keyID, wrapped, id, topic, key, seq string) {
		in := fuzzInput{payload: payload, keyID: keyID, wrapped: wrapped, id: id, topic: topic, msgKey: key, seq: seq}
		m := in.message()
		before := bytes.Clone(payload)
		nh := len(m.Headers)
		d, err := consumer.Decrypt(ctx, m)
		if !bytes.Equal(m.Payload, before) || len(m.Headers) != nh {
			t.Fatal("Decrypt modified its input")
		}
		if err != nil {
			if !message.IsPermanent(err) {
				t.Fatalf("failure is not permanent: %v", err)
			}
			if !errors.Is(err, encryption.ErrDecrypt) && !errors.Is(err, encryption.ErrMalformed) &&
				!errors.Is(err, encryption.ErrUnknownKey) && !errors.Is(err, encryption.ErrNotEncrypted) {
				t.Fatalf("failure of no known kind: %v", err)
			}
			return
		}
		if string(d.Payload) != seedPlaintext(id, topic, key) {
			t.Fatalf("forgery accepted: decrypted %q for id %q topic %q key %q", d.Payload, id, topic, key)
		}
		if h, ok := d.Headers["h"]; ok && h != "hv:"+id {
			t.Fatalf("forged header accepted: %q", h)
		}
		if _, ok := d.Headers[message.HeaderEncryptionKeyID]; ok {
			t.Fatal("decrypted message keeps the key ID header")
		}
	})
}

// TestFuzzSeedCorpus checks the committed seed corpus: genuine entries still decrypt with the
// fuzz target's fixed keys (so the fuzzer starts from real ciphertexts), the others fail.
// Run with -update-corpus to rewrite it after a format change.
func TestFuzzSeedCorpus(t *testing.T) {
	consumer, direct, envelope := fuzzEncryptors(t)
	if *updateCorpus {
		if err := os.RemoveAll(corpusDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, in := range seedInputs(t, direct, envelope) {
			prefix := "bad-"
			if in.genuine {
				prefix = "genuine-"
			}
			var b strings.Builder
			b.WriteString("go test fuzz v1\n")
			fmt.Fprintf(&b, "[]byte(%s)\n", strconv.Quote(string(in.payload)))
			for _, s := range []string{in.keyID, in.wrapped, in.id, in.topic, in.msgKey, in.seq} {
				fmt.Fprintf(&b, "string(%s)\n", strconv.Quote(s))
			}
			if err := os.WriteFile(filepath.Join(corpusDir, prefix+in.name), []byte(b.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("seed corpus missing (run with -update-corpus): %v", err)
	}
	genuine := 0
	for _, f := range files {
		in := readCorpusFile(t, filepath.Join(corpusDir, f.Name()))
		d, err := consumer.Decrypt(context.Background(), in.message())
		if strings.HasPrefix(f.Name(), "genuine-") {
			genuine++
			if err != nil || string(d.Payload) != seedPlaintext(in.id, in.topic, in.msgKey) {
				t.Errorf("%s: genuine seed does not decrypt (%v); run with -update-corpus after a format change", f.Name(), err)
			}
		} else if err == nil {
			t.Errorf("%s: tampered seed decrypts", f.Name())
		}
	}
	if genuine < 4 || len(files) < 10 {
		t.Errorf("seed corpus has %d files, %d genuine; want ≥ 10 and ≥ 4", len(files), genuine)
	}
}

func readCorpusFile(t *testing.T, path string) fuzzInput {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 8 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s: not a FuzzDecrypt corpus file", path)
	}
	val := func(line, typ string) string {
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(line, typ+"("), ")"))
		if err != nil {
			t.Fatalf("%s: %q: %v", path, line, err)
		}
		return s
	}
	return fuzzInput{payload: []byte(val(lines[1], "[]byte")), keyID: val(lines[2], "string"), wrapped: val(lines[3], "string"),
		id: val(lines[4], "string"), topic: val(lines[5], "string"), msgKey: val(lines[6], "string"), seq: val(lines[7], "string")}
}
