// Command reqreply is request-reply on Courier: a price service answers requests, a caller
// asks for 20 prices at once and waits for each reply. It runs on the in-process broker by
// default and on any broker named by COURIER_URL:
//
//	go run ./examples/reqreply
//	COURIER_URL=amqp://guest:guest@127.0.0.1:5672/ go run ./examples/reqreply
//
// It shows the outcomes a request can have: a reply; an error reply (an unknown SKU) that the
// caller matches with errors.As; and a timeout, after which the caller retries with the same
// correlation ID and gets its answer, while the first, late reply is dropped and counted.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/reqreply"
	"github.com/courierhq/courier/transport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "reqreply:", err)
		os.Exit(1)
	}
}

const requests = 20 // SKUs asked for at once; sku-13 is unknown, sku-7 is slow the first time

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	url := transport.URLFromEnv()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())

	topic := fmt.Sprintf("reqreply-prices-%06d", rand.IntN(1_000_000)) // fresh per run
	fmt.Printf("broker  %s (%s)\ntopic   %s\n\n", transport.RedactURL(url), conn.Capabilities().Name, topic)

	stop, err := serve(ctx, conn, topic)
	if err != nil {
		return err
	}
	defer stop()

	r, err := reqreply.NewRequester(ctx, conn, reqreply.RequesterConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer r.Close(context.Background())
	fmt.Printf("replies %s\n\n", r.ReplyTopic())

	results := make([]string, requests)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := range requests {
		wg.Go(func() {
			res, err := ask(ctx, r, topic, "sku-"+strconv.Itoa(i+1))
			if err != nil {
				failed.Add(1)
			}
			results[i] = res
		})
	}
	wg.Wait()
	for _, line := range results {
		fmt.Println(line)
	}
	// The slow first answer to sku-7 arrives after its retry was answered: wait to see it
	// dropped (every reply is either delivered to its caller or dropped as late).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if s := r.Stats(); s.Replies+s.Late >= s.Requests {
			break
		}
	}
	s := r.Stats()
	fmt.Printf("\nrequests published %d, replies delivered %d, late replies dropped %d\n", s.Requests, s.Replies, s.Late)
	if n := failed.Load(); n > 0 {
		return fmt.Errorf("%d requests failed", n)
	}
	return nil
}

// ask requests one price, retrying on timeout with the same correlation ID (the documented
// way to not lose an answer), and describes the outcome.
func ask(ctx context.Context, r *reqreply.Requester, topic, sku string) (string, error) {
	id := reqreply.NewCorrelationID()
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		reply, err := r.Request(actx, topic, message.New([]byte(sku)), reqreply.WithCorrelationID(id))
		cancel()
		var remote *reqreply.RemoteError
		switch {
		case err == nil:
			return fmt.Sprintf("%-7s %s (attempt %d)", sku, reply.Payload, attempt), nil
		case errors.As(err, &remote) && remote.Kind == "not-found":
			return fmt.Sprintf("%-7s no price: %s", sku, remote.Message), nil // an expected answer
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			continue // no reply in time: ask again with the same correlation ID
		default:
			return fmt.Sprintf("%-7s FAILED: %v", sku, err), err
		}
	}
}

// serve runs the price service on topic until stop is called.
func serve(ctx context.Context, conn *transport.Conn, topic string) (stop func(), err error) {
	sub, err := conn.Subscribe(ctx, topic, "pricer", transport.SubscriberConfig{Concurrency: 8, Order: transport.OrderNone})
	if err != nil {
		return nil, err
	}
	var slowOnce sync.Once
	price := func(ctx context.Context, req *message.Message) (*message.Message, error) {
		sku := string(req.Payload)
		switch sku {
		case "sku-13":
			return nil, &reqreply.RemoteError{Kind: "not-found", Message: "unknown SKU " + sku}
		case "sku-7":
			slow := false
			slowOnce.Do(func() { slow = true })
			if slow { // the first answer comes after the caller gave up: it is dropped
				time.Sleep(3 * time.Second)
			}
		}
		n, _ := strconv.Atoi(sku[len("sku-"):])
		return message.New(fmt.Appendf(nil, "%d.%02d EUR", 3+n, n*7%100)), nil
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sub.Run(runCtx, reqreply.Responder(conn, price)); err != nil {
			fmt.Fprintln(os.Stderr, "responder:", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}
