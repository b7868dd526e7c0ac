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

func smokeSQS(ctx context.Context, endpoint string) error {
	c := sqsClient(endpoint)
	base := uniqueName("courier-brokercheck")
	var created []string
	defer func() {
		for _, u := range created {
			_, _ = c.DeleteQueue(context.Background(), &sqs.DeleteQueueInput{QueueUrl: aws.String(u)})
		}
	}()
	create := func(name string, attrs map[string]string) (string, error) {
		out, err := c.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String(name), Attributes: attrs})
		if err != nil {
			return "", fmt.Errorf("create queue %s: %w", name, err)
		}
		created = append(created, *out.QueueUrl)
		return *out.QueueUrl, nil
	}

	// Standard queue with a dead-letter queue (RedrivePolicy).
	dlq, err := create(base+"-dlq", nil)
	if err != nil {
		return err
	}
	attrs, err := c.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(dlq), AttributeNames: []types.QueueAttributeName{types.QueueAttributeNameQueueArn},
	})
	if err != nil {
		return err
	}
	dlqArn := attrs.Attributes[string(types.QueueAttributeNameQueueArn)]
	if dlqArn == "" {
		return fmt.Errorf("no QueueArn for %s", dlq)
	}
	q, err := create(base, nil)
	if err != nil {
		return err
	}
	if _, err := c.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(q),
		Attributes: map[string]string{
			"RedrivePolicy": fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"1"}`, dlqArn),
		},
	}); err != nil {
		return fmt.Errorf("set RedrivePolicy: %w", err)
	}
	body := uniqueName("hello")
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(q), MessageBody: aws.String(body)}); err != nil {
		return err
	}
	// The first receive uses up the one allowed receive; making the message
	// visible again (a nack) lets the next receive move it to the
	// dead-letter queue.
	m, err := receiveOne(ctx, c, q, body)
	if err != nil {
		return err
	}
	if _, err := c.ChangeMessageVisibility(ctx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(q), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
	}); err != nil {
		return fmt.Errorf("change visibility: %w", err)
	}
	if out, err := c.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(q), WaitTimeSeconds: 1}); err != nil {
		return err
	} else if len(out.Messages) != 0 {
		return fmt.Errorf("message past maxReceiveCount was delivered again instead of dead-lettered")
	}
	if _, err := receiveOne(ctx, c, dlq, body); err != nil {
		return fmt.Errorf("dead-letter queue: %w", err)
	}

	// FIFO queue.
	fifo, err := create(base+".fifo", map[string]string{"FifoQueue": "true"})
	if err != nil {
		return err
	}
	if _, err := c.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(fifo), MessageBody: aws.String(body),
		MessageGroupId: aws.String("g"), MessageDeduplicationId: aws.String(body),
	}); err != nil {
		return err
	}
	m, err = receiveOne(ctx, c, fifo, body)
	if err != nil {
		return fmt.Errorf("fifo: %w", err)
	}
	_, err = c.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(fifo), ReceiptHandle: m.ReceiptHandle})
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
