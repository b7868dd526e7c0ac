package gcppubsub_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/courierhq/courier/adapters/gcppubsub"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// failPublish is a pstest reactor that fails the next n Publish RPCs carrying one of keys
// with code, and lets every other request through to the fake.
type failPublish struct {
	mu   sync.Mutex
	keys map[string]int // ordering key -> failures left
	code codes.Code
	seen atomic.Int64 // failures injected
}

func (f *failPublish) arm(key string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys[key] = n
}

func (f *failPublish) React(req any) (bool, any, error) {
	r, ok := req.(*pubsubpb.PublishRequest)
	if !ok {
		return false, nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, m := range r.Messages {
		if f.keys[m.OrderingKey] > 0 {
			f.keys[m.OrderingKey]--
			f.seen.Add(1)
			return true, nil, status.Error(f.code, "injected: topic is not accepting messages")
		}
	}
	return false, nil, nil
}

// TestOrderedPublishErrorResumes: a publish on an ordering key fails (injected with pstest's
// reactor); the failed message and the later one on that key are reported, the other key's
// message goes out, and the next publish on the key succeeds because the adapter resumed it.
// The raw client, for comparison, stays paused.
func TestOrderedPublishErrorResumes(t *testing.T) {
	inject := &failPublish{keys: map[string]int{}, code: codes.FailedPrecondition}
	srv := newServer(t, pstest.ServerReactorOption{FuncName: "Publish", Reactor: inject})
	c := openConn(t, srv.Addr, gcppubsub.Config{})
	topic := "orders"
	rec := consume(t, c, topic, "orders-sub", transport.SubscriberConfig{}, nil)

	inject.arm("customer-7", 1)
	msgs := []*message.Message{
		{ID: "a", Key: "customer-7", Payload: []byte("a")},
		{ID: "b", Key: "customer-7", Payload: []byte("b")},
		{ID: "c", Key: "customer-9", Payload: []byte("c")},
	}
	err := c.Publish(ctxT(t), topic, msgs...)
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("publish: err = %v; want a PublishError", err)
	}
	if got := pe.FailedIndexes(); len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Fatalf("failed indexes %v; want [0 1] (a failed, b held back behind it): %v", got, err)
	}
	if !errors.Is(pe.Failed[0].Err, transport.ErrNacked) || !strings.Contains(pe.Failed[0].Err.Error(), "injected") {
		t.Errorf("a: %v; want ErrNacked carrying the broker's reason", pe.Failed[0].Err)
	}
	if !strings.Contains(pe.Failed[1].Err.Error(), "key order") || !errors.Is(pe.Failed[1].Err, transport.ErrNacked) {
		t.Errorf("b: %v; want a key-order hold-back wrapping a's error", pe.Failed[1].Err)
	}
	if inject.seen.Load() != 1 {
		t.Fatalf("%d failures injected; want 1", inject.seen.Load())
	}

	// The key was resumed: the next publish on it goes out.
	if err := c.Publish(ctxT(t), topic, &message.Message{ID: "d", Key: "customer-7", Payload: []byte("d")}); err != nil {
		t.Fatalf("publish after the failure on the same key: %v (key not resumed?)", err)
	}
	got := rec.waitFor(t, 15*time.Second, "c and d", func(ds []delivered) bool { n := ids(ds); return n["c"] > 0 && n["d"] > 0 })
	time.Sleep(300 * time.Millisecond)
	for id := range ids(append(got, rec.snapshot()...)) {
		if id == "a" || id == "b" {
			t.Errorf("message %s was reported failed but delivered", id)
		}
	}

	// Control: the raw client with ordering on stays paused after the same failure.
	raw := rawClient(t, srv.Addr).Publisher(topicPath(testPrefix(t) + topic))
	raw.EnableMessageOrdering = true
	defer raw.Stop()
	inject.arm("raw-key", 1)
	if _, err := raw.Publish(ctxT(t), &pubsub.Message{Data: []byte("x"), OrderingKey: "raw-key"}).Get(ctxT(t)); err == nil {
		t.Fatal("raw publish: injected failure did not happen")
	}
	_, err = raw.Publish(ctxT(t), &pubsub.Message{Data: []byte("y"), OrderingKey: "raw-key"}).Get(ctxT(t))
	var paused pubsub.ErrPublishingPaused
	if !errors.As(err, &paused) {
		t.Errorf("raw client after a failure: err = %v; want ErrPublishingPaused (else this test proves nothing)", err)
	}
}

