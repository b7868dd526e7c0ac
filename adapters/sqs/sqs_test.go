package sqs_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/adapters/sqs"
	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/integration/conformance"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) {
	// ElasticMQ accepts any credentials; the URL-opened connections of the conformance suite
	// take them from the standard chain, so give the chain static ones (unless the environment
	// has its own) and keep it from probing for an EC2 instance role.
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "courier", "AWS_SECRET_ACCESS_KEY": "courier", "AWS_EC2_METADATA_DISABLED": "true",
	} {
		if os.Getenv(k) == "" {
			os.Setenv(k, v)
		}
	}
	if os.Getenv("COURIER_TEST_DEBUG") != "" {
		slog.SetLogLoggerLevel(slog.LevelDebug)
	}
	goleak.VerifyTestMain(m)
}

const region = "us-east-1"

// endpoint returns the SQS emulator's endpoint, or skips the test (fails under
// COURIER_REQUIRE_BROKERS=1).
func endpoint(t testing.TB) string {
	t.Helper()
	return brokers.Endpoint(t, brokers.SQS)
}

// testConfig is a Config for the emulator at ep.
func testConfig(ep string) sqs.Config {
	return sqs.Config{
		Region:      region,
		Endpoint:    ep,
		Credentials: credentials.NewStaticCredentialsProvider("courier", "courier", ""),
	}
}

// open opens a connection closed at the end of the test.
func open(t testing.TB, cfg sqs.Config) *transport.Conn {
	t.Helper()
	c, err := sqs.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

func conformanceHarness(ep string, fifo bool) conformance.Harness {
	h := conformance.Harness{
		Open: func(ctx context.Context, t testing.TB) *transport.Conn {
			// wait_time=5s: ElasticMQ does not wake a long poll on a dead-letter queue when
			// redrive moves a message there, so NativeDeadLetter would wait out a 20 s poll.
			c, err := transport.Open(ctx, "sqs://?region="+region+"&wait_time=5s&endpoint="+url.QueryEscape(ep))
			if err != nil {
				t.Fatal(err)
			}
			return c
		},
		Unsupported: map[conformance.Feature]string{
			conformance.FanOut:      "an SQS queue has no subscriptions: every consumer of a queue competes for its messages (fan-out needs SNS, which this adapter does not use)",
			conformance.LatestStart: "the queue is the subscription: it keeps what was published to it before anyone subscribed, whatever the start position",
		},
	}
	suffix := ""
	if fifo {
		suffix = ".fifo"
	} else {
		h.Unsupported[conformance.DeliveryOrder] = "a standard queue promises no order (ElasticMQ shuffles messages stored in the same millisecond); use a FIFO queue, or the ordering middleware"
	}
	h.NewTopic = func(t testing.TB) string {
		name := conformance.DefaultTopicName(t) + suffix
		deleteQueuesAtEnd(t, ep, name)
		return name
	}
	return h
}

// deleteQueuesAtEnd deletes the queues (and their default dead-letter queues) when the test
// ends: ElasticMQ slows down with thousands of queues left behind.
func deleteQueuesAtEnd(t testing.TB, ep string, names ...string) {
	t.Cleanup(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		client := awssqs.NewFromConfig(aws.Config{Region: region, HTTPClient: &http.Client{Transport: tr},
			Credentials: credentials.NewStaticCredentialsProvider("courier", "courier", "")},
			func(o *awssqs.Options) { o.BaseEndpoint = aws.String(ep) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, name := range names {
			// The queue, its dead-letter queue, and the one a subscriber of that creates.
			dlq := new(sqs.Driver).DeadLetterTopic(name)
			for _, q := range []string{name, dlq, new(sqs.Driver).DeadLetterTopic(dlq)} {
				if u, err := client.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q)}); err == nil {
					_, _ = client.DeleteQueue(ctx, &awssqs.DeleteQueueInput{QueueUrl: u.QueueUrl})
				}
			}
		}
	})
}

// TestConformance runs the suite on standard queues and on FIFO queues.
func TestConformance(t *testing.T) {
	ep := endpoint(t)
	t.Run("standard", func(t *testing.T) { conformance.Run(t, conformanceHarness(ep, false)) })
	t.Run("fifo", func(t *testing.T) { conformance.Run(t, conformanceHarness(ep, true)) })
}

// uniqueQueue returns a fresh queue name; the queue on the emulator at ep is deleted when the
// test ends.
func uniqueQueue(t testing.TB, ep, suffix string) string {
	name := conformance.DefaultTopicName(t) + suffix
	deleteQueuesAtEnd(t, ep, name)
	return name
}
