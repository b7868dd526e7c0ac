package kafka

import (
	"context"
	"errors"
	"testing"

	xscram "github.com/xdg-go/scram"

	"github.com/courierhq/courier/transport"
)

// TestSASLScramAgainstServer runs the mechanism saslMechanism builds (kafka-go's sasl/scram)
// through a SCRAM exchange with an independent server implementation, for both hashes, and
// checks that a wrong password is refused.
func TestSASLScramAgainstServer(t *testing.T) {
	for _, tc := range []struct {
		mechanism string
		hash      xscram.HashGeneratorFcn
	}{{SASLScramSHA256, xscram.SHA256}, {SASLScramSHA512, xscram.SHA512}} {
		t.Run(tc.mechanism, func(t *testing.T) {
			// The server stores the credentials of "ada@corp" with password "pencil".
			owner, err := tc.hash.NewClient("ada@corp", "pencil", "")
			if err != nil {
				t.Fatal(err)
			}
			stored := owner.GetStoredCredentials(xscram.KeyFactors{Salt: "salt-1234", Iters: 4096})
			lookup := func(user string) (xscram.StoredCredentials, error) {
				if user != "ada@corp" {
					return xscram.StoredCredentials{}, errors.New("unknown user")
				}
				return stored, nil
			}
			for _, pw := range []string{"pencil", "crayon"} {
				srv, err := tc.hash.NewServer(lookup)
				if err != nil {
					t.Fatal(err)
				}
				err = exchange(t, &SASL{Mechanism: tc.mechanism, Username: "ada@corp", Password: pw}, srv.NewConversation())
				if ok := err == nil; ok != (pw == "pencil") {
					t.Errorf("password %q: err = %v", pw, err)
				}
			}
		})
	}
}

// exchange runs the client mechanism against the server conversation; it returns the
// first failure of either side.
func exchange(t *testing.T, s *SASL, srv *xscram.ServerConversation) error {
	t.Helper()
	mech, err := saslMechanism(s)
	if err != nil {
		t.Fatal(err)
	}
	if mech.Name() != s.Mechanism {
		t.Errorf("Name() = %q; want %q", mech.Name(), s.Mechanism)
	}
	ctx := context.Background()
	sm, msg, err := mech.Start(ctx)
	if err != nil {
		return err
	}
	for range 4 {
		reply, err := srv.Step(string(msg))
		if err != nil {
			return err
		}
		done, next, err := sm.Next(ctx, []byte(reply))
		if err != nil {
			return err
		}
		if done {
			if !srv.Valid() {
				return errors.New("server did not validate the client")
			}
			return nil
		}
		msg = next
	}
	return errors.New("exchange did not finish")
}

func TestSASLMechanismUnknown(t *testing.T) {
	if _, err := saslMechanism(&SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"}); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("err = %v; want ErrInvalidConfig", err)
	}
	if m, err := saslMechanism(nil); m != nil || err != nil {
		t.Errorf("nil SASL: %v, %v", m, err)
	}
}
