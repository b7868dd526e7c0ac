package gcppubsub_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

var ownDLQ = transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
	func(context.Context, *message.Message, transport.Failure) error { return nil })}

// TestAttemptsAcrossConnections: with a dead-letter policy Pub/Sub counts deliveries, so the
// attempt survives a new connection; without one the adapter counts per connection, and a
// new connection starts again at 1 (Capabilities.DeliveryCount is false for that reason).
func TestAttemptsAcrossConnections(t *testing.T) {
	addr := emulator(t)
	for _, native := range []bool{true, false} {
		t.Run(fmt.Sprintf("dead-letter-policy=%v", native), func(t *testing.T) {
			cfg := transport.SubscriberConfig{NativeDeadLetter: native,
				Retry: transport.RetryPolicy{MaxAttempts: 10, InitialDelay: 10 * time.Millisecond, MaxDelay: 20 * time.Millisecond}}
			if !native {
				cfg.DeadLetter = ownDLQ.DeadLetter
			}
			fail := func(*message.Message) error { return errors.New("not yet") }
			c1 := openConn(t, addr, gcppubsub.Config{})
			first := consume(t, c1, "work", "work-sub", cfg, fail)
			if err := c1.Publish(ctxT(t), "work", &message.Message{ID: "w1", Payload: []byte("x")}); err != nil {
				t.Fatal(err)
			}
			first.waitFor(t, 15*time.Second, "two attempts", func(ds []delivered) bool { return len(ds) >= 2 })
			got := first.snapshot()
			for i, d := range got {
				if d.Attempt != i+1 {
					t.Fatalf("attempts on one connection: %v; want 1, 2, …", attempts(got))
				}
			}
			if err := c1.Close(ctxT(t)); err != nil {
				t.Fatal(err)
			}
			c2 := openConn(t, addr, gcppubsub.Config{})
			second := consume(t, c2, "work", "work-sub", cfg, fail)
			d := second.waitFor(t, 15*time.Second, "a redelivery", func(ds []delivered) bool { return len(ds) >= 1 })[0]
			if native && d.Attempt <= len(got) {
				t.Errorf("dead-letter policy: attempt %d on the new connection; want above %d (Pub/Sub counts)", d.Attempt, len(got))
			}
			if !native && d.Attempt != 1 {
				t.Errorf("no dead-letter policy: attempt %d on the new connection; want 1 (counted per connection)", d.Attempt)
			}
		})
	}
}

func attempts(ds []delivered) []int {
	a := make([]int, len(ds))
	for i, d := range ds {
		a[i] = d.Attempt
	}
	return a
}

