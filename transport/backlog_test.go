package transport_test

import (
	"context"
	"errors"
	"testing"

	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// backlogDriver reports a fixed backlog or error.
type backlogDriver struct {
	statusDriver
	bl  driver.Backlog
	err error
}

func (d *backlogDriver) Capabilities() driver.Capabilities {
	return driver.Capabilities{Name: "backlog", Backlog: true}
}

func (d *backlogDriver) Backlog(context.Context, string, string) (driver.Backlog, error) {
	return d.bl, d.err
}

// TestConnBacklog: Conn.Backlog passes the driver's answer through, wraps its errors with
// the subscription's name, and says ErrUnsupported for a driver that cannot tell and
// ErrClosed after Close.
func TestConnBacklog(t *testing.T) {
	ctx := context.Background()
	want := driver.Backlog{Messages: 7, InFlight: 2, Delayed: transport.BacklogUnknown, Consumers: 1}
	c := transport.NewConn(&backlogDriver{bl: want}, transport.ConnConfig{})
	got, err := c.Backlog(ctx, "orders", "billing")
	if err != nil || got.Messages != 7 || got.InFlight != 2 || got.Delayed != transport.BacklogUnknown || got.Consumers != 1 {
		t.Fatalf("Backlog = %+v, %v; want %+v", got, err, want)
	}
	if got.Pending() != 9 {
		t.Errorf("Pending = %d; want 9 (unknown counts left out)", got.Pending())
	}

	nf := transport.NewConn(&backlogDriver{err: driver.ErrSubscriptionNotFound}, transport.ConnConfig{})
	if _, err := nf.Backlog(ctx, "orders", "billing"); !errors.Is(err, transport.ErrSubscriptionNotFound) {
		t.Errorf("not found: %v", err)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Backlog(cancelled, "orders", "billing"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v; want context.Canceled", err)
	}

	plain := transport.NewConn(&statusDriver{}, transport.ConnConfig{})
	if _, err := plain.Backlog(ctx, "orders", "billing"); !errors.Is(err, transport.ErrUnsupported) {
		t.Errorf("driver without BacklogReporter: %v; want ErrUnsupported", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Backlog(ctx, "orders", "billing"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("after Close: %v; want ErrClosed", err)
	}
}

// TestBacklogPending: Pending adds the known counts only.
func TestBacklogPending(t *testing.T) {
	for _, tc := range []struct {
		b    transport.Backlog
		want int64
	}{
		{transport.Backlog{}, 0},
		{transport.Backlog{Messages: 5}, 5},
		{transport.Backlog{Messages: 5, InFlight: 2, Delayed: 3}, 10},
		{transport.Backlog{Messages: 5, InFlight: transport.BacklogUnknown, Delayed: transport.BacklogUnknown}, 5},
		{transport.Backlog{Messages: 0, InFlight: transport.BacklogUnknown, Delayed: 4}, 4},
	} {
		if got := tc.b.Pending(); got != tc.want {
			t.Errorf("%+v.Pending() = %d; want %d", tc.b, got, tc.want)
		}
	}
}
