package encryption

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
)

// Error kinds. Decryption errors match one of them with errors.Is, and message.ErrPermanent.
var (
	// ErrNotEncrypted: a message without encryption headers where encryption is required.
	ErrNotEncrypted = errors.New("encryption: message is not encrypted")
	// ErrUnknownKey: the key ID is not in the keyring (or the KEK provider does not know it).
	ErrUnknownKey = errors.New("encryption: unknown key")
	// ErrDecrypt: authentication failed — the ciphertext or its headers were changed, moved to
	// another message, or encrypted with another key under the same ID.
	ErrDecrypt = errors.New("encryption: authentication failed")
	// ErrMalformed: the payload or headers are not in the format this package writes
	// (truncated, unknown version, bad base64).
	ErrMalformed = errors.New("encryption: malformed ciphertext")
	// ErrInvalidConfig: a Config or Keyring cannot be used.
	ErrInvalidConfig = errors.New("encryption: invalid configuration")
)

// KeySize is the size of every key: AES-256.
const KeySize = 32

// Keyring is a set of named AES-256 keys, one of them active. It is immutable and safe for
// concurrent use; build a new one to rotate.
type Keyring struct {
	active string
	keys   map[string]cipher.AEAD
	ids    []string
}

// NewKeyring returns a keyring of keys (ID → 32-byte key) whose active key is activeID.
// IDs are 1–64 bytes of letters, digits and ".-_:" (they travel in a header). The key bytes
// are copied; the caller may clear its copies.
func NewKeyring(activeID string, keys map[string][]byte) (*Keyring, error) {
	if _, ok := keys[activeID]; !ok {
		return nil, fmt.Errorf("%w: active key %q is not in the keyring", ErrInvalidConfig, activeID)
	}
	kr := &Keyring{active: activeID, keys: make(map[string]cipher.AEAD, len(keys))}
	for id, k := range keys {
		if err := checkKeyID(id); err != nil {
			return nil, err
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: key %q is %d bytes; AES-256 needs %d", ErrInvalidConfig, id, len(k), KeySize)
		}
		aead, err := newAEAD(k)
		if err != nil {
			return nil, fmt.Errorf("%w: key %q: %v", ErrInvalidConfig, id, err)
		}
		kr.keys[id] = aead
		kr.ids = append(kr.ids, id)
	}
	slices.Sort(kr.ids)
	return kr, nil
}

// GenerateKey returns a new random 256-bit key.
func GenerateKey() []byte {
	k := make([]byte, KeySize)
	_, _ = rand.Read(k) // never fails (crypto/rand panics rather than return an error)
	return k
}

// ActiveID returns the ID of the key that encrypts.
func (k *Keyring) ActiveID() string { return k.active }

// IDs returns the IDs of all keys, sorted.
func (k *Keyring) IDs() []string { return slices.Clone(k.ids) }

func (k *Keyring) get(id string) (cipher.AEAD, bool) {
	a, ok := k.keys[id]
	return a, ok
}

func checkKeyID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("%w: key ID %q must be 1–64 bytes", ErrInvalidConfig, id)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_' || c == ':') {
			return fmt.Errorf("%w: key ID %q: use letters, digits and .-_: only", ErrInvalidConfig, id)
		}
	}
	return nil
}

// newAEAD returns AES-256-GCM with random 96-bit nonces that Seal prepends and Open reads.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithRandomNonce(block)
}

// KeyProvider wraps and unwraps data keys with a key-encryption key (KEK), for envelope
// mode. Implementations must be safe for concurrent use. A KMS-backed provider maps "no such
// key" and "this ciphertext is not ours" to ErrUnknownKey and ErrDecrypt (those dead-letter
// the message) and returns other failures (timeouts, throttling) as they are (those are
// retried).
type KeyProvider interface {
	// WrapKey encrypts dek with the current KEK and returns the KEK's ID and the wrapped key.
	WrapKey(ctx context.Context, dek []byte) (kekID string, wrapped []byte, err error)
	// UnwrapKey decrypts a data key wrapped by the KEK named kekID.
	UnwrapKey(ctx context.Context, kekID string, wrapped []byte) ([]byte, error)
}

// LocalKeyProvider wraps data keys with the keys of a Keyring held in the process: AES-256-GCM
// under the active key, with the KEK ID as associated data. Rotate KEKs with SetKeyring, as
// for direct mode.
type LocalKeyProvider struct {
	kr atomic.Pointer[Keyring]
}

// NewLocalKeyProvider returns a provider that wraps with kr's active key.
func NewLocalKeyProvider(kr *Keyring) (*LocalKeyProvider, error) {
	p := &LocalKeyProvider{}
	if err := p.SetKeyring(kr); err != nil {
		return nil, err
	}
	return p, nil
}

// SetKeyring replaces the provider's keyring.
func (p *LocalKeyProvider) SetKeyring(kr *Keyring) error {
	if kr == nil {
		return fmt.Errorf("%w: nil keyring", ErrInvalidConfig)
	}
	p.kr.Store(kr)
	return nil
}

// WrapKey implements KeyProvider.
func (p *LocalKeyProvider) WrapKey(_ context.Context, dek []byte) (string, []byte, error) {
	kr := p.kr.Load()
	aead, _ := kr.get(kr.active)
	return kr.active, aead.Seal(nil, nil, dek, wrapAAD(kr.active)), nil
}

// UnwrapKey implements KeyProvider.
func (p *LocalKeyProvider) UnwrapKey(_ context.Context, kekID string, wrapped []byte) ([]byte, error) {
	aead, ok := p.kr.Load().get(kekID)
	if !ok {
		return nil, fmt.Errorf("%w: key-encryption key %q", ErrUnknownKey, kekID)
	}
	dek, err := aead.Open(nil, nil, wrapped, wrapAAD(kekID))
	if err != nil {
		return nil, fmt.Errorf("%w: data key does not unwrap under key-encryption key %q", ErrDecrypt, kekID)
	}
	return dek, nil
}

func wrapAAD(kekID string) []byte { return append([]byte("courier/dek/v1\x00"), kekID...) }
