package transport_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func openMemory(t *testing.T, cfg memory.Config) *transport.Conn {
	t.Helper()
	c, err := memory.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// receiveOne pulls one message from p within a second.
func receiveOne(t *testing.T, p *transport.Puller) *message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	buf := make([]*message.Message, 1)
	if n, err := p.Receive(ctx, buf); n != 1 || err != nil {
		t.Fatalf("Receive = %d, %v; want one message", n, err)
	}
	return buf[0]
}

func TestPuller(t *testing.T) {
	ctx := context.Background()
	c := openMemory(t, memory.Config{})
	if err := c.EnsureSubscription(ctx, "t", "s"); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, "t", &message.Message{ID: "a", Payload: []byte("p")}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Pull(ctx, "t", "s", transport.PullConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if m := receiveOne(t, p); m.ID != "a" {
		t.Fatalf("got %q", m.ID)
	} else if err := p.Release(ctx, m); err != nil {
		t.Fatal(err)
	}
	m := receiveOne(t, p) // released: delivered again
	if m.ID != "a" || m.Attempt != 2 {
		t.Fatalf("after Release got %q attempt %d; want a, 2", m.ID, m.Attempt)
	}
	if err := p.Ack(ctx, m); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if n, err := p.Receive(short, make([]*message.Message, 1)); n != 0 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("after Ack: Receive = %d, %v; want nothing", n, err)
	}
}

func TestPullRefuses(t *testing.T) {
	ctx := context.Background()
	c := openMemory(t, memory.Config{})
	if _, err := c.Pull(ctx, "bad topic", "s", transport.PullConfig{}); !errors.Is(err, transport.ErrInvalidTopic) {
		t.Errorf("bad topic: %v", err)
	}
	if _, err := c.Pull(ctx, "t", "s", transport.PullConfig{Prefetch: -1}); !errors.Is(err, transport.ErrInvalidConfig) {
		t.Errorf("negative prefetch: %v", err)
	}
	_ = c.Close(ctx)
	if err := c.EnsureSubscription(ctx, "t", "s"); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("closed: %v", err)
	}
}

func TestTopicDeadLettererStoresHostileCopies(t *testing.T) {
	ctx := context.Background()
	c := openMemory(t, memory.Config{MaxHeaderValueBytes: 1024})
	if err := c.EnsureSubscription(ctx, "t.dlq", "s.dlq"); err != nil {
		t.Fatal(err)
	}
	var stored int
	dl := transport.TopicDeadLetterer{Conn: c, OnDeadLetter: func(*message.Message, transport.Failure) { stored++ }}
	m := &message.Message{ID: "a\xff", Key: "k", Payload: []byte("p"), Headers: message.Headers{"": "e", "big": strings.Repeat("x", 2000)}}
	if err := dl.DeadLetter(ctx, m, transport.Failure{Err: errors.New("boom"), Topic: "t", Subscription: "s"}); err != nil {
		t.Fatal(err)
	}
	p, err := c.Pull(ctx, "t.dlq", "s.dlq", transport.PullConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	got := receiveOne(t, p)
	if stored != 1 || got.ID != `"a\xff"` || got.Header(transport.HeaderDeadLetterCut) != `"h:big"` || got.Header(`""`) != "e" {
		t.Fatalf("stored %d; copy %q with headers %q", stored, got.ID, got.Headers)
	}
}

func TestTopicDeadLettererKeepsAPayloadThatCannotFit(t *testing.T) {
	ctx := context.Background()
	c := openMemory(t, memory.Config{MaxMessageBytes: 4096})
	if err := c.EnsureSubscription(ctx, "t.dlq", "s.dlq"); err != nil {
		t.Fatal(err)
	}
	called := false
	dl := transport.TopicDeadLetterer{Conn: c, OnDeadLetter: func(*message.Message, transport.Failure) { called = true }}
	m := &message.Message{ID: "a", Payload: make([]byte, 8000)} // from a broker with a larger limit
	err := dl.DeadLetter(ctx, m, transport.Failure{Err: errors.New("boom"), Topic: "t", Subscription: "s"})
	if !errors.Is(err, transport.ErrMessageTooLarge) || called {
		t.Fatalf("DeadLetter = %v (hook called %v); want ErrMessageTooLarge so that the original is kept", err, called)
	}
	p, err := c.Pull(ctx, "t.dlq", "s.dlq", transport.PullConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	got := receiveOne(t, p)
	if len(got.Payload) != 0 || got.Header(transport.HeaderDeadLetterPayloadOmitted) != "8000" || got.Header(message.HeaderDeadLetterTopic) != "t" {
		t.Fatalf("notice: %d payload bytes, headers %q", len(got.Payload), got.Headers)
	}
}
