package main

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

func sqsClient(endpoint string) *sqs.Client {
	cfg := aws.Config{
		Region:           "us-east-1",
		Credentials:      credentials.NewStaticCredentialsProvider("courier", "courier", ""),
		RetryMaxAttempts: 1,
	}
	return sqs.NewFromConfig(cfg, func(o *sqs.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

func readySQS(ctx context.Context, endpoint string) error {
	_, err := sqsClient(endpoint).ListQueues(ctx, &sqs.ListQueuesInput{})
	return err
}

// smokeSQS checks, on queues of its own that it deletes again, that a standard queue
// dead-letters a message past its maxReceiveCount and that a FIFO queue delivers.
func smokeSQS(ctx context.Context, endpoint string) error {
	s := &sqsSmoke{c: sqsClient(endpoint)}
	defer s.deleteAll()
	base := uniqueName("courier-brokercheck")
	if err := s.deadLetter(ctx, base); err != nil {
		return err
	}
	return s.fifo(ctx, base)
}

// sqsSmoke is an SQS client and the queues it created, to delete at the end.
type sqsSmoke struct {
	c       *sqs.Client
	created []string
}

func (s *sqsSmoke) create(ctx context.Context, name string, attrs map[string]string) (string, error) {
	out, err := s.c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
	if err != nil {
		return "", fmt.Errorf("create queue %s: %w", name, err)
	}
	s.created = append(s.created, *out.QueueUrl)
	return *out.QueueUrl, nil
}

func (s *sqsSmoke) deleteAll() {
	for _, u := range s.created {
		_, _ = s.c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
	}
}

// redriveQueues creates a standard queue named base with a dead-letter queue (RedrivePolicy,
// maxReceiveCount 1) and returns both URLs.
func (s *sqsSmoke) redriveQueues(ctx context.Context, base string) (q, dlq string, err error) {
	dlq, err = s.create(ctx, base+"-dlq", nil)
	if err != nil {
		return "", "", err
	}
	attrs, err := s.c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return "", "", err
	}
	dlqArn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	if dlqArn == "" {
		return "", "", fmt.Errorf("no QueueArn for %s", dlq)
	}
	q, err = s.create(ctx, base, nil)
	if err != nil {
		return "", "", err
	}
	if _, err := s.c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(q),
		Attributes: map[string]string{
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"1"}`, dlqArn),
		},
	}); err != nil {
		return "", "", fmt.Errorf("set RedrivePolicy: %w", err)
	}
	return q, dlq, nil
}

// deadLetter checks that a standard queue with a dead-letter queue moves a message received
// more than maxReceiveCount times there.
func (s *sqsSmoke) deadLetter(ctx context.Context, base string) error {
	q, dlq, err := s.redriveQueues(ctx, base)
	if err != nil {
		return err
	}
	body := uniqueName("hello")
	if _, err := s.c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)}); err != nil {
		return err
	}
	// The first receive uses up the one allowed receive; making the message
	// visible again (a nack) lets the next receive move it to the
	// dead-letter queue.
	m, err := receiveOne(ctx, s.c, q, body)
	if err != nil {
		return err
	}
	if _, err := s.c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	}); err != nil {
		return fmt.Errorf("change visibility: %w", err)
	}
	if out, err := s.c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), WaitTimeSeconds: 1}); err != nil {
		return err
	} else if len(out.Messages) != 0 {
		return fmt.Errorf("message past maxReceiveCount was delivered again instead of dead-lettered")
	}
	if _, err := receiveOne(ctx, s.c, dlq, body); err != nil {
		return fmt.Errorf("dead-letter queue: %w", err)
	}
	return nil
}

// fifo checks that a FIFO queue named base.fifo delivers a message, and deletes it.
func (s *sqsSmoke) fifo(ctx context.Context, base string) error {
	fifo, err := s.create(ctx, base+".fifo", map[string]string{"FifoQueue": "true"})
	if err != nil {
		return err
	}
	body := uniqueName("hello")
	if _, err := s.c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(fifo), MessageBody: aws.String(body),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(body),
	}); err != nil {
		return err
	}
	m, err := receiveOne(ctx, s.c, fifo, body)
	if err != nil {
		return fmt.Errorf("fifo: %w", err)
	}
	_, err = s.c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(fifo), ReceiptHandle: m.ReceiptHandle})
	return err
}

func receiveOne(ctx context.Context, c *sqs.Client, q, body string) (types.Message, error) {
	for ctx.Err() == nil {
		out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
			QueueUrl: aws.String(q), MaxNumberOfMessages: 1, WaitTimeSeconds: 2,
		})
		if err != nil {
			return types.Message{}, err
		}
		if len(out.Messages) == 1 {
			m := out.Messages[0]
			if aws.ToString(m.Body) != body {
				return m, fmt.Errorf("got %q, want %q", aws.ToString(m.Body), body)
			}
			return m, nil
		}
	}
	return types.Message{}, errNoMessage
}