// TestPermissionDenied: PermissionDenied from Pub/Sub (injected) is ErrAccessDenied, on
// publish and on subscribe.
func TestPermissionDenied(t *testing.T) {
	var opts []pstest.ServerReactorOption
	for _, fn := range []string{"Publish", "CreateTopic", "GetSubscription", "CreateSubscription"} {
		opts = append(opts, pstest.WithErrorInjection(fn, codes.PermissionDenied, "User not authorized to perform this action."))
	}
	srv := newServer(t, opts...)
	c := openConn(t, srv.Addr, gcppubsub.Config{})

	err := c.Publish(ctxT(t), "payments", &message.Message{ID: "p1", Payload: []byte("x")})
	var pe *transport.PublishError
	if !errors.Is(err, transport.ErrAccessDenied) || !errors.As(err, &pe) || len(pe.Failed) != 1 {
		t.Errorf("publish: err = %v; want a PublishError with ErrAccessDenied", err)
	}
	_, err = c.Subscribe(ctxT(t), "payments", "payments-sub", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
		func(context.Context, *message.Message, transport.Failure) error { return nil })})
	if !errors.Is(err, transport.ErrAccessDenied) || !strings.Contains(err.Error(), "not authorized") {
		t.Errorf("subscribe: err = %v; want ErrAccessDenied with the broker's reason", err)
	}
}

// TestCreationOff: with creation off, a missing topic or subscription is a clear error; once
// they exist, publishing and consuming work.
func TestCreationOff(t *testing.T) {
	addr := emulator(t)
	prefix := testPrefix(t)
	c := openConn(t, addr, gcppubsub.Config{DisableCreate: true})
	ownDLQ := transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
		func(context.Context, *message.Message, transport.Failure) error { return nil })}

	err := c.Publish(ctxT(t), "invoices", &message.Message{ID: "i1"})
	if !errors.Is(err, transport.ErrTopicNotFound) {
		t.Errorf("publish to a missing topic: err = %v; want ErrTopicNotFound", err)
	}
	_, err = c.Subscribe(ctxT(t), "invoices", "invoices-sub", ownDLQ)
	if !errors.Is(err, transport.ErrSubscriptionNotFound) || !strings.Contains(err.Error(), "creation is off") {
		t.Errorf("subscribe to a missing subscription: err = %v; want ErrSubscriptionNotFound saying creation is off", err)
	}
	// With the default dead-lettering, the dead-letter subscription is missing first.
	_, err = c.Subscribe(ctxT(t), "invoices", "invoices-sub", transport.SubscriberConfig{})
	if !errors.Is(err, transport.ErrSubscriptionNotFound) || !strings.Contains(err.Error(), "dead-letter") {
		t.Errorf("subscribe with default dead-lettering: err = %v; want ErrSubscriptionNotFound about the dead-letter subscription", err)
	}

	raw := rawClient(t, addr)
	createTopicAndSub(t, raw, prefix+"invoices", prefix+"invoices-sub")
	rec := consume(t, c, "invoices", "invoices-sub", ownDLQ, nil)
	if err := c.Publish(ctxT(t), "invoices", &message.Message{ID: "i2", Payload: []byte("x")}); err != nil {
		t.Fatalf("publish once the topic exists: %v", err)
	}
	rec.waitFor(t, 15*time.Second, "i2", func(ds []delivered) bool { return ids(ds)["i2"] > 0 })
}

