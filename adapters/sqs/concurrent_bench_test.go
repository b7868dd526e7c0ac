package sqs_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// BenchmarkPublishSingles: the service's publish pattern. conc goroutines each publish one
// 256-byte message and wait for SQS to accept it. "courier" coalesces concurrent calls (the
// default; SQS takes 10 per request), "courier-uncoalesced" sends every call on its own (the
// figure before coalescing), "raw" calls SendMessage with the ID in one attribute.
func BenchmarkPublishSingles(b *testing.B) {
	e := newBenchEnv(b)
	e.warm(b)
	payload := bytesOf('x', benchPayload)
	for _, conc := range []int{1, 16, 64} {
		b.Run("conc="+strconv.Itoa(conc), func(b *testing.B) {
			for _, coalesce := range []int{0, 1} {
				name := "courier"
				if coalesce == 1 {
					name = "courier-uncoalesced"
				}
				b.Run(name, func(b *testing.B) {
					topic, _ := e.queue(b)
					p := e.courier.Publisher(transport.PublisherConfig{CoalesceMessages: coalesce})
					if err := p.Publish(context.Background(), topic, &message.Message{Payload: payload}); err != nil {
						b.Fatal(err) // queue resolved before the clock starts
					}
					benchkit.Run(b, conc, func(ctx context.Context) error {
						return p.Publish(ctx, topic, &message.Message{Payload: payload})
					})
				})
			}
			b.Run("raw", func(b *testing.B) {
				_, url := e.queue(b)
				body := aws.String(string(payload))
				benchkit.Run(b, conc, func(ctx context.Context) error {
					_, err := e.raw.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(url), MessageBody: body,
						MessageAttributes: map[string]types.MessageAttributeValue{
							"id": {DataType: aws.String("String"), StringValue: aws.String(uuid.Must(uuid.NewV7()).String())},
						}})
					return err
				})
			})
		})
	}
}
