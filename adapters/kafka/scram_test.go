package kafka

import (
	"context"
	"strings"
	"testing"
)

// TestScramRFC7677 runs the SCRAM-SHA-256 example exchange of RFC 7677, section 3.
func TestScramRFC7677(t *testing.T) {
	s := newScram(SASLScramSHA256, "user", "pencil")
	s.nonce = func() (string, error) { return "rOprNGfwEbeRWgbNEkqO", nil }
	ctx := context.Background()
	sm, first, err := s.Start(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(first), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"; got != want {
		t.Fatalf("client-first = %q; want %q", got, want)
	}
	done, final, err := sm.Next(ctx, []byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	if err != nil || done {
		t.Fatalf("server-first: done=%v err=%v", done, err)
	}
	if got, want := string(final), "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="; got != want {
		t.Fatalf("client-final = %q; want %q", got, want)
	}
	done, _, err = sm.Next(ctx, []byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="))
	if err != nil || !done {
		t.Fatalf("server-final: done=%v err=%v", done, err)
	}
}

func TestScramRejects(t *testing.T) {
	ctx := context.Background()
	start := func(t *testing.T) *scramConv {
		s := newScram(SASLScramSHA512, "a=b,c", "pw")
		s.nonce = func() (string, error) { return "abc", nil }
		sm, first, err := s.Start(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(first), "n=a=3Db=2Cc,") {
			t.Fatalf("username not escaped: %q", first)
		}
		return sm.(*scramConv)
	}
	tests := []struct {
		name        string
		serverFirst string
		serverFinal string
		want        string
	}{
		{"nonce not extended", "r=xyz,s=c2FsdA==,i=4096", "", "nonce"},
		{"nonce not extended at all", "r=abc,s=c2FsdA==,i=4096", "", "nonce"},
		{"bad salt", "r=abcdef,s=!!,i=4096", "", "salt"},
		{"bad iterations", "r=abcdef,s=c2FsdA==,i=0", "", "iteration"},
		{"server error", "r=abcdef,s=c2FsdA==,i=4096", "e=invalid-proof", "refused"},
		{"forged server signature", "r=abcdef,s=c2FsdA==,i=4096", "v=AAAA", "proof"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := start(t)
			_, _, err := c.Next(ctx, []byte(tc.serverFirst))
			if err == nil && tc.serverFinal != "" {
				_, _, err = c.Next(ctx, []byte(tc.serverFinal))
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want one mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "pw") {
				t.Fatalf("error %q leaks the password", err)
			}
		})
	}
}
