// Package encryption encrypts message payloads (and chosen headers) end to end with
// AES-256-GCM: the publish half encrypts before the message leaves the process, the consume
// half decrypts before the handler runs. Brokers, dead-letter topics and anyone reading them
// see ciphertext only. Both halves come from one Encryptor, so they cannot disagree:
//
//	kr, _ := encryption.NewKeyring("k2", map[string][]byte{"k1": old, "k2": current})
//	enc, _ := encryption.New(encryption.Config{Keyring: kr})
//	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{enc.Publish()}})
//	sub, _ := conn.Subscribe(ctx, "payments", "ledger", transport.SubscriberConfig{
//		Middleware: []message.Middleware{enc.Consume()}})
//
// # What is bound
//
// The ciphertext is authenticated together with the message ID, the topic, the ordering key,
// the key ID and the BoundHeaders — the ordering sequence number, the schema name and the
// content type — (GCM associated data). A ciphertext copied, with its headers, into another
// message — another ID, topic, key or sequence number — fails to decrypt. So middleware that
// runs before decryption on the consume side (ordering, idempotency) may read these fields,
// and only a message that then decrypts has them confirmed. The topic is the one the message was
// published to: the consume half uses Message.Topic, which is the same topic again after a
// dead-letter redrive (redrive publishes back to the original topic with the same ID and key).
// A consumer of a dead-letter subscription itself (an inspection tool) sees the dead-letter
// topic; Config.TrustDeadLetterTopic makes it authenticate against the original topic the
// copy names in message.HeaderDeadLetterTopic instead. Leave it off elsewhere: it lets whoever
// can publish to the topic replay a ciphertext of another topic under its name.
//
// # Keys
//
// A Keyring holds named 256-bit keys: the active one encrypts, every one decrypts, and the key
// ID travels in message.HeaderEncryptionKeyID. Rotation without downtime:
//
//  1. give every consumer the new key (not active): NewKeyring("k1", {k1, k2});
//  2. make it active on the producers: NewKeyring("k2", {k1, k2}) — messages in flight under k1
//     still decrypt;
//  3. once nothing encrypted under k1 can be delivered any more (retention, dead-letter
//     topics), drop k1.
//
// Encryptor.SetKeyring swaps the keyring of a running Encryptor.
//
// Envelope mode (Config.KeyProvider): each message is encrypted with a fresh data key — or
// one reused for Config.DataKeyTTL — which a KeyProvider wraps with its key-encryption key
// (KEK). The wrapped data key travels base64 in message.HeaderEncryptionWrappedKey and the
// KEK's ID in message.HeaderEncryptionKeyID. LocalKeyProvider wraps with a Keyring in the
// process; a KMS implements KeyProvider with its Encrypt/Decrypt calls. Consumers cache
// unwrapped data keys (Config.UnwrapCacheSize), so a KMS is asked once per data key, not per
// message. A Config may set both a Keyring and a KeyProvider: publishing uses envelope mode,
// and consuming accepts both (for a migration).
//
// Random 96-bit nonces bound how much one key may encrypt: NIST SP 800-38D asks for at most
// 2³² messages per key. Rotate direct-mode keys well before that; envelope mode stays far below
// it by construction (Config.DataKeyMaxUses).
//
// # Failures
//
// Tampered, truncated or moved ciphertext (ErrDecrypt, ErrMalformed), an unknown key ID
// (ErrUnknownKey), and a message without encryption headers (ErrNotEncrypted, unless
// Config.AllowPlaintext) are permanent errors: the engine dead-letters the message as received,
// still encrypted, with the reason in the dead-letter headers. A KeyProvider failure that is
// not ErrUnknownKey or ErrDecrypt (a KMS timeout) is returned as is, so the engine retries.
// Decryption never panics on any input (fuzzed: FuzzDecrypt), and no error, log line or
// header ever contains plaintext or key material.
//
// # Headers
//
// Config.Headers names application headers to encrypt with the payload: on publish they move
// into the ciphertext and vanish from the message; on consume they reappear, and their
// decrypted values win over any header of the same name the broker delivered. Courier's own
// headers (message.ReservedPrefix) cannot be encrypted: adapters, the engine and other
// middleware read them.
//
// # Format
//
// Payload: version (1) | flags (1) | nonce (12) | ciphertext | GCM tag (16), so 30 bytes more
// than the plaintext, plus the header block when headers are encrypted. The consume half
// replaces Payload and Headers of the delivered message with new values (decrypted payload,
// headers without the courier-enc-* ones); it never writes into the received ones, so the
// engine can dead-letter the message exactly as received. The publish half sends encrypted
// copies and leaves the caller's messages untouched.
//
// # Chain position
//
// Outermost on the consume side (decrypt first: validation and the handler need plaintext,
// and the message ID is authenticated only once decryption succeeds); innermost on the publish
// side (after validation and ordering have set the final payload, key and headers). See
// package chain.
package encryption
