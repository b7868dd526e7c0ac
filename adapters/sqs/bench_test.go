package sqs_test

import (
	"context"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// The benchmarks compare Courier with the plain SDK doing the same work against the emulator,
// in the same run:
//
//   - Publish: 256-byte payloads, 100 messages per call; Courier's Publish sends them as 10
//     SendMessageBatch requests of 10, up to 4 at once (PublishConcurrency), and waits for
//     every entry's success; raw does exactly that with the SDK. Courier's messages carry an ID
//     (a UUIDv7) and a publish time in one message attribute; raw-with-id is raw plus what a raw
//     user needs for an ID (a UUIDv7 in one String attribute), which separates the cost of
//     carrying an ID in SQS (ElasticMQ: about 15% for one attribute) from Courier's own.
//   - Consume: b.N messages (published by Courier, the same for both) waiting in the queue;
//     4 long polls of up to 10 messages in flight
//     (Config.Pollers = 4) and DeleteMessageBatch for acks; Courier runs them through the
//     consumer engine (8 handlers); raw runs 4 loops of receive → delete batch. The clock
//     stops when every message is deleted (Courier: its subscriber closed, acks flushed).
//
// Both clients use the same HTTP transport settings (keep-alive connections for every
// request in flight) and the SDK's default retries and checksum validation.

var entryIDs = [sqs.MaxBatch]string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}

const (
	benchPayload     = 256
	benchBatch       = 100
	benchPollers     = 4
	benchConcurrency = 4
)

type benchEnv struct {
	ep      string
	raw     *awssqs.Client
	tr      *http.Transport
	courier *transport.Conn
}

func newBenchEnv(b *testing.B) *benchEnv {
	ep := endpoint(b)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 128
	raw := awssqs.NewFromConfig(aws.Config{
		Region:      region,
		Credentials: credentials.NewStaticCredentialsProvider("courier", "courier", ""),
		HTTPClient:  &http.Client{Transport: tr},
	}, func(o *awssqs.Options) { o.BaseEndpoint = aws.String(ep) })
	cfg := testConfig(ep)
	cfg.Pollers = benchPollers
	cfg.PublishConcurrency = benchConcurrency
	c, err := sqs.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{ep: ep, raw: raw, tr: tr, courier: c}
	b.Cleanup(func() {
		_ = c.Close(context.Background())
		tr.CloseIdleConnections()
	})
	return e
}

// queue creates a fresh queue, deleted when the benchmark ends.
func (e *benchEnv) queue(b *testing.B) (name, url string) {
	name = uniqueQueue(b, e.ep, "")
	out, err := e.raw.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String(name)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = e.raw.DeleteQueue(context.Background(), &awssqs.DeleteQueueInput{QueueUrl: out.QueueUrl})
	})
	return name, aws.ToString(out.QueueUrl)
}

