package encryption

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/message"
)

// Defaults for Config.
const (
	// DefaultDataKeyMaxUses bounds the messages per data key when DataKeyTTL reuses keys.
	DefaultDataKeyMaxUses = 1 << 20
	// DefaultUnwrapCacheSize is how many unwrapped data keys a consumer keeps.
	DefaultUnwrapCacheSize = 1024
)

// Config configures an Encryptor. Set Keyring, KeyProvider, or both.
type Config struct {
	// Keyring holds the keys of direct mode: the active key encrypts each payload, every key
	// decrypts. Required unless KeyProvider is set.
	Keyring *Keyring

	// KeyProvider turns on envelope mode for publishing: each payload is encrypted with a data
	// key that KeyProvider wraps. Consuming accepts envelope-mode messages only when it is set.
	KeyProvider KeyProvider

	// DataKeyTTL reuses one data key for this long (envelope mode), so a KMS is called once
	// per interval rather than per message. Default 0: a new data key per message.
	DataKeyTTL time.Duration

	// DataKeyMaxUses bounds how many messages one data key encrypts when DataKeyTTL reuses
	// keys. Default DefaultDataKeyMaxUses (2²⁰).
	DataKeyMaxUses int

	// UnwrapCacheSize is how many unwrapped data keys the consume half keeps, so that
	// messages sharing a data key cost one unwrap. Default DefaultUnwrapCacheSize (1024);
	// negative: no cache.
	UnwrapCacheSize int

	// Headers names application headers encrypted with the payload. Names starting with
	// message.ReservedPrefix are refused.
	Headers []string

	// AllowPlaintext lets messages without encryption headers through the consume half
	// unchanged (while producers migrate). Default false: they fail with ErrNotEncrypted.
	AllowPlaintext bool

	// TrustDeadLetterTopic authenticates a message carrying message.HeaderDeadLetterTopic
	// against that topic instead of the one it was received from. For consumers of
	// dead-letter subscriptions only; see the package documentation.
	TrustDeadLetterTopic bool
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Keyring == nil && c.KeyProvider == nil:
		return fmt.Errorf("%w: set Keyring, KeyProvider or both", ErrInvalidConfig)
	case c.DataKeyTTL < 0:
		return fmt.Errorf("%w: DataKeyTTL %v is negative", ErrInvalidConfig, c.DataKeyTTL)
	case c.DataKeyMaxUses < 0:
		return fmt.Errorf("%w: DataKeyMaxUses %d is negative", ErrInvalidConfig, c.DataKeyMaxUses)
	}
	for _, h := range c.Headers {
		if h == "" || strings.HasPrefix(h, message.ReservedPrefix) {
			return fmt.Errorf("%w: header %q cannot be encrypted (empty or reserved for Courier)", ErrInvalidConfig, h)
		}
	}
	return nil
}

// Encryptor encrypts on publish and decrypts on consume. It is safe for concurrent use.
type Encryptor struct {
	keyring   atomic.Pointer[Keyring]
	provider  KeyProvider
	headers   []string // sorted, unique
	plaintext bool
	trustDLQ  bool

	ttl     time.Duration
	maxUses int
	dekMu   sync.Mutex
	dek     *dataKey

	cache *unwrapCache
}

// New returns an Encryptor for cfg.
func New(cfg Config) (*Encryptor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Encryptor{
		provider:  cfg.KeyProvider,
		headers:   slices.Compact(slices.Sorted(slices.Values(cfg.Headers))),
		plaintext: cfg.AllowPlaintext,
		trustDLQ:  cfg.TrustDeadLetterTopic,
		ttl:       cfg.DataKeyTTL,
		maxUses:   cfg.DataKeyMaxUses,
	}
	if e.maxUses == 0 {
		e.maxUses = DefaultDataKeyMaxUses
	}
	if cfg.Keyring != nil {
		e.keyring.Store(cfg.Keyring)
	}
	size := cfg.UnwrapCacheSize
	if size == 0 {
		size = DefaultUnwrapCacheSize
	}
	if cfg.KeyProvider != nil && size > 0 {
		e.cache = newUnwrapCache(size)
	}
	return e, nil
}

// SetKeyring replaces the direct-mode keyring while the Encryptor runs (key rotation).
func (e *Encryptor) SetKeyring(kr *Keyring) error {
	if kr == nil {
		return fmt.Errorf("%w: nil keyring", ErrInvalidConfig)
	}
	e.keyring.Store(kr)
	return nil
}

