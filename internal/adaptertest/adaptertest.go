// Package adaptertest holds the tests every adapter runs against its own broker, written
// once: each adapter supplies only what is its own (how a plain client of the broker
// publishes, what a plain consumer reads, what it adds to the common checks).
package adaptertest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/courierhq/courier/transport"
)

// Open opens a connection with open (given a 30 s deadline) and closes it when the test
// ends; a failure to open or to close fails the test (a connection the test closed itself
// aside).
func Open(t testing.TB, open func(ctx context.Context) (*transport.Conn, error)) *transport.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := open(ctx)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := c.Close(ctx); err != nil && !errors.Is(err, transport.ErrClosed) {
			t.Errorf("close: %v", err)
		}
	})
	return c
}

// OpenURL opens rawURL with transport.Open, as Open does.
func OpenURL(t testing.TB, rawURL string) *transport.Conn {
	t.Helper()
	return Open(t, func(ctx context.Context) (*transport.Conn, error) { return transport.Open(ctx, rawURL) })
}
