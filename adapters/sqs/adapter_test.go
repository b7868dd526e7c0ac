package sqs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// runSub runs a subscriber until the test ends.
func runSub(t *testing.T, c *transport.Conn, topic string, cfg transport.SubscriberConfig, h message.Handler) {
	t.Helper()
	ctx := context.Background()
	if cfg.Order == transport.OrderPublish && !strings.HasSuffix(topic, ".fifo") {
		cfg.Order = transport.OrderDelivery // a standard queue refuses OrderPublish (TestStandardQueueRefusesPublishOrder)
	}
	s, err := c.Subscribe(ctx, topic, "s", cfg)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
}

// TestLongHandlerKeepsItsMessage: a handler that runs 3× the visibility timeout is not
// redelivered meanwhile, to this subscriber or to a competing one, because the heartbeat
// renews the lease.
func TestLongHandlerKeepsItsMessage(t *testing.T) {
	ep := endpoint(t)
	cfg := testConfig(ep)
	cfg.VisibilityTimeout = 2 * time.Second // also the created queue's VisibilityTimeout
	c1, c2 := open(t, cfg), open(t, cfg)
	topic := uniqueQueue(t, ep, "")

	var mu sync.Mutex
	deliveries := map[string][]int{} // ID → attempts seen
	finished := make(chan struct{})
	handler := func(ctx context.Context, m *message.Message) error {
		mu.Lock()
		deliveries[m.ID] = append(deliveries[m.ID], m.Attempt)
		first := len(deliveries[m.ID]) == 1
		mu.Unlock()
		if first && m.ID == "slow" {
			time.Sleep(6 * time.Second) // 3× the visibility timeout
			close(finished)
		}
		return nil
	}
	runSub(t, c1, topic, transport.SubscriberConfig{Concurrency: 2}, handler)
	runSub(t, c2, topic, transport.SubscriberConfig{Concurrency: 2}, handler)

	// The queue's own attribute is the configured 2 s.
	d := c1.Driver().(*sqs.Driver)
	url, err := d.Client().GetQueueUrl(context.Background(), &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := d.Client().GetQueueAttributes(context.Background(), &awssqs.GetQueueAttributesInput{
		QueueUrl: url.QueueUrl, AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameVisibilityTimeout}})
	if err != nil || attrs.Attributes["VisibilityTimeout"] != "2" {
		t.Fatalf("queue VisibilityTimeout = %q (%v); want 2", attrs.Attributes["VisibilityTimeout"], err)
	}

	start := time.Now()
	if err := c1.Publish(context.Background(), topic, &message.Message{ID: "slow", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(30 * time.Second):
		t.Fatal("handler did not finish")
	}
	if took := time.Since(start); took < 6*time.Second {
		t.Fatalf("handler finished after %v", took)
	}
	// Wait beyond another lease: nothing comes back.
	time.Sleep(3 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	if got := deliveries["slow"]; len(got) != 1 || got[0] != 1 {
		t.Errorf("slow message deliveries (attempts) = %v; want exactly one, attempt 1", got)
	}
}

// TestManyHeadersRoundTrip: more than 10 headers, some with names or values SQS refuses as
// attributes, arrive intact; the SQS record carries at most 10 attributes.
func TestManyHeadersRoundTrip(t *testing.T) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	for _, topic := range []string{uniqueQueue(t, ep, ""), uniqueQueue(t, ep, ".fifo")} {
		t.Run(topic, func(t *testing.T) {
			headers := message.Headers{
				"with space": "v", "emoji-🚀": "rocket", "empty": "", "AWS.reserved": "r", "ctl": "a\x01b",
				"unicode": "héllo — こんにちは", "tab": "a\tb", strings.Repeat("n", 300): "long name",
			}
			for i := 0; i < 20; i++ {
				headers[fmt.Sprintf("h-%02d", i)] = fmt.Sprintf("value %d", i)
			}
			got := make(chan *message.Message, 1)
			var nattrs atomic.Int64
			runSub(t, c, topic, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
				var rec types.Message
				if !m.As(&rec) {
					t.Error("As(*types.Message) = false")
				}
				nattrs.Store(int64(len(rec.MessageAttributes)))
				got <- m.Clone()
				return nil
			})
			if err := c.Publish(context.Background(), topic, &message.Message{ID: "h1", Key: "ключ", Payload: []byte("p"), Headers: headers}); err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-got:
				if !maps.Equal(m.Headers, headers) {
					t.Errorf("headers differ:\n got %v\nwant %v", m.Headers, headers)
				}
				if m.Key != "ключ" || m.ID != "h1" {
					t.Errorf("id %q key %q", m.ID, m.Key)
				}
				if n := nattrs.Load(); n < 2 || n > 10 {
					t.Errorf("SQS record has %d message attributes; want 2..10", n)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("not delivered")
			}
		})
	}
}