// Payload format.
const (
	formatV1     byte = 1
	flagHeaders  byte = 1 << 0 // the plaintext starts with the encrypted header block
	flagEnvelope byte = 1 << 1 // the key is a data key wrapped in HeaderEncryptionWrappedKey
	flagsKnown        = flagHeaders | flagEnvelope
	prefixLen         = 2
	nonceLen          = 12
	tagLen            = 16
	// Overhead is how many bytes encryption adds to a payload (without encrypted headers).
	Overhead = prefixLen + nonceLen + tagLen
)

// Encrypt returns an encrypted copy of m for publishing to topic; m is not modified. The copy
// shares nothing mutable with m. It fails if m already carries HeaderEncryptionKeyID (never
// encrypt twice, never send such a message as plaintext).
func (e *Encryptor) Encrypt(ctx context.Context, topic string, m *message.Message) (*message.Message, error) {
	if _, ok := m.Headers[message.HeaderEncryptionKeyID]; ok {
		return nil, fmt.Errorf("encryption: message %s already carries %s: refusing to encrypt it again", m.ID, message.HeaderEncryptionKeyID)
	}
	var (
		aead    cipher.AEAD
		keyID   string
		wrapped string
		flags   byte
	)
	if e.provider != nil {
		dk, err := e.dataKey(ctx)
		if err != nil {
			return nil, err
		}
		aead, keyID, wrapped, flags = dk.aead, dk.kekID, dk.wrapped, flagEnvelope
	} else {
		kr := e.keyring.Load()
		keyID = kr.active
		aead, _ = kr.get(keyID)
	}

	// Headers: the caller's, minus those that move into the ciphertext, plus ours.
	hdrs := make(message.Headers, len(m.Headers)+2)
	nblock := 0
	for k, v := range m.Headers {
		if e.encrypts(k) {
			nblock++
			continue
		}
		hdrs[k] = v
	}
	hdrs[message.HeaderEncryptionKeyID] = keyID
	if wrapped != "" {
		hdrs[message.HeaderEncryptionWrappedKey] = wrapped
	}

	plaintext := m.Payload
	if nblock > 0 {
		flags |= flagHeaders
		plaintext = append(e.headerBlock(m.Headers, nblock), m.Payload...)
	}
	var aadBuf [256]byte
	aad := appendAAD(aadBuf[:0], flags, keyID, m, topic)
	out := make([]byte, prefixLen, prefixLen+nonceLen+len(plaintext)+tagLen)
	out[0], out[1] = formatV1, flags
	out = aead.Seal(out, nil, plaintext, aad)
	if nblock > 0 {
		clear(plaintext) // the copy holding the secret headers
	}

	c := *m
	c.Payload, c.Headers = out, hdrs
	return &c, nil
}

func (e *Encryptor) encrypts(header string) bool {
	for _, h := range e.headers {
		if h == header {
			return true
		}
	}
	return false
}

