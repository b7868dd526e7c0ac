//go:build integration

package sqs_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// plainClient is an SQS client as a non-Courier application would make it; its connections
// are closed when the test ends.
func plainClient(t *testing.T, ep string) *awssqs.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return awssqs.NewFromConfig(aws.Config{
		Region: region, Credentials: credentials.NewStaticCredentialsProvider("courier", "courier", ""),
		HTTPClient: &http.Client{Transport: tr},
	}, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(ep) })
}

// interopLog records deliveries by payload.
type interopLog struct {
	mu        sync.Mutex
	byPayload map[string][]*message.Message
	total     int
}

func (l *interopLog) add(m *message.Message) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := string(m.Payload)
	l.byPayload[k] = append(l.byPayload[k], m.Clone())
	l.total++
	return len(l.byPayload[k])
}

func (l *interopLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}

func (l *interopLog) deliveries(p []byte) []*message.Message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byPayload[string(p)]
}

// interopRun runs s with a handler that fails each message's first delivery with a plain
// error (the second comes when its visibility is changed back) and records every delivery.
func interopRun(t *testing.T, s *transport.Subscriber) *interopLog {
	t.Helper()
	l := &interopLog{byPayload: map[string][]*message.Message{}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Run(ctx, func(_ context.Context, m *message.Message) error {
			if l.add(m) == 1 {
				return errors.New("first delivery fails")
			}
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("run: %v", err)
		}
	})
	return l
}

// TestInteropPlainProducerToCourier: messages a plain SDK producer sends with native
// attributes only reach Courier byte-exact (binary through courier-body-encoding=base64) with
// their attributes as headers, the MessageGroupId as Key on FIFO queues, the SQS MessageId as
// an ID that is the same on the redelivery after a failed attempt, and are deleted for good.
func TestInteropPlainProducerToCourier(t *testing.T) {
	for _, suffix := range []string{"", ".fifo"} {
		t.Run("queue"+suffix, func(t *testing.T) { plainToCourier(t, suffix) })
	}
}

func plainToCourier(t *testing.T, suffix string) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	topic := uniqueQueue(t, ep, suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := transport.SubscriberConfig{Order: transport.OrderDelivery,
		Retry: transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 50 * time.Millisecond}}
	s, err := c.Subscribe(ctx, topic, "s", cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw := plainClient(t, ep)
	q, err := raw.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	payloads := [][]byte{{0, 1, 2, 0xfe, 0xff}, []byte(`{"text":"héllo"}`)}
	for i, p := range payloads {
		in := &awssqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(string(p)),
			MessageAttributes: map[string]types.MessageAttributeValue{
				"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
				"n":      {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(i))},
			}}
		if i == 0 {
			in.MessageBody = aws.String(base64.StdEncoding.EncodeToString(p))
			in.MessageAttributes["courier-body-encoding"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("base64")}
		}
		if suffix == ".fifo" {
			in.MessageGroupId = aws.String(fmt.Sprintf("cust-%d", i))
			in.MessageDeduplicationId = aws.String(fmt.Sprintf("dedup-%d", i))
		}
		if _, err := raw.SendMessage(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	l := interopRun(t, s)
	deadline := time.Now().Add(60 * time.Second)
	for len(l.deliveries(payloads[0])) < 2 || len(l.deliveries(payloads[1])) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("not every message delivered twice: %d deliveries", l.count())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // nothing more may arrive
	if n := l.count(); n != 2*len(payloads) {
		t.Errorf("%d deliveries; want %d (each fails once, then succeeds for good)", n, 2*len(payloads))
	}
	for i, p := range payloads {
		ds := l.deliveries(p)
		first, second := ds[0], ds[1]
		if !bytes.Equal(second.Payload, p) {
			t.Errorf("payload %x; want %x", second.Payload, p)
		}
		if first.ID == "" || first.ID != second.ID {
			t.Errorf("message %d: IDs %q then %q; want one non-empty ID across redeliveries", i, first.ID, second.ID)
		}
		wantKey := ""
		if suffix == ".fifo" {
			wantKey = fmt.Sprintf("cust-%d", i)
		}
		if first.Key != wantKey || second.Key != wantKey {
			t.Errorf("message %d: keys %q, %q; want %q", i, first.Key, second.Key, wantKey)
		}
		if second.Headers["tenant"] != "acme" || second.Headers["n"] != fmt.Sprint(i) {
			t.Errorf("message %d: headers %v", i, second.Headers)
		}
		if _, ok := second.Headers["courier-body-encoding"]; ok {
			t.Errorf("message %d: courier-body-encoding leaked into headers %v", i, second.Headers)
		}
	}
	s2, err := c.Subscribe(ctx, topic, "s", cfg)
	if err != nil {
		t.Fatal(err)
	}
	l2 := interopRun(t, s2)
	time.Sleep(2 * time.Second)
	if n := l2.count(); n != 0 {
		t.Errorf("a second subscriber received %d messages; want none (all deleted)", n)
	}
}

