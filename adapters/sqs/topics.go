package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/courierhq/courier/transport/driver"
)

// DeleteTopic implements driver.TopicDeleter: it deletes the queue (and its messages). A queue
// that does not exist is not an error. SQS refuses to create a queue of the same name for 60
// seconds afterwards.
func (d *Driver) DeleteTopic(ctx context.Context, topic string) error {
	if d.closed.Load() {
		return fmt.Errorf("sqs: delete queue %q: %w", topic, driver.ErrClosed)
	}
	q, err := d.queue(ctx, topic, false)
	if errors.Is(err, driver.ErrTopicNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d.forget(q)
	octx, cancel := d.opContext(ctx, 0)
	defer cancel()
	if _, err := d.client.DeleteQueue(octx, &sqs.DeleteQueueInput{QueueUrl: aws.String(q.url)}); err != nil && !isNotFound(err) {
		return d.opError(ctx, "delete queue "+strconv.Quote(topic), err)
	}
	return nil
}