// headerBlock encodes the encrypted headers: count, then name and value, each
// length-prefixed (uvarint), in name order.
func (e *Encryptor) headerBlock(h message.Headers, n int) []byte {
	b := binary.AppendUvarint(make([]byte, 0, 64), uint64(n))
	for _, k := range e.headers {
		if v, ok := h[k]; ok {
			b = appendString(appendString(b, k), v)
		}
	}
	return b
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// BoundHeaders are the visible headers authenticated with the ciphertext (present or absent,
// and their values): Courier headers set before encryption whose meaning depends on the
// payload — the ordering sequence, the schema name, the content type. Changing, adding or
// removing one fails decryption. The list is fixed, so producers and consumers always agree.
var BoundHeaders = [...]string{message.HeaderSequence, message.HeaderSchema, message.HeaderContentType}

// appendAAD encodes what the ciphertext is bound to, unambiguously (length-prefixed).
func appendAAD(b []byte, flags byte, keyID string, m *message.Message, topic string) []byte {
	b = append(b, "courier/enc/v1\x00"...)
	b = append(b, formatV1, flags)
	b = appendString(b, keyID)
	b = appendString(b, m.ID)
	b = appendString(b, topic)
	b = appendString(b, m.Key)
	for _, h := range BoundHeaders {
		if v, ok := m.Headers[h]; ok {
			b = appendString(append(b, 1), v)
		} else {
			b = append(b, 0)
		}
	}
	return b
}

// Decrypt returns a copy of m with the decrypted payload and headers (the encrypted headers
// restored, the courier-enc-* headers removed); m is not modified. The error matches
// message.ErrPermanent and one of the error kinds when the message cannot ever be decrypted,
// and is the KeyProvider's own error otherwise.
func (e *Encryptor) Decrypt(ctx context.Context, m *message.Message) (*message.Message, error) {
	payload, headers, err := e.open(ctx, m)
	if err != nil {
		return nil, err
	}
	c := m.Clone()
	c.Payload, c.Headers = payload, headers
	return c, nil
}

// open decrypts m's payload and returns the new payload and headers.
func (e *Encryptor) open(ctx context.Context, m *message.Message) ([]byte, message.Headers, error) {
	keyID, ok := m.Headers[message.HeaderEncryptionKeyID]
	if !ok {
		if e.plaintext {
			return m.Payload, m.Headers, nil
		}
		return nil, nil, e.fail(m, ErrNotEncrypted, "no "+message.HeaderEncryptionKeyID+" header")
	}
	p := m.Payload
	if len(p) < Overhead {
		return nil, nil, e.fail(m, ErrMalformed, fmt.Sprintf("payload is %d bytes, shorter than the %d-byte minimum (truncated)", len(p), Overhead))
	}
	if p[0] != formatV1 {
		return nil, nil, e.fail(m, ErrMalformed, fmt.Sprintf("unknown format version %d", p[0]))
	}
	flags := p[1]
	if flags&^flagsKnown != 0 {
		return nil, nil, e.fail(m, ErrMalformed, fmt.Sprintf("unknown flags %#x", flags))
	}
	var aead cipher.AEAD
	if flags&flagEnvelope != 0 {
		wrapped, ok := m.Headers[message.HeaderEncryptionWrappedKey]
		if !ok {
			return nil, nil, e.fail(m, ErrMalformed, "envelope-encrypted but no "+message.HeaderEncryptionWrappedKey+" header")
		}
		var err error
		if aead, err = e.unwrap(ctx, m, keyID, wrapped); err != nil {
			return nil, nil, err
		}
	} else {
		kr := e.keyring.Load()
		if kr == nil {
			return nil, nil, e.fail(m, ErrUnknownKey, fmt.Sprintf("key %q: direct-mode message, but no Keyring is configured", keyID))
		}
		if aead, ok = kr.get(keyID); !ok {
			return nil, nil, e.fail(m, ErrUnknownKey, fmt.Sprintf("key %q is not in the keyring %v", keyID, kr.ids))
		}
	}
	topic := m.Topic
	if e.trustDLQ {
		if t, ok := m.Headers[message.HeaderDeadLetterTopic]; ok {
			topic = t
		}
	}
	var aadBuf [256]byte
	aad := appendAAD(aadBuf[:0], flags, keyID, m, topic)
	plain, err := aead.Open(make([]byte, 0, len(p)-Overhead), nil, p[prefixLen:], aad)
	if err != nil {
		return nil, nil, e.fail(m, ErrDecrypt, fmt.Sprintf("key %q: the ciphertext was changed, truncated, moved from another message or topic, or encrypted with another key", keyID))
	}

	n := len(m.Headers)
	headers := make(message.Headers, n)
	for k, v := range m.Headers {
		if k != message.HeaderEncryptionKeyID && k != message.HeaderEncryptionWrappedKey {
			headers[k] = v
		}
	}
	if flags&flagHeaders != 0 {
		rest, err := readHeaderBlock(plain, headers)
		if err != nil {
			clear(plain)
			return nil, nil, e.fail(m, ErrMalformed, "encrypted header block: "+err.Error())
		}
		plain = rest
	}
	return plain, headers, nil
}

// readHeaderBlock decodes the header block at the start of b into h and returns the rest.
func readHeaderBlock(b []byte, h message.Headers) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, errors.New("bad header count")
	}
	b = b[k:]
	for i := uint64(0); i < n; i++ {
		var name, value string
		var err error
		if name, b, err = readString(b); err != nil {
			return nil, err
		}
		if value, b, err = readString(b); err != nil {
			return nil, err
		}
		h[name] = value
	}
	return b, nil
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || n > uint64(len(b)-k) {
		return "", nil, errors.New("bad length")
	}
	end := k + int(n)
	return string(b[k:end]), b[end:], nil
}

// fail builds the permanent error for m: the kind, the message ID and a detail that never
// contains payload bytes or key material.
func (e *Encryptor) fail(m *message.Message, kind error, detail string) error {
	return message.Permanent(fmt.Errorf("%w: message %s: %s", kind, m.ID, detail))
}

// dataKey is an envelope-mode data key and its wrapped form.
type dataKey struct {
	aead    cipher.AEAD
	kekID   string
	wrapped string // base64
	expires time.Time
	uses    int
}

// dataKey returns the data key to encrypt the next message with.
func (e *Encryptor) dataKey(ctx context.Context) (*dataKey, error) {
	if e.ttl == 0 {
		return e.newDataKey(ctx)
	}
	e.dekMu.Lock()
	defer e.dekMu.Unlock()
	if dk := e.dek; dk != nil && dk.uses < e.maxUses && time.Now().Before(dk.expires) {
		dk.uses++
		return dk, nil
	}
	dk, err := e.newDataKey(ctx)
	if err != nil {
		return nil, err
	}
	dk.expires, dk.uses = time.Now().Add(e.ttl), 1
	e.dek = dk
	return dk, nil
}