// TestOversizeInBatch: a message over the queue's limit (after base64 or by its size) fails
// alone with ErrMessageTooLarge naming the limit; the rest of the batch is delivered.
func TestOversizeInBatch(t *testing.T) {
	ep := endpoint(t)
	for _, tc := range []struct {
		name      string
		cfgLimit  int    // Config.MaxMessageBytes
		queueAttr string // MaximumMessageSize the queue reports ("" = ElasticMQ's none)
		limit     int
	}{
		{name: "configured limit", cfgLimit: 1024, limit: 1024},
		{name: "queue attribute", queueAttr: "2048", limit: 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(ep)
			cfg.MaxMessageBytes = tc.cfgLimit
			if tc.queueAttr != "" {
				p := newSQSProxy(t, ep)
				p.queueAttrs = map[string]string{"MaximumMessageSize": tc.queueAttr}
				cfg.Endpoint = p.URL
			}
			c := open(t, cfg)
			topic := uniqueQueue(t, ep, "")
			col := make(chan string, 10)
			runSub(t, c, topic, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
				col <- m.ID
				return nil
			})
			binary := bytes.Repeat([]byte{0xff}, tc.limit*7/8) // fits as bytes, not in base64
			msgs := []*message.Message{
				{ID: "small-1", Payload: []byte("ok")},
				{ID: "binary", Payload: binary},
				{ID: "small-2", Payload: []byte("ok")},
				{ID: "text", Payload: bytes.Repeat([]byte("t"), tc.limit+1)},
				{ID: "small-3", Payload: []byte("ok")},
			}
			err := c.Publish(context.Background(), topic, msgs...)
			var pe *transport.PublishError
			if !errors.As(err, &pe) || !errors.Is(err, transport.ErrMessageTooLarge) {
				t.Fatalf("err = %v; want a PublishError with ErrMessageTooLarge", err)
			}
			if idx := pe.FailedIndexes(); len(idx) != 2 || idx[0] != 1 || idx[1] != 3 {
				t.Fatalf("failed indexes %v; want [1 3]", idx)
			}
			for _, f := range pe.Failed {
				if !strings.Contains(f.Err.Error(), fmt.Sprint(tc.limit)) {
					t.Errorf("message %s: error %q does not name the limit %d", f.ID, f.Err, tc.limit)
				}
			}
			want := map[string]bool{"small-1": true, "small-2": true, "small-3": true}
			deadline := time.After(15 * time.Second)
			for len(want) > 0 {
				select {
				case id := <-col:
					if !want[id] {
						t.Fatalf("unexpected delivery %s", id)
					}
					delete(want, id)
				case <-deadline:
					t.Fatalf("not delivered: %v", want)
				}
			}
		})
	}
}

// TestPartialBatchFailure: entries SQS refuses in a batch answer are reported by their index
// in the caller's batch, with their kind; the others count as published.
func TestPartialBatchFailure(t *testing.T) {
	ep := endpoint(t)
	p := newSQSProxy(t, ep)
	p.entryFaults = map[string]string{"1": "InternalError", "3": "InvalidMessageContents"}
	cfg := testConfig(ep)
	cfg.Endpoint = p.URL
	c := open(t, cfg)
	msgs := make([]*message.Message, 12) // two requests: 10 + 2
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprintf("m%d", i), Payload: []byte("x")}
	}
	err := c.Publish(context.Background(), uniqueQueue(t, ep, ""), msgs...)
	var pe *transport.PublishError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v; want a PublishError", err)
	}
	want := map[int]error{1: transport.ErrUnavailable, 3: transport.ErrInvalidMessage, 11: transport.ErrUnavailable}
	if len(pe.Failed) != len(want) {
		t.Fatalf("failed %v; want indexes 1, 3, 11", pe.FailedIndexes())
	}
	for _, f := range pe.Failed {
		if !errors.Is(f.Err, want[f.Index]) || f.ID != msgs[f.Index].ID {
			t.Errorf("message %d (%s): %v; want %v", f.Index, f.ID, f.Err, want[f.Index])
		}
	}
}