// rawPublish sends n 256-byte messages as raw does in the benchmark; withID adds what a raw
// SDK user needs to carry a message ID: a UUIDv7 in one String attribute.
func (e *benchEnv) rawPublish(b *testing.B, url string, n int, withID bool) {
	body := aws.String(string(bytesOf('x', benchPayload)))
	for sent := 0; sent < n; sent += benchBatch {
		calls := min(benchBatch, n-sent)
		var wg sync.WaitGroup
		sem := make(chan struct{}, benchConcurrency)
		var failed atomic.Int64
		for lo := 0; lo < calls; lo += sqs.MaxBatch {
			k := min(sqs.MaxBatch, calls-lo)
			entries := make([]types.SendMessageBatchRequestEntry, k)
			for i := range entries {
				entries[i] = types.SendMessageBatchRequestEntry{Id: aws.String(entryIDs[i]), MessageBody: body}
				if withID {
					entries[i].MessageAttributes = map[string]types.MessageAttributeValue{
						"id": {DataType: aws.String("String"), StringValue: aws.String(uuid.Must(uuid.NewV7()).String())},
					}
				}
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				out, err := e.raw.SendMessageBatch(context.Background(), &awssqs.SendMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
				if err != nil || len(out.Failed) > 0 || len(out.Successful) != len(entries) {
					failed.Add(1)
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatal("raw publish failed")
		}
	}
}

func (e *benchEnv) courierPublish(b *testing.B, topic string, n int) {
	payload := bytesOf('x', benchPayload)
	msgs := make([]*message.Message, benchBatch)
	for sent := 0; sent < n; sent += benchBatch {
		k := min(benchBatch, n-sent)
		for i := 0; i < k; i++ {
			msgs[i] = &message.Message{Payload: payload}
		}
		if err := e.courier.Publish(context.Background(), topic, msgs[:k]...); err != nil {
			b.Fatal(err)
		}
	}
}

func bytesOf(c byte, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = c
	}
	return p
}

// warm runs both clients' publish paths against a scratch queue before anything is measured,
// once per process: ElasticMQ runs on the JVM, whose first tens of thousands of requests are
// markedly slower (measured: up to 3×) while its compiler warms up, and without this the
// sub-benchmark that runs first pays for all of it.
func (e *benchEnv) warm(b *testing.B) {
	warmOnce.Do(func() {
		topic, url := e.queue(b)
		for range 3 {
			e.courierPublish(b, topic, 5000)
			e.rawPublish(b, url, 5000, false)
			e.rawPublish(b, url, 5000, true)
		}
	})
}

var warmOnce sync.Once

func BenchmarkPublish(b *testing.B) {
	e := newBenchEnv(b)
	e.warm(b)
	b.Run("courier", func(b *testing.B) {
		topic, _ := e.queue(b)
		e.courierPublish(b, topic, 10) // queue resolved before the clock starts
		b.ReportAllocs()
		b.ResetTimer()
		e.courierPublish(b, topic, b.N)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	for _, withID := range []bool{false, true} {
		name := "raw"
		if withID {
			name = "raw-with-id"
		}
		b.Run(name, func(b *testing.B) {
			_, url := e.queue(b)
			e.rawPublish(b, url, 10, withID)
			b.ReportAllocs()
			b.ResetTimer()
			e.rawPublish(b, url, b.N, withID)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkConsume(b *testing.B) {
	e := newBenchEnv(b)
	e.warm(b)
	b.Run("courier", func(b *testing.B) {
		topic, _ := e.queue(b)
		e.courierPublish(b, topic, b.N)
		ctx := context.Background()
		sub, err := e.courier.Subscribe(ctx, topic, "bench", transport.SubscriberConfig{Concurrency: 8,
			DeadLetter: transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error { return nil })})
		if err != nil {
			b.Fatal(err)
		}
		var handled atomic.Int64
		done := make(chan struct{})
		total := int64(b.N)
		b.ReportAllocs()
		b.ResetTimer()
		run := make(chan error, 1)
		go func() {
			run <- sub.Run(ctx, func(context.Context, *message.Message) error {
				if handled.Add(1) == total {
					close(done)
				}
				return nil
			})
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("handled %d of %d", handled.Load(), total)
		}
		if err := sub.Close(ctx); err != nil { // drains and flushes the acks
			b.Fatal(err)
		}
		b.StopTimer()
		if err := <-run; err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("raw", func(b *testing.B) {
		topic, url := e.queue(b)
		e.courierPublish(b, topic, b.N) // the same messages as Courier consumes
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		var deleted atomic.Int64
		total := int64(b.N)
		done := make(chan struct{})
		var once sync.Once
		var wg sync.WaitGroup
		b.ReportAllocs()
		b.ResetTimer()
		for p := 0; p < benchPollers; p++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					out, err := e.raw.ReceiveMessage(ctx, &awssqs.ReceiveMessageInput{
						QueueUrl: aws.String(url), MaxNumberOfMessages: 10, WaitTimeSeconds: 20,
						MessageAttributeNames:       []string{"All"},
						MessageSystemAttributeNames: []types.MessageSystemAttributeName{types.MessageSystemAttributeNameApproximateReceiveCount, types.MessageSystemAttributeNameSentTimestamp},
					})
					if err != nil || len(out.Messages) == 0 {
						continue
					}
					entries := make([]types.DeleteMessageBatchRequestEntry, len(out.Messages))
					for i, m := range out.Messages {
						entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(entryIDs[i]), ReceiptHandle: m.ReceiptHandle}
					}
					d, err := e.raw.DeleteMessageBatch(context.WithoutCancel(ctx), &awssqs.DeleteMessageBatchInput{QueueUrl: aws.String(url), Entries: entries})
					if err != nil {
						continue
					}
					if deleted.Add(int64(len(d.Successful))) >= total {
						once.Do(func() { close(done) })
					}
				}
			}()
		}
		select {
		case <-done:
		case <-time.After(5 * time.Minute):
			b.Fatalf("deleted %d of %d", deleted.Load(), total)
		}
		b.StopTimer()
		cancel()
		wg.Wait()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
