//go:build integration

package hostile

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/segmentio/kafka-go"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/integration/brokers"
)

// TestMatrixRabbitMQ: a plain AMQP producer publishes to the topic's exchange with the key as
// routing key (and courier-key, as a producer imitating Courier would), the ID as message-id.
func TestMatrixRabbitMQ(t *testing.T) {
	ep := brokers.Endpoint(t, brokers.RabbitMQ)
	conn, err := amqp.Dial(ep)
	must(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	var ch *amqp.Channel
	var mu sync.Mutex
	publish := func(ctx context.Context, t *testing.T, topic string, r raw) error {
		mu.Lock()
		defer mu.Unlock()
		if ch == nil || ch.IsClosed() { // the broker closes the channel on a publish it refuses
			if conn.IsClosed() { // … or the connection
				if conn, err = amqp.Dial(ep); err != nil {
					return err
				}
				c := conn
				t.Cleanup(func() { _ = c.Close() })
			}
			if ch, err = conn.Channel(); err != nil {
				return err
			}
			if err := ch.Confirm(false); err != nil {
				return err
			}
		}
		p := amqp.Publishing{Body: r.Payload, DeliveryMode: amqp.Persistent, Headers: amqp.Table{}}
		if r.ID != nil {
			p.MessageId = *r.ID
		}
		for _, h := range r.Headers {
			p.Headers[h[0]] = h[1]
		}
		if r.Key != "" {
			p.Headers["courier-key"] = r.Key
		}
		rk := r.Key
		if len(rk) > 255 {
			rk = rk[:255]
		}
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, topic, rk, false, false, p)
		if err == nil {
			var ok bool
			if ok, err = dc.WaitContext(ctx); err == nil && !ok {
				err = fmt.Errorf("not confirmed")
			}
		}
		if err != nil {
			// A frame the client failed to write leaves the connection unusable: start afresh.
			_ = conn.Close()
		}
		return err
	}
	runMatrix(t, target{name: "rabbitmq", url: ep, publish: publish, maxPayload: 4 << 20})
}

// TestMatrixKafka: a plain kafka-go writer; the ID travels in the courier-id header, the key
// as the record key.
func TestMatrixKafka(t *testing.T) {
	ep := brokers.Endpoint(t, brokers.Kafka)
	w := &kafka.Writer{Addr: kafka.TCP(strings.Split(ep, ",")...), RequiredAcks: kafka.RequireAll,
		BatchTimeout: time.Millisecond, BatchBytes: 2 << 20}
	t.Cleanup(func() { _ = w.Close() })
	publish := func(ctx context.Context, t *testing.T, topic string, r raw) error {
		rec := kafka.Message{Topic: topic, Value: r.Payload}
		if r.Key != "" {
			rec.Key = []byte(r.Key)
		}
		if r.ID != nil {
			rec.Headers = append(rec.Headers, kafka.Header{Key: "courier-id", Value: []byte(*r.ID)})
		}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, kafka.Header{Key: h[0], Value: []byte(h[1])})
		}
		return w.WriteMessages(ctx, rec)
	}
	// The broker's message.max.bytes is 1 MiB by default.
	runMatrix(t, target{name: "kafka", url: "kafka://" + ep + "/", publish: publish, maxPayload: 1 << 20})
}

// TestMatrixSQS: a plain SQS producer on FIFO queues (the key is the message group); String
// attributes carry the headers. SQS has no field for an ID: a plain producer's messages are
// named by SQS's MessageId.
func TestMatrixSQS(t *testing.T) {
	ep := brokers.Endpoint(t, brokers.SQS)
	client := awssqs.NewFromConfig(aws.Config{Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("courier", "courier", "")},
		func(o *awssqs.Options) { o.BaseEndpoint = aws.String(ep) })
	n := 0
	var mu sync.Mutex
	publish := func(ctx context.Context, t *testing.T, topic string, r raw) error {
		q, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
		if err != nil {
			return err
		}
		mu.Lock()
		n++
		dedup := fmt.Sprintf("d%d-%d", time.Now().UnixNano(), n)
		mu.Unlock()
		in := &awssqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String(string(r.Payload)),
			MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(dedup),
			MessageAttributes: map[string]types.MessageAttributeValue{}}
		if r.Key != "" {
			in.MessageGroupId = aws.String(r.Key)
		}
		for _, h := range r.Headers {
			in.MessageAttributes[h[0]] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(h[1])}
		}
		_, err = client.SendMessage(ctx, in)
		return err
	}
	u := "sqs://?region=us-east-1&wait_time=1s&visibility_timeout=5s&endpoint=" + url.QueryEscape(ep)
	runMatrix(t, target{name: "sqs-fifo", url: u, publish: publish, maxPayload: 256 << 10,
		topic: func(base string) string { return base + ".fifo" }})
}

// TestMatrixPubSub: a plain Pub/Sub publisher; the key is the ordering key, the ID the
// courier-id attribute.
func TestMatrixPubSub(t *testing.T) {
	ep := brokers.Endpoint(t, brokers.PubSub)
	const project = "courier-hostile"
	client, err := pubsub.NewClient(context.Background(), project, option.WithEndpoint(ep),
		option.WithoutAuthentication(), option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
		option.WithTelemetryDisabled())
	must(t, err)
	t.Cleanup(func() { _ = client.Close() })
	var mu sync.Mutex
	pubs := map[string]*pubsub.Publisher{}
	t.Cleanup(func() {
		for _, p := range pubs {
			p.Stop()
		}
	})
	publish := func(ctx context.Context, t *testing.T, topic string, r raw) error {
		mu.Lock()
		p := pubs[topic]
		if p == nil {
			p = client.Publisher("projects/" + project + "/topics/" + topic)
			p.EnableMessageOrdering = true
			pubs[topic] = p
		}
		mu.Unlock()
		m := &pubsub.Message{Data: r.Payload, OrderingKey: r.Key, Attributes: map[string]string{}}
		if r.ID != nil {
			m.Attributes["courier-id"] = *r.ID
		}
		for _, h := range r.Headers {
			m.Attributes[h[0]] = h[1]
		}
		_, err := p.Publish(ctx, m).Get(ctx)
		if err != nil && r.Key != "" {
			p.ResumePublish(r.Key)
		}
		return err
	}
	runMatrix(t, target{name: "gcppubsub", url: "gcppubsub://" + project + "?endpoint=" + ep, publish: publish, maxPayload: 4 << 20})
}

// newLogger logs everything to w as text.
func newLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// countLines counts the lines of logs that contain s.
func countLines(logs, s string) int {
	n := 0
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

// runMatrix publishes every case raw and checks the ledger.
func runMatrix(t *testing.T, tg target) { runMatrixOn(t, newFixture(t, tg)) }