// TestWholeRequestFailure: a SendMessageBatch request refused as a whole fails its own
// messages only when they have no order to keep (the other requests are still sent and
// stored); in an ordered lane (one FIFO key) the lane stops there, and its later messages are
// reported as not sent rather than stored out of order behind a gap.
func TestWholeRequestFailure(t *testing.T) {
	ep := endpoint(t)
	refuse := &fault{status: 400, typ: "com.amazonaws.sqs#InvalidParameterValue", query: "InvalidParameterValue;Sender", msg: "refused by the test"}
	const n = 30 // three requests of 10
	for _, tc := range []struct {
		name, suffix, key string
		wantFailed        int // messages reported failed
		wantRefused       int // of those, in the refused request (the others were held back)
		wantRequests      int
	}{
		{name: "unordered", wantFailed: 10, wantRefused: 10, wantRequests: 3},
		{name: "one FIFO key", suffix: ".fifo", key: "k", wantFailed: 30, wantRefused: 10, wantRequests: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newSQSProxy(t, ep)
			cfg := testConfig(ep)
			cfg.Endpoint = p.URL
			cfg.PublishConcurrency = 2
			c := open(t, cfg)
			topic := uniqueQueue(t, ep, tc.suffix)
			ctx := context.Background()
			if err := c.Publish(ctx, topic, &message.Message{ID: "warm", Key: tc.key, Payload: []byte("x")}); err != nil {
				t.Fatal(err) // the queue exists before the fault
			}
			p.setFail(func(op string, k int) *fault {
				if op == "SendMessageBatch" && k == 2 { // the first request of the batch below
					return refuse
				}
				return nil
			})
			msgs := make([]*message.Message, n)
			for i := range msgs {
				msgs[i] = &message.Message{ID: fmt.Sprintf("m%02d", i), Key: tc.key, Payload: []byte("x")}
			}
			err := c.Publish(ctx, topic, msgs...)
			var pe *transport.PublishError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v; want a PublishError", err)
			}
			failed := map[string]bool{}
			refused := 0
			for _, f := range pe.Failed {
				failed[f.ID] = true
				if f.ID != msgs[f.Index].ID {
					t.Errorf("failure at index %d names %s, not %s", f.Index, f.ID, msgs[f.Index].ID)
				}
				if !errors.Is(f.Err, transport.ErrInvalidMessage) || !strings.Contains(f.Err.Error(), "refused by the test") {
					t.Errorf("message %s: %v; want the request's error", f.ID, f.Err)
				} else if !strings.Contains(f.Err.Error(), "not sent, to keep order") {
					refused++ // in the refused request itself, not held back behind it
				}
			}
			if len(pe.Failed) != tc.wantFailed || refused != tc.wantRefused {
				t.Fatalf("%d failed, %d of them in the refused request; want %d and %d", len(pe.Failed), refused, tc.wantFailed, tc.wantRefused)
			}
			if got := p.count("SendMessageBatch") - 1; got != tc.wantRequests {
				t.Errorf("SendMessageBatch requests = %d; want %d", got, tc.wantRequests)
			}

			// Exactly the messages not reported failed were stored.
			want := map[string]bool{"warm": true}
			for _, m := range msgs {
				if !failed[m.ID] {
					want[m.ID] = true
				}
			}
			var mu sync.Mutex
			got := map[string]bool{}
			all := make(chan struct{})
			runSub(t, c, topic, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
				mu.Lock()
				defer mu.Unlock()
				if !want[m.ID] {
					t.Errorf("received %s, which was reported failed", m.ID)
				}
				got[m.ID] = true
				if len(got) == len(want) {
					close(all)
				}
				return nil
			})
			select {
			case <-all:
			case <-time.After(30 * time.Second):
				mu.Lock()
				t.Fatalf("received %d of the %d stored messages", len(got), len(want))
			}
		})
	}
}