func (e *Encryptor) newDataKey(ctx context.Context) (*dataKey, error) {
	dek := make([]byte, KeySize)
	_, _ = rand.Read(dek)
	defer clear(dek)
	kekID, wrapped, err := e.provider.WrapKey(ctx, dek)
	if err != nil {
		return nil, fmt.Errorf("encryption: wrap data key: %w", err)
	}
	if err := checkKeyID(kekID); err != nil {
		return nil, fmt.Errorf("encryption: KeyProvider returned a bad key ID: %w", err)
	}
	aead, err := newAEAD(dek)
	if err != nil {
		return nil, fmt.Errorf("encryption: data key: %w", err)
	}
	return &dataKey{aead: aead, kekID: kekID, wrapped: base64.StdEncoding.EncodeToString(wrapped)}, nil
}

// unwrap returns the data key of an envelope-mode message, from the cache when it can.
func (e *Encryptor) unwrap(ctx context.Context, m *message.Message, kekID, wrappedB64 string) (cipher.AEAD, error) {
	if e.provider == nil {
		return nil, e.fail(m, ErrUnknownKey, fmt.Sprintf("key-encryption key %q: envelope-mode message, but no KeyProvider is configured", kekID))
	}
	cacheKey := kekID + "\x00" + wrappedB64
	if e.cache != nil {
		if a, ok := e.cache.get(cacheKey); ok {
			return a, nil
		}
	}
	wrapped, err := base64.StdEncoding.DecodeString(wrappedB64)
	if err != nil {
		return nil, e.fail(m, ErrMalformed, message.HeaderEncryptionWrappedKey+" is not base64")
	}
	dek, err := e.provider.UnwrapKey(ctx, kekID, wrapped)
	if err != nil {
		if errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrDecrypt) || errors.Is(err, ErrMalformed) {
			return nil, message.Permanent(fmt.Errorf("message %s: %w", m.ID, err))
		}
		return nil, fmt.Errorf("encryption: message %s: unwrap data key with %q: %w", m.ID, kekID, err)
	}
	defer clear(dek)
	if len(dek) != KeySize {
		return nil, e.fail(m, ErrMalformed, fmt.Sprintf("unwrapped data key is %d bytes; want %d", len(dek), KeySize))
	}
	a, err := newAEAD(dek)
	if err != nil {
		return nil, e.fail(m, ErrMalformed, "data key: "+err.Error())
	}
	if e.cache != nil {
		e.cache.put(cacheKey, a)
	}
	return a, nil
}

// Publish returns the publish half: each message of the batch is replaced, in a new slice, by
// its encrypted copy; the caller's messages and slice are left as they were. Any failure fails
// the whole batch before anything is sent.
func (e *Encryptor) Publish() message.PublishMiddleware {
	return func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			out := make([]*message.Message, len(msgs))
			for i, m := range msgs {
				if m == nil {
					continue
				}
				c, err := e.Encrypt(ctx, topic, m)
				if err != nil {
					return fmt.Errorf("encryption: publish to %q: message %d: %w", topic, i, err)
				}
				out[i] = c
			}
			return next(ctx, topic, out)
		}
	}
}

// Consume returns the consume half: it decrypts the delivered message in place — replacing
// its Payload and Headers with new values, never writing into the received ones — and calls
// the next handler. Failures are described in the package documentation.
func (e *Encryptor) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			payload, headers, err := e.open(ctx, m)
			if err != nil {
				return err
			}
			m.Payload, m.Headers = payload, headers
			return next(ctx, m)
		}
	}
}

// unwrapCache keeps unwrapped data keys, evicting the oldest entry when full.
type unwrapCache struct {
	mu    sync.Mutex
	max   int
	items map[string]cipher.AEAD
	order []string // ring of keys in insertion order
	next  int
}

func newUnwrapCache(size int) *unwrapCache {
	return &unwrapCache{max: size, items: make(map[string]cipher.AEAD, size)}
}

func (c *unwrapCache) get(k string) (cipher.AEAD, bool) {
	c.mu.Lock()
	a, ok := c.items[k]
	c.mu.Unlock()
	return a, ok
}

func (c *unwrapCache) put(k string, a cipher.AEAD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok {
		return
	}
	if len(c.order) < c.max {
		c.order = append(c.order, k)
	} else {
		delete(c.items, c.order[c.next])
		c.order[c.next] = k
		c.next = (c.next + 1) % c.max
	}
	c.items[k] = a
}
