//go:build integration

package sqs_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/internal/adaptertest"
	"github.com/courierhq/courier/message"
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
	topic := uniqueQueue(t, ep, suffix)
	raw := plainClient(t, ep)
	var queueURL *string
	adaptertest.PlainToCourier(t, adaptertest.PlainProducer{
		Conn: open(t, testConfig(ep)), Topic: topic,
		Payloads: [][]byte{{0, 1, 2, 0xfe, 0xff}, []byte(`{"text":"héllo"}`)}, // a plain body is never empty
		Publish: func(ctx context.Context, i int, p []byte) error {
			if queueURL == nil {
				q, err := raw.GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(topic)})
				if err != nil {
					return err
				}
				queueURL = q.QueueUrl
			}
			_, err := raw.SendMessage(ctx, plainMessage(queueURL, i, p, suffix == ".fifo"))
			return err
		},
		Key: func(i int) string {
			if suffix == ".fifo" {
				return fmt.Sprintf("cust-%d", i)
			}
			return "" // standard queues have no key
		},
		NativeID: func(m *message.Message) string {
			var native types.Message
			if !m.As(&native) {
				return "not a types.Message"
			}
			return aws.ToString(native.MessageId)
		},
	})
}

// plainMessage is payload i as a plain producer sends it: binary (i == 0) in base64 with
// courier-body-encoding saying so, native attributes tenant and n, and on FIFO queues the
// group cust-<i>.
func plainMessage(queueURL *string, i int, p []byte, fifo bool) *awssqs.SendMessageInput {
	in := &awssqs.SendMessageInput{QueueUrl: queueURL, MessageBody: aws.String(string(p)),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"tenant": {DataType: aws.String("String"), StringValue: aws.String("acme")},
			"n":      {DataType: aws.String("Number"), StringValue: aws.String(fmt.Sprint(i))},
		}}
	if i == 0 {
		in.MessageBody = aws.String(base64.StdEncoding.EncodeToString(p))
		in.MessageAttributes["courier-body-encoding"] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String("base64")}
	}
	if fifo {
		in.MessageGroupId = aws.String(fmt.Sprintf("cust-%d", i))
		in.MessageDeduplicationId = aws.String(fmt.Sprintf("dedup-%d", i))
	}
	return in
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
	want := adaptertest.PublishAll(ctx, t, c, topic)
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
		adaptertest.CheckHeaders(t, m, func(k string) string {
			if a := r.MessageAttributes[k]; aws.ToString(a.DataType) == "String" {
				return aws.ToString(a.StringValue)
			}
			return "(not a String attribute)"
		})
		if g := r.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]; fifo && g != m.Key {
			t.Errorf("%s: MessageGroupId %q; want the key %q", m.ID, g, m.Key)
		}
		return
	}
	t.Errorf("no message with ID %q in courier-meta", m.ID)
}
