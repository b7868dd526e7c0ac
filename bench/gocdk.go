package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"cloud.google.com/go/pubsub/apiv1/pubsubpb"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	amqp "github.com/rabbitmq/amqp091-go"
	"gocloud.dev/gcp"
	"gocloud.dev/pubsub"
	"gocloud.dev/pubsub/awssnssqs"
	"gocloud.dev/pubsub/gcppubsub"
	"gocloud.dev/pubsub/mempubsub"
	"gocloud.dev/pubsub/rabbitpubsub"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// gocdkReceivers is how many goroutines call Subscription.Receive, as Go CDK's documentation
// advises for throughput: Courier's default concurrency.
const gocdkReceivers = 8

// gocdkContender is one Go CDK pubsub driver. Topics are opened once per name and shared by
// the senders and subscriptions of that name (mempubsub needs the same *pubsub.Topic).
type gocdkContender struct {
	name       string
	openTopic  func(ctx context.Context, name string) (*pubsub.Topic, error)
	openSub    func(ctx context.Context, t *pubsub.Topic, topic, sub string) (*pubsub.Subscription, error)
	beforeSend func(asFunc func(any) bool) error
	close      func() error

	mu     sync.Mutex
	topics map[string]*pubsub.Topic
}

func (g *gocdkContender) Name() string { return g.name }

func (g *gocdkContender) topic(ctx context.Context, name string) (*pubsub.Topic, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if t, ok := g.topics[name]; ok {
		return t, nil
	}
	t, err := g.openTopic(ctx, name)
	if err != nil {
		return nil, err
	}
	if g.topics == nil {
		g.topics = map[string]*pubsub.Topic{}
	}
	g.topics[name] = t
	return t, nil
}

func (g *gocdkContender) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	for _, t := range g.topics {
		errs = append(errs, t.Shutdown(context.Background()))
	}
	g.topics = nil
	if g.close != nil {
		errs = append(errs, g.close())
	}
	return errors.Join(errs...)
}

func (g *gocdkContender) Sender(ctx context.Context, topic string) (sender, error) {
	t, err := g.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	return &gocdkSender{t: t, beforeSend: g.beforeSend}, nil
}

type gocdkSender struct {
	t          *pubsub.Topic
	beforeSend func(asFunc func(any) bool) error
}

func (s *gocdkSender) Send(ctx context.Context, p []byte) error {
	return s.t.Send(ctx, &pubsub.Message{Body: p, BeforeSend: s.beforeSend})
}

func (s *gocdkSender) Close() error { return nil }

func (g *gocdkContender) Subscribe(ctx context.Context, topic, sub string) (consumer, error) {
	t, err := g.topic(ctx, topic)
	if err != nil {
		return nil, err
	}
	s, err := g.openSub(ctx, t, topic, sub)
	if err != nil {
		return nil, err
	}
	return &gocdkConsumer{s: s}, nil
}

type gocdkConsumer struct{ s *pubsub.Subscription }

func (c *gocdkConsumer) Run(ctx context.Context, h func([]byte)) error {
	errs := make(chan error, gocdkReceivers)
	var wg sync.WaitGroup
	for range gocdkReceivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := c.s.Receive(ctx)
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				h(m.Body)
				m.Ack()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (c *gocdkConsumer) Close() error { return c.s.Shutdown(context.Background()) }

// newMempubsub is Go CDK's in-process driver.
func newMempubsub() *gocdkContender {
	return &gocdkContender{
		name:      "gocdk-mempubsub",
		openTopic: func(context.Context, string) (*pubsub.Topic, error) { return mempubsub.NewTopic(), nil },
		openSub: func(_ context.Context, t *pubsub.Topic, _, _ string) (*pubsub.Subscription, error) {
			return mempubsub.NewSubscription(t, time.Minute), nil
		},
	}
}

// newRabbitpubsub is Go CDK's rabbitpubsub with its weak default raised: messages are sent
// persistent (it sends them transient) to a durable exchange and durable queues declared here
// (it declares nothing itself). It publishes with confirms and prefetch is set to 256.
func newRabbitpubsub(uri string) (*gocdkContender, error) {
	conn, err := amqp.Dial(uri)
	if err != nil {
		return nil, err
	}
	declare := func(exchange, queue string) error {
		ch, err := conn.Channel()
		if err != nil {
			return err
		}
		defer ch.Close()
		if err := ch.ExchangeDeclare(exchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
			return err
		}
		if queue == "" {
			return nil
		}
		if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
			return err
		}
		return ch.QueueBind(queue, "", exchange, false, nil)
	}
	prefetch := 256
	return &gocdkContender{
		name: "gocdk-rabbitpubsub",
		openTopic: func(_ context.Context, name string) (*pubsub.Topic, error) {
			if err := declare(name, ""); err != nil {
				return nil, err
			}
			return rabbitpubsub.OpenTopic(conn, name, nil), nil
		},
		openSub: func(_ context.Context, _ *pubsub.Topic, topic, sub string) (*pubsub.Subscription, error) {
			q := topic + "." + sub
			if err := declare(topic, q); err != nil {
				return nil, err
			}
			return rabbitpubsub.OpenSubscription(conn, q, &rabbitpubsub.SubscriptionOptions{PrefetchCount: &prefetch}), nil
		},
		beforeSend: func(as func(any) bool) error {
			var p *amqp.Publishing
			if as(&p) {
				p.DeliveryMode = amqp.Persistent
			}
			return nil
		},
		close: conn.Close,
	}, nil
}

