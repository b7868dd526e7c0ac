package idempotency_test

import (
	"context"
	"fmt"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/store/memstore"
)

// A message delivered three times is handled once. In a service, the middleware goes into
// transport.SubscriberConfig.Middleware, with a store shared by every instance
// (redisstore, pgstore).
func Example() {
	idem, err := idempotency.New(idempotency.Config{Store: memstore.New(memstore.Options{})})
	if err != nil {
		panic(err)
	}
	h := idem.Consume()(func(_ context.Context, m *message.Message) error {
		fmt.Println("charging", m.ID)
		return nil
	})
	for i := 0; i < 3; i++ {
		m := &message.Message{ID: "payment-42", Topic: "payments", Subscription: "ledger"}
		fmt.Println("delivery", i+1, "->", h(context.Background(), m))
	}
	// Output:
	// charging payment-42
	// delivery 1 -> <nil>
	// delivery 2 -> <nil>
	// delivery 3 -> <nil>
}