// TestNackDelayHoldsTheMessage: a retry delay is honoured although Pub/Sub redelivers a
// nacked message at once: the adapter keeps it leased for the delay, then nacks it.
func TestNackDelayHoldsTheMessage(t *testing.T) {
	const delay = time.Second
	c := openConn(t, emulator(t), gcppubsub.Config{})
	var calls atomic.Int64
	rec := consume(t, c, "slow", "slow-sub", ownDLQ, func(*message.Message) error {
		if calls.Add(1) == 1 {
			return message.RetryAfter(errors.New("rate limited"), delay)
		}
		return nil
	})
	if err := c.Publish(ctxT(t), "slow", &message.Message{ID: "r1", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, 15*time.Second, "the retry", func(ds []delivered) bool { return len(ds) >= 2 })
	if gap := got[1].At.Sub(got[0].At); gap < delay {
		t.Errorf("redelivered %v after the failure; want no sooner than the %v asked for", gap, delay)
	}
	if got[1].Attempt != 2 {
		t.Errorf("retry has attempt %d; want 2", got[1].Attempt)
	}
}

// TestRetryPolicy: subscriptions are created with the configured retry policy, and a retry
// delay the policy's minimum backoff already covers is not added on top: the adapter nacks
// at once. pstest stores retry policies but does not enforce them, so here the message comes
// back immediately; on Google it would come back after at least the minimum backoff.
func TestRetryPolicy(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{RetryMinBackoff: 60 * time.Second, RetryMaxBackoff: 120 * time.Second})
	var calls atomic.Int64
	rec := consume(t, c, "policy", "policy-sub", ownDLQ, func(*message.Message) error {
		if calls.Add(1) == 1 {
			return message.RetryAfter(errors.New("later"), 30*time.Second)
		}
		return nil
	})
	s, err := rawClient(t, addr).SubscriptionAdminClient.GetSubscription(ctxT(t),
		&pubsubpb.GetSubscriptionRequest{Subscription: subPath(testPrefix(t) + "policy~policy-sub")})
	if err != nil {
		t.Fatal(err)
	}
	rp := s.GetRetryPolicy()
	if rp.GetMinimumBackoff().AsDuration() != 60*time.Second || rp.GetMaximumBackoff().AsDuration() != 120*time.Second {
		t.Errorf("retry policy %v; want 60s–120s", rp)
	}
	if err := c.Publish(ctxT(t), "policy", &message.Message{ID: "p1", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// Not held for 30s: the policy's 60s minimum is longer (unenforced by pstest).
	rec.waitFor(t, 15*time.Second, "an immediate nack", func(ds []delivered) bool { return len(ds) >= 2 })
}

// TestNativeMessage: Message.As reaches the Pub/Sub message; a message published without
// Courier gets Pub/Sub's ID and time, and the client's "goog…" attributes stay off Headers.
func TestNativeMessage(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	rec := consume(t, c, "native", "native-sub", ownDLQ, nil)
	if err := c.Publish(ctxT(t), "native", &message.Message{ID: "n1", Key: "k", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	p := rawClient(t, addr).Publisher(topicPath(testPrefix(t) + "native"))
	defer p.Stop()
	serverID, err := p.Publish(ctxT(t), &pubsub.Message{Data: []byte("foreign"),
		Attributes: map[string]string{"origin": "legacy", "googclient_traceparent": "00-1-2-01"}}).Get(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, 15*time.Second, "both messages", func(ds []delivered) bool { return len(ds) >= 2 })
	for _, d := range got {
		if d.Native == nil {
			t.Fatalf("Message.As(**pubsub.Message) gave nothing for %s", d.ID)
		}
		switch d.Native.ID {
		case serverID:
			if d.ID != serverID || d.Headers["origin"] != "legacy" {
				t.Errorf("foreign message: id=%q headers=%v; want Pub/Sub's ID and its attributes", d.ID, d.Headers)
			}
			if _, ok := d.Headers["googclient_traceparent"]; ok || d.Native.Attributes["googclient_traceparent"] == "" {
				t.Errorf("goog attribute: headers %v, native %v; want it on the native message only", d.Headers, d.Native.Attributes)
			}
		default:
			if d.ID != "n1" || d.Native.OrderingKey != "k" || d.Native.Attributes[message.HeaderID] != "n1" {
				t.Errorf("courier message: id=%q native=%+v", d.ID, d.Native)
			}
		}
	}
}

// TestInvalidMessageHoldsBackItsKey: a message Pub/Sub would refuse fails alone, except that
// later messages with its key stay unsent, so they cannot overtake it.
func TestInvalidMessageHoldsBackItsKey(t *testing.T) {
	c := openConn(t, emulator(t), gcppubsub.Config{})
	rec := consume(t, c, "mixed", "mixed-sub", ownDLQ, nil)
	err := c.Publish(ctxT(t), "mixed",
		&message.Message{ID: "ok", Key: "k", Payload: []byte("1")},
		&message.Message{ID: "bad", Key: "k", Headers: message.Headers{"goog-trace": "x"}},
		&message.Message{ID: "after", Key: "k", Payload: []byte("3")},
		&message.Message{ID: "other", Key: "j", Payload: []byte("4")},
	)
	var pe *transport.PublishError
	if !errors.As(err, &pe) || fmt.Sprint(pe.FailedIndexes()) != "[1 2]" {
		t.Fatalf("err = %v; want a PublishError for messages 1 and 2", err)
	}
	if !errors.Is(pe.Failed[0].Err, transport.ErrInvalidMessage) || !strings.Contains(pe.Failed[1].Err.Error(), "key order") {
		t.Errorf("errors: %v / %v", pe.Failed[0].Err, pe.Failed[1].Err)
	}
	got := rec.waitFor(t, 15*time.Second, "ok and other", func(ds []delivered) bool { n := ids(ds); return n["ok"] > 0 && n["other"] > 0 })
	time.Sleep(200 * time.Millisecond)
	if n := ids(append(got, rec.snapshot()...)); n["bad"]+n["after"] > 0 {
		t.Errorf("refused messages delivered: %v", n)
	}
}

// TestSubscriptionDeletedWhileIdle: a subscription deleted before Run makes Run fail with
// ErrSubscriptionNotFound (the stream cannot open), rather than wait forever.
func TestSubscriptionDeletedWhileIdle(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	s, err := c.Subscribe(ctxT(t), "gone", "gone-sub", ownDLQ)
	if err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t, addr).SubscriptionAdminClient.DeleteSubscription(ctxT(t),
		&pubsubpb.DeleteSubscriptionRequest{Subscription: subPath(testPrefix(t) + "gone~gone-sub")}); err != nil {
		t.Fatal(err)
	}
	err = s.Run(ctxT(t), func(context.Context, *message.Message) error { return nil })
	if !errors.Is(err, transport.ErrSubscriptionNotFound) {
		t.Errorf("Run on a deleted subscription: err = %v; want ErrSubscriptionNotFound", err)
	}
}

// blockPublish is a pstest reactor that holds every Publish RPC until released, counting them.
type blockPublish struct {
	calls   atomic.Int64
	release chan struct{}
}

func (b *blockPublish) React(any) (bool, any, error) {
	b.calls.Add(1)
	<-b.release
	return false, nil, nil
}

// TestPublishFlowControlBlocks: with one message allowed outstanding, a second Publish waits
// for the first to be confirmed (flow control "block") instead of being sent or refused.
func TestPublishFlowControlBlocks(t *testing.T) {
	block := &blockPublish{release: make(chan struct{})}
	srv := newServer(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: block})
	c := openConn(t, srv.Addr, gcppubsub.Config{PublishMaxOutstanding: 1})
	warm, cancelWarm := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancelWarm()
	if err := c.Publish(warm, "fc", &message.Message{ID: "warm-up"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("warm-up publish to a server that does not answer: err = %v; want its context's deadline", err)
	}
	// The warm-up created the topic and is stuck in the server: the one slot is taken.
	first := make(chan error, 1)
	go func() { first <- c.Publish(context.Background(), "fc", &message.Message{ID: "first"}) }()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	err := c.Publish(ctx, "fc", &message.Message{ID: "second"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("second publish while the slot is taken: err = %v; want it to block until its context ends", err)
	}
	if n := block.calls.Load(); n != 1 {
		t.Errorf("%d Publish RPCs reached the server while one was outstanding; want 1", n)
	}
	close(block.release)
	if err := <-first; err != nil {
		t.Errorf("first publish, once the server answers: %v", err)
	}
}

// TestStreamsReopen: Pub/Sub closes streaming pulls from time to time (every 30 minutes on
// Google); pstest does it here every 200ms. Nothing is lost and Run does not fail.
func TestStreamsReopen(t *testing.T) {
	srv := newServer(t)
	srv.SetStreamTimeout(200 * time.Millisecond)
	c := openConn(t, srv.Addr, gcppubsub.Config{})
	rec := consume(t, c, "streams", "streams-sub", ownDLQ, nil)
	const n = 20
	for i := range n {
		if err := c.Publish(ctxT(t), "streams", &message.Message{ID: fmt.Sprint(i), Payload: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rec.waitFor(t, 20*time.Second, "every message", func(ds []delivered) bool { return len(ids(ds)) == n })
}

// TestLargeMessage: a 3 MB message makes the round trip intact. (Pub/Sub takes 10 MB; pstest's
// gRPC server stops at 4 MB, so larger ones are not tried here.)
func TestLargeMessage(t *testing.T) {
	c := openConn(t, emulator(t), gcppubsub.Config{})
	rec := consume(t, c, "big", "big-sub", ownDLQ, nil)
	payload := make([]byte, 3<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if err := c.Publish(ctxT(t), "big", &message.Message{ID: "big", Payload: payload}); err != nil {
		t.Fatal(err)
	}
	got := rec.waitFor(t, 15*time.Second, "the large message", func(ds []delivered) bool { return len(ds) >= 1 })
	if got[0].Payload != string(payload) {
		t.Errorf("payload of %d bytes came back as %d bytes, or changed", len(payload), len(got[0].Payload))
	}
}