// TestBadProject: a malformed project is refused before any call; a project Pub/Sub does not
// know (NotFound on CreateTopic, injected as Google answers it) is named in the error.
func TestBadProject(t *testing.T) {
	for _, u := range []string{"gcppubsub://Not_A_Project?endpoint=127.0.0.1:1", "gcppubsub://?endpoint=127.0.0.1:1"} {
		_, err := transport.Open(ctxT(t), u)
		if !errors.Is(err, transport.ErrInvalidConfig) && !errors.Is(err, transport.ErrInvalidURL) {
			t.Errorf("Open(%s): err = %v; want ErrInvalidConfig or ErrInvalidURL", u, err)
		} else if !strings.Contains(err.Error(), "project") {
			t.Errorf("Open(%s): error %q does not say the project is the problem", u, err)
		}
	}
	srv := newServer(t, pstest.WithErrorInjection("CreateTopic", codes.NotFound,
		"Requested project not found or user does not have access to it (project=nowhere-123456)."))
	c := openConn(t, srv.Addr, gcppubsub.Config{Project: "nowhere-123456"})
	err := c.Publish(ctxT(t), "events", &message.Message{ID: "e1"})
	if !errors.Is(err, transport.ErrInvalidConfig) || !strings.Contains(err.Error(), `project "nowhere-123456" not found`) {
		t.Errorf("publish in an unknown project: err = %v; want ErrInvalidConfig naming the project", err)
	}
}

// TestNames: Pub/Sub's naming rules give ErrInvalidTopic before any call; the
// same subscription name on two topics is two subscriptions (IDs name the topic).
func TestNames(t *testing.T) {
	addr := emulator(t)
	bare := openConn(t, addr, gcppubsub.Config{Prefix: "n" + runID + "-"})
	for _, tc := range []struct{ topic, sub, mention string }{
		{"ab:c", "sub-1", "only letters"},
		{"orders", "goog", ""}, // "n…-goog" is fine: the prefix leads
	} {
		_, err := bare.Subscribe(ctxT(t), tc.topic, tc.sub, transport.SubscriberConfig{})
		if tc.mention == "" {
			if err != nil {
				t.Errorf("subscribe %s/%s: %v", tc.topic, tc.sub, err)
			}
			continue
		}
		if !errors.Is(err, transport.ErrInvalidTopic) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("subscribe %s/%s: err = %v; want ErrInvalidTopic mentioning %q", tc.topic, tc.sub, err, tc.mention)
		}
	}

	c := openConn(t, addr, gcppubsub.Config{Prefix: testPrefix(t)})
	own := transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
		func(context.Context, *message.Message, transport.Failure) error { return nil })}
	if _, err := c.Subscribe(ctxT(t), "topic-a", "worker", own); err != nil {
		t.Fatal(err)
	}
	// Subscription IDs name the topic: the same name on another topic is another subscription.
	if _, err := c.Subscribe(ctxT(t), "topic-b", "worker", own); err != nil {
		t.Errorf("same subscription name on another topic: %v", err)
	}
	raw := rawClient(t, addr)
	for _, id := range []string{"topic-a~worker", "topic-b~worker"} {
		s, err := raw.SubscriptionAdminClient.GetSubscription(ctxT(t), &pubsubpb.GetSubscriptionRequest{Subscription: subPath(testPrefix(t) + id)})
		if err != nil || !strings.HasSuffix(s.Topic, "/"+testPrefix(t)+strings.TrimSuffix(id, "~worker")) {
			t.Errorf("subscription %s: %v, %v", id, s, err)
		}
	}
}

// TestShortNamesNeedAPrefix: without a prefix, a two-letter topic is too short for Pub/Sub;
// the error says so instead of failing on Google with a cryptic one.
func TestShortNamesNeedAPrefix(t *testing.T) {
	c := openConn(t, emulator(t), gcppubsub.Config{Prefix: noPrefix})
	_, err := c.Subscribe(ctxT(t), "ab", "s1", transport.SubscriberConfig{})
	if !errors.Is(err, transport.ErrInvalidTopic) || !strings.Contains(err.Error(), "3 to 255") {
		t.Errorf("subscribe ab/s1: err = %v; want ErrInvalidTopic about length", err)
	}
}

