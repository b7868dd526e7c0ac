package kafka

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/segmentio/kafka-go/sasl"
)

// scram is a SCRAM-SHA-256 / SCRAM-SHA-512 client (RFC 5802, RFC 7677) implementing
// kafka-go's sasl.Mechanism on the standard library, so that the adapter needs no extra
// module. Usernames are escaped as the RFC requires ("=" and ","); SASLprep normalisation
// is not applied, which only matters for non-ASCII credentials.
type scram struct {
	name       string
	hash       func() hash.Hash
	user, pass string
	nonce      func() (string, error) // replaced in tests
}

func newScram(mechanism, user, pass string) *scram {
	s := &scram{name: mechanism, user: user, pass: pass, nonce: randomNonce}
	if mechanism == SASLScramSHA512 {
		s.hash = sha512.New
	} else {
		s.hash = sha256.New
	}
	return s
}

func randomNonce() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawStdEncoding.EncodeToString(b), nil
}

// Name implements sasl.Mechanism.
func (s *scram) Name() string { return s.name }

// Start implements sasl.Mechanism: it returns the client-first message.
func (s *scram) Start(context.Context) (sasl.StateMachine, []byte, error) {
	nonce, err := s.nonce()
	if err != nil {
		return nil, nil, fmt.Errorf("scram: nonce: %w", err)
	}
	user := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s.user)
	c := &scramConv{s: s, nonce: nonce, firstBare: "n=" + user + ",r=" + nonce}
	return c, []byte("n,," + c.firstBare), nil
}

// scramConv is one authentication exchange.
type scramConv struct {
	s         *scram
	nonce     string
	firstBare string
	serverSig []byte
	step      int
}

var errScramServer = errors.New("scram: the server's proof did not verify")

// Next implements sasl.StateMachine.
func (c *scramConv) Next(_ context.Context, challenge []byte) (bool, []byte, error) {
	c.step++
	switch c.step {
	case 1:
		resp, err := c.final(string(challenge))
		return false, resp, err
	case 2:
		attrs := parseScram(string(challenge))
		if e, ok := attrs["e"]; ok {
			return false, nil, fmt.Errorf("scram: server refused: %s", e)
		}
		v, err := base64.StdEncoding.DecodeString(attrs["v"])
		if err != nil || subtle.ConstantTimeCompare(v, c.serverSig) != 1 {
			return false, nil, errScramServer
		}
		return true, nil, nil
	}
	return false, nil, errors.New("scram: unexpected extra challenge")
}

// final answers the server-first message with the client-final message.
func (c *scramConv) final(serverFirst string) ([]byte, error) {
	attrs := parseScram(serverFirst)
	nonce, saltB64, iterS := attrs["r"], attrs["s"], attrs["i"]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, errors.New("scram: server nonce does not extend the client's")
	}
	salt, err := base64.StdEncoding.DecodeString(saltB64)
	if err != nil || len(salt) == 0 {
		return nil, errors.New("scram: bad salt from server")
	}
	iter, err := strconv.Atoi(iterS)
	if err != nil || iter < 1 || iter > 1<<24 {
		return nil, fmt.Errorf("scram: bad iteration count %q from server", iterS)
	}
	h := c.s.hash
	salted, err := pbkdf2.Key(h, c.s.pass, salt, iter, h().Size())
	if err != nil {
		return nil, fmt.Errorf("scram: %w", err)
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	storedKey := sum(h, clientKey)
	withoutProof := "c=biws,r=" + nonce // biws = base64("n,,"): no channel binding
	authMessage := []byte(c.firstBare + "," + serverFirst + "," + withoutProof)
	clientSig := hmacSum(h, storedKey, authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ clientSig[i]
	}
	c.serverSig = hmacSum(h, hmacSum(h, salted, []byte("Server Key")), authMessage)
	var b bytes.Buffer
	b.WriteString(withoutProof)
	b.WriteString(",p=")
	b.WriteString(base64.StdEncoding.EncodeToString(proof))
	return b.Bytes(), nil
}

func parseScram(s string) map[string]string {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		if len(part) >= 2 && part[1] == '=' {
			m[part[:1]] = part[2:]
		}
	}
	return m
}

func hmacSum(h func() hash.Hash, key, data []byte) []byte {
	mac := hmac.New(h, key)
	mac.Write(data)
	return mac.Sum(nil)
}

func sum(h func() hash.Hash, data []byte) []byte {
	x := h()
	x.Write(data)
	return x.Sum(nil)
}