// newAWSSNSSQS is Go CDK's awssnssqs in its SQS-only mode against the ElasticMQ endpoint.
// The queue is the topic and its one subscription, as in Courier. Its client gets the same
// HTTP connection pool as Courier's adapter (the SDK's default keeps 10 idle connections per
// host, fewer than 16 publishers).
func newAWSSNSSQS(endpoint string) *gocdkContender {
	client := sqs.New(sqs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("x", "x", ""),
		HTTPClient:   &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 128}},
	})
	queueURL := func(ctx context.Context, name string) (string, error) {
		out, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name)})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.QueueUrl), nil
	}
	return &gocdkContender{
		name: "gocdk-awssnssqs",
		openTopic: func(ctx context.Context, name string) (*pubsub.Topic, error) {
			u, err := queueURL(ctx, name)
			if err != nil {
				return nil, err
			}
			return awssnssqs.OpenSQSTopic(ctx, client, u, nil), nil
		},
		openSub: func(ctx context.Context, _ *pubsub.Topic, topic, _ string) (*pubsub.Subscription, error) {
			u, err := queueURL(ctx, topic)
			if err != nil {
				return nil, err
			}
			return awssnssqs.OpenSubscription(ctx, client, u, nil), nil
		},
	}
}

// newGCPPubSub is Go CDK's gcppubsub against the Pub/Sub emulator; topics and subscriptions
// are created here (it creates none).
func newGCPPubSub(ctx context.Context, host, project string) (*gocdkContender, error) {
	conn, err := grpc.NewClient(host, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	pc, err := gcppubsub.PublisherClient(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	sc, err := gcppubsub.SubscriberClient(ctx, conn)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	topicPath := func(t string) string { return fmt.Sprintf("projects/%s/topics/%s", project, t) }
	return &gocdkContender{
		name: "gocdk-gcppubsub",
		openTopic: func(ctx context.Context, name string) (*pubsub.Topic, error) {
			if _, err := pc.CreateTopic(ctx, &pubsubpb.Topic{Name: topicPath(name)}); ignoreExists(err) != nil {
				return nil, err
			}
			return gcppubsub.OpenTopic(pc, gcp.ProjectID(project), name, nil), nil
		},
		openSub: func(ctx context.Context, _ *pubsub.Topic, topic, sub string) (*pubsub.Subscription, error) {
			name := topic + "-" + sub
			_, err := sc.CreateSubscription(ctx, &pubsubpb.Subscription{
				Name: fmt.Sprintf("projects/%s/subscriptions/%s", project, name), Topic: topicPath(topic), AckDeadlineSeconds: 60,
			})
			if ignoreExists(err) != nil {
				return nil, err
			}
			return gcppubsub.OpenSubscription(sc, gcp.ProjectID(project), name, nil), nil
		},
		close: func() error { return errors.Join(pc.Close(), sc.Close(), conn.Close()) },
	}, nil
}

func ignoreExists(err error) error {
	if status.Code(err) == codes.AlreadyExists {
		return nil
	}
	return err
}