// TestDeletedTopicIsRecreated: a topic deleted behind the connection's back fails one publish
// with ErrTopicNotFound; with creation on, the next publish creates it again.
func TestDeletedTopicIsRecreated(t *testing.T) {
	addr := emulator(t)
	c := openConn(t, addr, gcppubsub.Config{})
	if err := c.Publish(ctxT(t), "ephemeral", &message.Message{ID: "e1"}); err != nil {
		t.Fatal(err)
	}
	if err := rawClient(t, addr).TopicAdminClient.DeleteTopic(ctxT(t),
		&pubsubpb.DeleteTopicRequest{Topic: topicPath(testPrefix(t) + "ephemeral")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctxT(t), "ephemeral", &message.Message{ID: "e2"}); !errors.Is(err, transport.ErrTopicNotFound) {
		t.Fatalf("publish to the deleted topic: err = %v; want ErrTopicNotFound", err)
	}
	if err := c.Publish(ctxT(t), "ephemeral", &message.Message{ID: "e3"}); err != nil {
		t.Errorf("publish after that: %v; want the topic created again", err)
	}
}

// TestNativeDeadLetterOnExistingSubscription: asking for native dead-lettering on a
// subscription made without it sets the policy (max delivery attempts brought into Pub/Sub's
// 5–100) and creates "<subscription>.dlq" to keep what is moved; with creation off it is an
// error instead.
func TestNativeDeadLetterOnExistingSubscription(t *testing.T) {
	addr := emulator(t)
	prefix := testPrefix(t)
	raw := rawClient(t, addr)
	createTopicAndSub(t, raw, prefix+"legacy", prefix+"legacy-sub")
	native := transport.SubscriberConfig{NativeDeadLetter: true, Retry: transport.RetryPolicy{MaxAttempts: 3}}

	off := openConn(t, addr, gcppubsub.Config{DisableCreate: true})
	if _, err := off.Subscribe(ctxT(t), "legacy", "legacy-sub", native); !errors.Is(err, transport.ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "no dead-letter policy") {
		t.Errorf("creation off: err = %v; want ErrInvalidConfig saying the policy is missing", err)
	}

	c := openConn(t, addr, gcppubsub.Config{})
	s, err := c.Subscribe(ctxT(t), "legacy", "legacy-sub", native)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Close(ctxT(t))
	got, err := raw.SubscriptionAdminClient.GetSubscription(ctxT(t), &pubsubpb.GetSubscriptionRequest{Subscription: subPath(prefix + "legacy-sub")})
	if err != nil {
		t.Fatal(err)
	}
	dl := got.GetDeadLetterPolicy()
	if dl.GetDeadLetterTopic() != topicPath(prefix+"legacy.dlq") || dl.GetMaxDeliveryAttempts() != 5 {
		t.Errorf("dead-letter policy %v; want legacy.dlq after 5 attempts", dl)
	}
	keep, err := raw.SubscriptionAdminClient.GetSubscription(ctxT(t), &pubsubpb.GetSubscriptionRequest{Subscription: subPath(prefix + "legacy.dlq~legacy-sub.dlq")})
	if err != nil || keep.Topic != topicPath(prefix+"legacy.dlq") {
		t.Errorf("subscription keeping dead letters: %v, %v", keep, err)
	}
}

// TestUnreachableEmulator: the emulator goes away after Open (Open itself fails when nothing
// listens: TestOpenNothingListening). The client retries until the caller's deadline; the
// error then says the broker is unavailable, and still matches the deadline.
func TestUnreachableEmulator(t *testing.T) {
	srv := pstest.NewServer()
	c := openConn(t, srv.Addr, gcppubsub.Config{})
	_ = srv.Close() // nobody listens any more
	short := func() context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		t.Cleanup(cancel)
		return ctx
	}
	err := c.Publish(short(), "anywhere", &message.Message{ID: "u1"})
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("publish: err = %v; want ErrUnavailable and the deadline", err)
	}
	_, err = c.Subscribe(short(), "anywhere", "anywhere-sub", ownDLQ)
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("subscribe: err = %v; want ErrUnavailable and the deadline", err)
	}
}
