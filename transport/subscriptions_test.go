package transport_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/courierhq/courier/transport"
)

// listingDriver is a fakeDriver that can list subscriptions.
type listingDriver struct {
	*fakeDriver
	subs []string
	err  error
}

func (d *listingDriver) Subscriptions(context.Context, string) ([]string, error) {
	return slices.Clone(d.subs), d.err
}

// TestSubscriptions: Conn.Subscriptions sorts what a lister returns, wraps its errors, is
// ErrUnsupported for a driver that cannot list, and ErrClosed after Close.
func TestSubscriptions(t *testing.T) {
	ctx := context.Background()
	c := transport.NewConn(&listingDriver{fakeDriver: newFake(true), subs: []string{"shipping", "billing"}}, transport.ConnConfig{})
	got, err := c.Subscriptions(ctx, "orders")
	if err != nil || !slices.Equal(got, []string{"billing", "shipping"}) {
		t.Errorf("Subscriptions = %v, %v; want [billing shipping]", got, err)
	}
	failing := transport.NewConn(&listingDriver{fakeDriver: newFake(true), err: transport.ErrUnavailable}, transport.ConnConfig{})
	if _, err := failing.Subscriptions(ctx, "orders"); !errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("lister error: %v; want it wrapped", err)
	}
	plain := transport.NewConn(newFake(true), transport.ConnConfig{})
	if _, err := plain.Subscriptions(ctx, "orders"); !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("driver without a lister: %v; want ErrUnsupported", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscriptions(ctx, "orders"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}
}
