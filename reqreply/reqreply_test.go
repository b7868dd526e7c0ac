package reqreply

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"go.uber.org/goleak"
)

// TestMain checks for leaked goroutines, except the ones the broker clients keep for the life of
// the process (the integration tests; the same list as cmd/courier's and the adapters').
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*connPool).discover"),
		goleak.IgnoreTopFunction("github.com/segmentio/kafka-go.(*conn).run"))
}

func memConn(t testing.TB) *transport.Conn {
	t.Helper()
	conn, err := transport.Open(context.Background(), "memory://")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestConcurrentRequests(t *testing.T) { scenarioConcurrent(t, memConn(t), 1000, 30*time.Second) }

func TestTimeoutDropsLateReply(t *testing.T) { scenarioTimeout(t, memConn(t), 10*time.Second) }

func TestResponderErrorReachesCaller(t *testing.T) { scenarioErrors(t, memConn(t), 10*time.Second) }

func TestResponderRestart(t *testing.T) {
	scenarioRestart(t, memConn(t), 200, 300*time.Millisecond, 30*time.Second)
}

func TestDuplicateCorrelationID(t *testing.T) {
	conn := memConn(t)
	r := newRequester(t, conn)
	topic := uniqueName("rr-dup")
	if _, err := conn.Subscribe(context.Background(), topic, "nobody", transport.SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := r.Request(ctx, topic, message.New(nil), WithCorrelationID("same"))
		first <- err
	}()
	waitFor(t, 5*time.Second, "the first request to be published", func() bool { return r.Stats().Requests == 1 })
	if _, err := r.Request(ctx, topic, message.New(nil), WithCorrelationID("same")); !errors.Is(err, ErrDuplicateRequest) {
		t.Errorf("second request with the same ID: %v, want ErrDuplicateRequest", err)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first request: %v, want context.Canceled", err)
	}
}

func TestCloseFailsWaitingRequest(t *testing.T) {
	conn := memConn(t)
	r, err := NewRequester(context.Background(), conn, RequesterConfig{})
	if err != nil {
		t.Fatal(err)
	}
	topic := uniqueName("rr-close")
	if _, err := conn.Subscribe(context.Background(), topic, "nobody", transport.SubscriberConfig{}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r.Request(context.Background(), topic, message.New(nil))
		done <- err
	}()
	waitFor(t, 5*time.Second, "the request to be published", func() bool { return r.Stats().Requests == 1 })
	if err := r.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; !errors.Is(err, transport.ErrClosed) {
		t.Errorf("waiting request after Close: %v, want ErrClosed", err)
	}
	if _, err := r.Request(context.Background(), topic, message.New(nil)); !errors.Is(err, transport.ErrClosed) {
		t.Errorf("request after Close: %v, want ErrClosed", err)
	}
}

// TestRequestLeavesMessageAlone: the caller's message is not changed, so it can be sent again.
func TestRequestLeavesMessageAlone(t *testing.T) {
	conn := memConn(t)
	topic := uniqueName("rr-copy")
	serve(t, conn, topic, echo)
	r := newRequester(t, conn)
	m := message.New([]byte("x"))
	if _, err := r.Request(context.Background(), topic, m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "" || len(m.Headers) != 0 {
		t.Errorf("caller's message changed: ID %q headers %v", m.ID, m.Headers)
	}
}

func TestReceiveDropsUnmatched(t *testing.T) {
	r := &Requester{pending: map[string]chan *message.Message{}}
	ctx := context.Background()
	for _, h := range []message.Headers{
		{},
		{message.HeaderCorrelationID: strings.Repeat("x", MaxCorrelationIDBytes+1)},
		{message.HeaderCorrelationID: "bad\x00id"},
		{message.HeaderCorrelationID: "\xff"},
	} {
		if err := r.receive(ctx, &message.Message{Headers: h}); err != nil {
			t.Errorf("receive %v: %v (a reply is never failed)", h, err)
		}
	}
	if err := r.receive(ctx, &message.Message{Headers: message.Headers{message.HeaderCorrelationID: "nobody-waits"}}); err != nil {
		t.Error(err)
	}
	if s := r.Stats(); s.Invalid != 4 || s.Late != 1 || s.Replies != 0 {
		t.Errorf("stats %+v, want 4 invalid, 1 late", s)
	}
}

func TestResponderRejectsBadRequests(t *testing.T) {
	var called int
	h := Responder(publishFunc(func(context.Context, string, ...*message.Message) error {
		t.Error("a bad request was answered")
		return nil
	}), func(context.Context, *message.Message) (*message.Message, error) {
		called++
		return nil, nil
	})
	long := DefaultReplyPrefix + strings.Repeat("a", 300)
	for name, hdr := range map[string]message.Headers{
		"no correlation ID":   {message.HeaderReplyTo: DefaultReplyPrefix + "x"},
		"long correlation ID": {message.HeaderReplyTo: DefaultReplyPrefix + "x", message.HeaderCorrelationID: strings.Repeat("x", 200)},
		"no reply address":    {message.HeaderCorrelationID: "c"},
		"foreign reply":       {message.HeaderCorrelationID: "c", message.HeaderReplyTo: "orders"},
		"bare prefix":         {message.HeaderCorrelationID: "c", message.HeaderReplyTo: DefaultReplyPrefix},
		"invalid reply name":  {message.HeaderCorrelationID: "c", message.HeaderReplyTo: DefaultReplyPrefix + "a/b"},
		"long reply name":     {message.HeaderCorrelationID: "c", message.HeaderReplyTo: long},
	} {
		err := h(context.Background(), &message.Message{Headers: hdr})
		if !errors.Is(err, ErrBadRequest) || !message.IsPermanent(err) {
			t.Errorf("%s: %v, want a permanent ErrBadRequest", name, err)
		}
	}
	if called != 0 {
		t.Errorf("fn called %d times for bad requests", called)
	}
}

type publishFunc func(ctx context.Context, topic string, msgs ...*message.Message) error

func (f publishFunc) Publish(ctx context.Context, topic string, msgs ...*message.Message) error {
	return f(ctx, topic, msgs...)
}

func TestResponderPublishOutcomes(t *testing.T) {
	req := &message.Message{Headers: message.Headers{message.HeaderCorrelationID: "c1", message.HeaderReplyTo: DefaultReplyPrefix + "r1"}}
	ok := func(context.Context, *message.Message) (*message.Message, error) {
		return &message.Message{Payload: []byte("r"), Headers: message.Headers{message.HeaderReplyTo: "x", message.HeaderReplyError: "x"}}, nil
	}
	for _, tc := range []struct {
		name    string
		pubErr  error
		wantErr bool
	}{
		{"published", nil, false},
		{"requester gone", transport.ErrTopicNotFound, false},
		{"unroutable", transport.ErrUnroutable, false},
		{"broker down", transport.ErrUnavailable, true},
	} {
		var got *message.Message
		var gotTopic string
		h := Responder(publishFunc(func(_ context.Context, topic string, msgs ...*message.Message) error {
			got, gotTopic = msgs[0], topic
			return tc.pubErr
		}), ok)
		err := h(context.Background(), req)
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: %v", tc.name, err)
		}
		if gotTopic != DefaultReplyPrefix+"r1" || CorrelationID(got) != "c1" || got.Header(message.HeaderReplyTo) != "" {
			t.Errorf("%s: reply to %q with headers %v", tc.name, gotTopic, got.Headers)
		}
		if _, isErr := got.Headers[message.HeaderReplyError]; isErr {
			t.Errorf("%s: a success reply carries %s", tc.name, message.HeaderReplyError)
		}
	}
}

// TestResponderStopping: an error while the handler's context ends is returned, not replied,
// so the engine hands the request back to the broker.
func TestResponderStopping(t *testing.T) {
	req := &message.Message{Headers: message.Headers{message.HeaderCorrelationID: "c1", message.HeaderReplyTo: DefaultReplyPrefix + "r1"}}
	h := Responder(publishFunc(func(context.Context, string, ...*message.Message) error {
		t.Error("an error reply was published while stopping")
		return nil
	}), func(ctx context.Context, _ *message.Message) (*message.Message, error) { return nil, ctx.Err() })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

func TestRemoteErrorOfAndFromReply(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		kind string
	}{
		{"plain", errors.New("x"), KindError},
		{"permanent", message.Permanent(errors.New("x")), KindPermanent},
		{"own kind", &RemoteError{Kind: "not-found", Message: "x"}, "not-found"},
		{"wrapped own kind", errors.Join(errors.New("ctx"), &RemoteError{Kind: "quota", Message: "x"}), "quota"},
		{"malformed own kind", &RemoteError{Kind: "bad kind!", Message: "x"}, KindError},
	} {
		if got := remoteOf(tc.err); got.Kind != tc.kind {
			t.Errorf("%s: kind %q, want %q", tc.name, got.Kind, tc.kind)
		}
	}
	long := strings.Repeat("é", MaxErrorTextBytes)
	if got := remoteOf(errors.New(long)); len(got.Message) > MaxErrorTextBytes || !strings.HasPrefix(long, got.Message) {
		t.Errorf("long text cut to %d bytes, not at a rune boundary", len(got.Message))
	}
	re := remoteFromReply(strings.Repeat("k", MaxKindBytes+1), append([]byte(long), 0xff))
	if re.Kind != KindError || len(re.Message) > MaxErrorTextBytes {
		t.Errorf("untrusted reply: kind %q, %d bytes of text", re.Kind, len(re.Message))
	}
	if !errors.Is(re, ErrRemote) || errors.Is(re, message.ErrPermanent) {
		t.Error("a KindError reply must match ErrRemote only")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (RequesterConfig{ReplyPrefix: "a/b"}).Validate(); err == nil {
		t.Error("a reply prefix with '/' was accepted")
	}
	if err := (RequesterConfig{Concurrency: -1}).Validate(); err == nil {
		t.Error("negative concurrency was accepted")
	}
	if err := (ResponderConfig{ReplyPrefix: "a b"}).Validate(); err == nil {
		t.Error("a responder reply prefix with a space was accepted")
	}
	if err := (RequesterConfig{}).Validate(); err != nil {
		t.Errorf("zero config: %v", err)
	}
}

// TestCloseDeletesReplyTopic: Close removes the reply subscription and topic.
func TestCloseDeletesReplyTopic(t *testing.T) {
	conn := memConn(t)
	ctx := context.Background()
	r, err := NewRequester(ctx, conn, RequesterConfig{ID: "fixed"})
	if err != nil {
		t.Fatal(err)
	}
	if r.ReplyTopic() != DefaultReplyPrefix+"fixed" {
		t.Errorf("reply topic %q", r.ReplyTopic())
	}
	if subs, err := conn.Subscriptions(ctx, r.ReplyTopic()); err != nil || len(subs) != 1 {
		t.Fatalf("before Close: subscriptions %v, %v", subs, err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if subs, err := conn.Subscriptions(ctx, r.ReplyTopic()); err != nil || len(subs) != 0 {
		t.Errorf("after Close: subscriptions %v, %v", subs, err)
	}
}

func TestRequestRefusesInvalidInput(t *testing.T) {
	r := newRequester(t, memConn(t))
	ctx := context.Background()
	if _, err := r.Request(ctx, "t", nil); !errors.Is(err, transport.ErrInvalidMessage) {
		t.Errorf("nil message: %v", err)
	}
	for _, id := range []string{strings.Repeat("x", MaxCorrelationIDBytes+1), "a\nb", "\xff"} {
		if _, err := r.Request(ctx, "t", message.New(nil), WithCorrelationID(id)); !errors.Is(err, transport.ErrInvalidMessage) {
			t.Errorf("correlation ID %q: %v", id, err)
		}
	}
	if s := r.Stats(); s.Requests != 0 {
		t.Errorf("%d invalid requests were published", s.Requests)
	}
}
