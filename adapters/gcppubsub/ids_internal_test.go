package gcppubsub

import (
	"errors"
	"strings"
	"testing"

	"github.com/courierhq/courier/transport/driver"
)

func TestSubscriptionIDFor(t *testing.T) {
	long := strings.Repeat("t", 200)
	for _, tc := range []struct {
		name, prefix, topic, sub string
		want                     string
		wantErr                  error
	}{
		{name: "plain", topic: "orders", sub: "billing", want: "orders~billing"},
		{name: "prefix", prefix: "dev-", topic: "orders", sub: "billing", want: "dev-orders~billing"},
		{name: "same name, other topic", topic: "invoices", sub: "billing", want: "invoices~billing"},
		{name: "dead-letter keeper", topic: "orders.dlq", sub: "billing.dlq", want: "orders.dlq~billing.dlq"},
		{name: "digit first", topic: "1orders", sub: "billing", wantErr: driver.ErrInvalidTopic},
		{name: "goog", topic: "google", sub: "billing", wantErr: driver.ErrInvalidTopic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := subscriptionIDFor(tc.prefix, tc.topic, tc.sub)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Errorf("subscriptionIDFor(%q, %q, %q) = %q, %v; want %q, %v", tc.prefix, tc.topic, tc.sub, got, err, tc.want, tc.wantErr)
			}
		})
	}
	t.Run("too long: hashed, stable, distinct, valid", func(t *testing.T) {
		a1, err1 := subscriptionIDFor("", long, long+"a")
		a2, _ := subscriptionIDFor("", long, long+"a")
		b, err2 := subscriptionIDFor("", long, long+"b")
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if len(a1) != maxIDLen || a1 != a2 || a1 == b || checkID("subscription", a1) != nil {
			t.Errorf("long IDs %q (%d) / %q: want 255 characters, stable, distinct, valid", a1, len(a1), b)
		}
	})
}
