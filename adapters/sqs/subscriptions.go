package sqs

import (
	"context"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.SubscriptionLister = (*Driver)(nil)

// Subscriptions implements driver.SubscriptionLister. A queue is its own one subscription
// (every consumer of a queue competes for its messages, whatever subscription name it gave),
// so the list is the topic's name when its queue exists, else empty. It creates nothing.
func (d *Driver) Subscriptions(parent context.Context, topic string) ([]string, error) {
	if d.closed.Load() {
		return nil, driver.ErrClosed
	}
	ctx, cancel := d.opContext(parent, 0)
	defer cancel()
	in := &sqs.GetQueueUrlInput{QueueName: aws.String(topic)}
	if d.cfg.QueueOwnerAccountID != "" {
		in.QueueOwnerAWSAccountId = aws.String(d.cfg.QueueOwnerAccountID)
	}
	_, err := d.client.GetQueueUrl(ctx, in)
	switch {
	case err == nil:
		return []string{topic}, nil
	case isNotFound(err):
		return nil, nil
	default:
		return nil, d.opError(parent, "look up queue "+strconv.Quote(topic), err)
	}
}