// TestQueueMissingCreateOff: with creation off, a missing queue is ErrTopicNotFound for both
// sides, and the error names the queue.
func TestQueueMissingCreateOff(t *testing.T) {
	ep := endpoint(t)
	cfg := testConfig(ep)
	cfg.DisableCreate = true
	c := open(t, cfg)
	topic := uniqueQueue(t, ep, "")
	ctx := context.Background()
	err := c.Publish(ctx, topic, &message.Message{Payload: []byte("x")})
	if !errors.Is(err, transport.ErrTopicNotFound) || !strings.Contains(err.Error(), topic) {
		t.Errorf("publish: err = %v; want ErrTopicNotFound naming %s", err, topic)
	}
	_, err = c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
		func(context.Context, *message.Message, transport.Failure) error { return nil })})
	if !errors.Is(err, transport.ErrTopicNotFound) {
		t.Errorf("subscribe: err = %v; want ErrTopicNotFound", err)
	}
	// Once the queue exists, both work.
	if _, err := c.Driver().(*sqs.Driver).Client().CreateQueue(ctx, &awssqs.CreateQueueInput{QueueName: aws.String(topic)}); err != nil {
		t.Fatal(err)
	}
	if err := c.Publish(ctx, topic, &message.Message{Payload: []byte("x")}); err != nil {
		t.Errorf("publish after creating the queue: %v", err)
	}
}

// TestQueueDeletedWhileConsuming: a subscription whose queue disappears ends Run with
// ErrTopicNotFound instead of polling forever.
func TestQueueDeletedWhileConsuming(t *testing.T) {
	ep := endpoint(t)
	cfg := testConfig(ep)
	cfg.WaitTime = time.Second
	// ElasticMQ never answers a long poll that was waiting on a queue when it was deleted:
	// the operation timeout ends it, and the next poll learns that the queue is gone.
	cfg.OperationTimeout = 2 * time.Second
	c := open(t, cfg)
	topic := uniqueQueue(t, ep, "")
	ctx := context.Background()
	s, err := c.Subscribe(ctx, topic, "s", transport.SubscriberConfig{Order: transport.OrderDelivery, DeadLetter: transport.DeadLetterFunc(
		func(context.Context, *message.Message, transport.Failure) error { return nil })})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, func(context.Context, *message.Message) error { return nil }) }()
	time.Sleep(300 * time.Millisecond)
	client := c.Driver().(*sqs.Driver).Client()
	u, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: u.QueueUrl}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, transport.ErrTopicNotFound) {
			t.Errorf("Run: %v; want ErrTopicNotFound", err)
		}
	case <-time.After(20 * time.Second):
		s.Close(ctx)
		t.Fatal("Run did not end after the queue was deleted")
	}
}

// TestBadEndpoint: nothing listens: Publish and Subscribe fail with ErrUnavailable after the
// SDK's retries, in bounded time.
func TestBadEndpoint(t *testing.T) {
	cfg := testConfig("http://127.0.0.1:1")
	c := open(t, cfg)
	ctx := context.Background()
	start := time.Now()
	err := c.Publish(ctx, "nowhere", &message.Message{Payload: []byte("x")})
	if !errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("publish: err = %v; want ErrUnavailable", err)
	}
	if _, err := c.Subscribe(ctx, "nowhere", "s", transport.SubscriberConfig{}); !errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("subscribe: err = %v; want ErrUnavailable", err)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
	// The operation timeout bounds a broker that accepts connections and never answers.
	hang := make(chan struct{})
	srv := newHangingServer(t, hang)
	cfg = testConfig(srv)
	cfg.OperationTimeout = 500 * time.Millisecond
	c2 := open(t, cfg)
	start = time.Now()
	err = c2.Publish(ctx, "nowhere", &message.Message{Payload: []byte("x")})
	if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "OperationTimeout") {
		t.Errorf("publish to a silent broker: err = %v; want ErrUnavailable naming OperationTimeout", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("silent broker: took %v", d)
	}
	close(hang)
	// A cancelled context is reported as such, not as the broker's fault.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Publish(cctx, "nowhere", &message.Message{Payload: []byte("x")}); !errors.Is(err, context.Canceled) || errors.Is(err, transport.ErrUnavailable) {
		t.Errorf("publish with a cancelled context: err = %v; want context.Canceled only", err)
	}
}

