package runner_test

import (
	"context"
	"fmt"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/runner"
)

// Two subscriptions with one lifecycle: Run returns when the process gets SIGTERM or SIGINT,
// when ctx ends (here, after the messages arrived) or when a subscriber fails.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _ := memory.Open(memory.Config{})
	defer conn.Close(context.Background())

	got := make(chan string, 2)
	r := runner.New(conn, runner.Config{DrainTimeout: 5 * time.Second})
	_ = r.Add(runner.Route{Topic: "orders", Subscription: "billing", Handler: func(_ context.Context, m *message.Message) error {
		got <- "billing " + string(m.Payload)
		return nil
	}})
	_ = r.Add(runner.Route{Topic: "orders", Subscription: "shipping", Handler: func(_ context.Context, m *message.Message) error {
		got <- "shipping " + string(m.Payload)
		return nil
	}})
	// In a service: go http.ListenAndServe(":8081", r.HealthHandler()) for /healthz and /readyz.

	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	for !r.Readiness(ctx).Ready {
		time.Sleep(time.Millisecond)
	}
	_ = conn.Publish(ctx, "orders", &message.Message{Payload: []byte("#1")})
	a, b := <-got, <-got
	if a > b {
		a, b = b, a
	}
	fmt.Println(a)
	fmt.Println(b)
	cancel()
	fmt.Println("run:", <-done)
	// Output:
	// billing #1
	// shipping #1
	// run: <nil>
}
