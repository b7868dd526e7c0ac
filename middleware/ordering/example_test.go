package ordering_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/store/memstore"
)

// The publish half stamps each key's next sequence number; the consume half lets a message
// through only when it is its key's next, acknowledges duplicates, and defers one that came
// early. In a service the halves go into transport.PublisherConfig.Middleware and
// transport.SubscriberConfig.Middleware, with a store shared by every instance.
func Example() {
	ord, err := ordering.New(ordering.Config{Store: memstore.New(memstore.Options{})})
	if err != nil {
		panic(err)
	}
	// Publish three events of one customer; keep what the broker would receive.
	var sent []*message.Message
	publish := ord.Publish()(func(_ context.Context, _ string, msgs []*message.Message) error {
		sent = append(sent, msgs...)
		return nil
	})
	var events []*message.Message
	for _, e := range []string{"placed", "paid", "shipped"} {
		events = append(events, &message.Message{ID: e, Key: "customer-7"})
	}
	if err := publish(context.Background(), "orders", events); err != nil {
		panic(err)
	}
	handle := ord.Consume()(func(_ context.Context, m *message.Message) error {
		fmt.Println("handled", m.ID)
		return nil
	})
	deliver := func(m *message.Message) {
		m.Topic, m.Subscription = "orders", "shipping"
		err := handle(context.Background(), m)
		switch {
		case errors.Is(err, ordering.ErrGap):
			fmt.Println(m.ID, "waits for an earlier event")
		case err != nil:
			fmt.Println(m.ID, err)
		}
	}
	deliver(sent[1]) // "paid" arrives first
	deliver(sent[0])
	deliver(sent[0]) // a duplicate
	deliver(sent[1]) // "paid" again, after its deferral
	deliver(sent[2])
	// Output:
	// paid waits for an earlier event
	// handled placed
	// handled paid
	// handled shipped
}