// TestThrottling: throttling answers are retried by the SDK (publish succeeds), surface as
// ErrUnavailable once retries run out, and a throttled receive loop recovers by itself.
func TestThrottling(t *testing.T) {
	ep := endpoint(t)
	throttle := map[string]*fault{
		"coral": {status: 400, typ: "com.amazon.coral.availability#ThrottlingException", msg: "Rate exceeded"},
		"sqs":   {status: 400, typ: "com.amazonaws.sqs#RequestThrottled", query: "RequestThrottled;Sender", msg: "Request is throttled."},
	}
	for name, f := range throttle {
		t.Run(name, func(t *testing.T) {
			t.Parallel() // the SDK's throttling backoff takes seconds
			p := newSQSProxy(t, ep)
			cfg := testConfig(ep)
			cfg.Endpoint = p.URL
			c := open(t, cfg)
			topic := uniqueQueue(t, ep, "")
			ctx := context.Background()

			// First two SendMessageBatch requests throttled: the SDK's third attempt succeeds.
			p.setFail(func(op string, n int) *fault {
				if op == "SendMessageBatch" && n <= 2 {
					return f
				}
				return nil
			})
			if err := c.Publish(ctx, topic, &message.Message{ID: "t1", Payload: []byte("x")}); err != nil {
				t.Fatalf("publish through 2 throttles: %v", err)
			}
			if n := p.count("SendMessageBatch"); n != 3 {
				t.Errorf("SendMessageBatch requests = %d; want 3 (2 throttled + 1)", n)
			}

			// Always throttled: ErrUnavailable naming the throttling, after MaxAttempts.
			p.setFail(func(op string, n int) *fault {
				if op == "SendMessageBatch" {
					return f
				}
				return nil
			})
			before := p.count("SendMessageBatch")
			err := c.Publish(ctx, topic, &message.Message{ID: "t2", Payload: []byte("x")})
			if !errors.Is(err, transport.ErrUnavailable) || !strings.Contains(err.Error(), "hrottl") {
				t.Errorf("publish always throttled: err = %v; want ErrUnavailable about throttling", err)
			}
			if n := p.count("SendMessageBatch") - before; n != 3 {
				t.Errorf("requests for an always-throttled publish = %d; want 3 (the SDK's attempts)", n)
			}

			// The first 5 receives throttled (more than the SDK retries): the subscriber backs
			// off and then delivers.
			p.setFail(func(op string, n int) *fault {
				if op == "ReceiveMessage" && n <= 5 {
					return f
				}
				return nil
			})
			got := make(chan string, 4)
			runSub(t, c, topic, transport.SubscriberConfig{DeadLetter: transport.DeadLetterFunc(
				func(context.Context, *message.Message, transport.Failure) error { return nil })},
				func(_ context.Context, m *message.Message) error { got <- m.ID; return nil })
			select {
			case id := <-got:
				if id != "t1" {
					t.Errorf("delivered %s; want t1", id)
				}
			case <-time.After(30 * time.Second):
				t.Fatalf("nothing delivered after throttled receives (%d ReceiveMessage requests)", p.count("ReceiveMessage"))
			}
			if n := p.count("ReceiveMessage"); n < 6 {
				t.Errorf("ReceiveMessage requests = %d; want at least 6", n)
			}
		})
	}
}

