package storeurl_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/storeurl"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// roundTrip proves the store works: a key claimed, completed, then refused as done.
func roundTrip(t *testing.T, s storeurl.Store) {
	t.Helper()
	ctx := context.Background()
	key := "storeurl-" + strings.ReplaceAll(t.Name(), "/", "-") + "-" + time.Now().Format("150405.000000000")
	c, err := s.Claim(ctx, key, "a", time.Minute)
	if err != nil || c.Status != idempotency.Acquired {
		t.Fatalf("first claim: %+v, %v", c, err)
	}
	if err := s.Complete(ctx, key, "a", time.Minute); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Claim(ctx, key, "b", time.Minute); err != nil || c.Status != idempotency.Done {
		t.Fatalf("claim after completion: %+v, %v; want done", c, err)
	}
}

func TestOpenMemory(t *testing.T) {
	for _, u := range []string{"", "memory://", "MEMORY://"} {
		s, closeFn, err := storeurl.Open(context.Background(), u)
		if err != nil {
			t.Fatalf("Open(%q): %v", u, err)
		}
		roundTrip(t, s)
		closeFn()
	}
}

func TestOpenInvalid(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"nope://u:s3cret@host/x", `unknown scheme "nope"`},
		{"u:s3cret@host", "no scheme"},
	} {
		_, _, err := storeurl.Open(context.Background(), tc.url)
		if !errors.Is(err, storeurl.ErrInvalidURL) || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "redis, rediss, postgres") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q) = %v; want ErrInvalidURL saying %q, listing the schemes, without the password", tc.url, err, tc.want)
		}
	}
}

// TestOpenUnreachable: nothing listens on port 1; the error says so without the password.
func TestOpenUnreachable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, u := range []string{"redis://:s3cret@127.0.0.1:1/0", "postgres://courier:s3cret@127.0.0.1:1/courier?connect_timeout=5"} {
		_, _, err := storeurl.Open(ctx, u)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("Open(%s) = %v; want a connection error naming the host, without the password", u, err)
		}
	}
}

// withPassword returns rawURL with its password replaced.
func withPassword(t *testing.T, rawURL, password string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String()
}

func TestOpenRedis(t *testing.T) {
	u := brokers.Endpoint(t, brokers.Redis)
	s, closeFn, err := storeurl.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	roundTrip(t, s)
}

func TestOpenPostgres(t *testing.T) {
	u := brokers.Endpoint(t, brokers.Postgres)
	ctx := context.Background()
	s, closeFn, err := storeurl.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFn()
	roundTrip(t, s)

	// A wrong password: refused by the server, and the error does not repeat it.
	_, _, err = storeurl.Open(ctx, withPassword(t, u, "wr0ng-s3cret"))
	if err == nil || strings.Contains(err.Error(), "wr0ng-s3cret") || !strings.Contains(err.Error(), "password") {
		t.Errorf("wrong password: %v; want an authentication error without the password", err)
	}
}