// TestInteropCourierToPlainConsumer: a plain SDK consumer reads what Courier publishes as the
// adapter documents it: a text payload as the body, binary in base64 and empty as "-" with
// courier-body-encoding saying so, the application's headers as native String attributes,
// the ID in courier-meta, and on FIFO queues the key as MessageGroupId.
func TestInteropCourierToPlainConsumer(t *testing.T) {
	for _, suffix := range []string{"", ".fifo"} {
		t.Run("queue"+suffix, func(t *testing.T) { courierToPlain(t, suffix) })
	}
}

func courierToPlain(t *testing.T, suffix string) {
	ep := endpoint(t)
	c := open(t, testConfig(ep))
	topic := uniqueQueue(t, ep, suffix)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := []*message.Message{
		{ID: "id-text", Key: "cust-7", Payload: []byte(`{"a":1}`), Headers: message.Headers{"tenant": "acme", "trace": "t1"}},
		{ID: "id-bin", Key: "cust-8", Payload: []byte{0, 0, 0}, Headers: message.Headers{"tenant": "beta"}},
		{ID: "id-empty", Key: "cust-9", Payload: []byte{}, Headers: message.Headers{"tenant": "gamma"}},
	}
	for _, m := range want {
		if err := c.Publish(ctx, topic, m); err != nil {
			t.Fatal(err)
		}
	}
	raw := plainClient(t, ep)
	q, err := raw.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
	if err != nil {
		t.Fatal(err)
	}
	var got []types.Message
	for len(got) < len(want) && ctx.Err() == nil {
		out, err := raw.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, MaxNumberOfMessages: 10,
			WaitTimeSeconds: 1, MessageAttributeNames: []string{"All"},
			MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameMessageGroupId}})
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, out.Messages...)
	}
	if len(got) != len(want) {
		t.Fatalf("plain consumer got %d of %d", len(got), len(want))
	}
	for _, m := range want {
		checkPlainReceived(t, m, got, suffix == ".fifo")
	}
}

// checkPlainReceived finds m among got (by the ID in courier-meta) and checks its body,
// body encoding, attributes and group.
func checkPlainReceived(t *testing.T, m *message.Message, got []types.Message, fifo bool) {
	t.Helper()
	for _, r := range got {
		if !strings.Contains(aws.ToString(r.MessageAttributes["courier-meta"].StringValue), m.ID) {
			continue
		}
		body, enc := aws.ToString(r.Body), aws.ToString(r.MessageAttributes["courier-body-encoding"].StringValue)
		switch {
		case len(m.Payload) == 0:
			if body != "-" || enc != "empty" {
				t.Errorf("%s: body %q encoding %q; want \"-\", empty", m.ID, body, enc)
			}
		case m.ID == "id-bin":
			if body != base64.StdEncoding.EncodeToString(m.Payload) || enc != "base64" {
				t.Errorf("%s: body %q encoding %q; want base64", m.ID, body, enc)
			}
		default:
			if body != string(m.Payload) || enc != "" {
				t.Errorf("%s: body %q encoding %q; want the payload as is", m.ID, body, enc)
			}
		}
		for k, v := range m.Headers {
			a := r.MessageAttributes[k]
			if aws.ToString(a.DataType) != "String" || aws.ToString(a.StringValue) != v {
				t.Errorf("%s: attribute %q = %v/%q; want String %q", m.ID, k, aws.ToString(a.DataType), aws.ToString(a.StringValue), v)
			}
		}
		if g := r.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; fifo && g != m.Key {
			t.Errorf("%s: MessageGroupId %q; want the key %q", m.ID, g, m.Key)
		}
		return
	}
	t.Errorf("no message with ID %q in courier-meta", m.ID)
}