// TestErrorKinds: error answers map onto Courier's kinds.
func TestErrorKinds(t *testing.T) {
	ep := endpoint(t)
	cases := []struct {
		f    fault
		want error
	}{
		{fault{status: 400, typ: "com.amazonaws.sqs#AccessDenied", query: "AccessDenied;Sender", msg: "no"}, transport.ErrAccessDenied},
		{fault{status: 403, typ: "com.amazon.coral.service#UnrecognizedClientException", msg: "bad token"}, transport.ErrAccessDenied},
		{fault{status: 500, typ: "com.amazonaws.sqs#InternalError", msg: "oops"}, transport.ErrUnavailable},
		{fault{status: 400, typ: "com.amazonaws.sqs#QueueDoesNotExist", query: "AWS.SimpleQueueService.NonExistentQueue;Sender", msg: "gone"}, transport.ErrTopicNotFound},
	}
	for _, tc := range cases {
		t.Run(tc.f.typ, func(t *testing.T) {
			p := newSQSProxy(t, ep)
			cfg := testConfig(ep)
			cfg.Endpoint = p.URL
			cfg.MaxAttempts = 1
			cfg.DisableCreate = true
			c := open(t, cfg)
			p.setFail(func(string, int) *fault { return &tc.f })
			err := c.Publish(context.Background(), uniqueQueue(t, ep, ""), &message.Message{Payload: []byte("x")})
			if !errors.Is(err, tc.want) {
				t.Errorf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

// TestForeignMessage: a message sent with the plain SDK arrives with its SQS ID, body, String
// and Number attributes, and the native record through As.
func TestForeignMessage(t *testing.T) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	topic := uniqueQueue(t, ep, "")
	got := make(chan *message.Message, 1)
	var rec types.Message
	runSub(t, c, topic, transport.SubscriberConfig{}, func(_ context.Context, m *message.Message) error {
		m.As(&rec)
		got <- m.Clone()
		return nil
	})
	client := c.Driver().(*sqs.Driver).Client()
	ctx := context.Background()
	u, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	out, err := client.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: u.QueueUrl, MessageBody: aws.String("from elsewhere"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"s": {DataType: aws.String("String"), StringValue: aws.String("sv")},
			"n": {DataType: aws.String("Number"), StringValue: aws.String("7")},
		}})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.ID != aws.ToString(out.MessageId) || string(m.Payload) != "from elsewhere" || m.Headers["s"] != "sv" || m.Headers["n"] != "7" || m.Attempt != 1 {
			t.Errorf("foreign message arrived as %+v", m)
		}
		if aws.ToString(rec.MessageId) != aws.ToString(out.MessageId) || rec.ReceiptHandle == nil {
			t.Errorf("As gave %+v", rec)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("not delivered")
	}
}

// newHangingServer accepts requests and answers none until hang is closed.
func newHangingServer(t *testing.T, hang chan struct{}) string {
	t.Helper()
	srv := httptestServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	return srv
}

// TestStandardQueueRefusesPublishOrder: a standard queue cannot deliver one key's messages in
// publish order, so a subscriber that promises it (OrderPublish, the default) is refused at
// Subscribe with ErrUnsupported saying what works instead; OrderDelivery, OrderNone and a FIFO
// queue are accepted.
func TestStandardQueueRefusesPublishOrder(t *testing.T) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	ctx := context.Background()
	std := uniqueQueue(t, ep, "")
	noDLQ := transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error { return nil })
	_, err := c.Subscribe(ctx, std, "s", transport.SubscriberConfig{DeadLetter: noDLQ})
	if !errors.Is(err, transport.ErrUnsupported) || !strings.Contains(err.Error(), "FIFO") || !strings.Contains(err.Error(), "OrderDelivery") {
		t.Errorf("OrderPublish on a standard queue: err = %v; want ErrUnsupported naming FIFO and OrderDelivery", err)
	}
	for _, o := range []transport.Ordering{transport.OrderDelivery, transport.OrderNone} {
		if _, err := c.Subscribe(ctx, std, "s", transport.SubscriberConfig{Order: o, DeadLetter: noDLQ}); err != nil {
			t.Errorf("Order %v on a standard queue: %v", o, err)
		}
	}
	if _, err := c.Subscribe(ctx, uniqueQueue(t, ep, ".fifo"), "s", transport.SubscriberConfig{DeadLetter: noDLQ}); err != nil {
		t.Errorf("OrderPublish on a FIFO queue: %v", err)
	}
}
