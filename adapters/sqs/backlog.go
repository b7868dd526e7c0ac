package sqs

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.BacklogReporter = (*Driver)(nil)

// backlogAttributes are the queue attributes Backlog reads.
var backlogAttributes = []types.QueueAttributeName{
	types.QueueAttributeNameApproximateNumberOfMessages,
	types.QueueAttributeNameApproximateNumberOfMessagesNotVisible,
	types.QueueAttributeNameApproximateNumberOfMessagesDelayed,
}

// Backlog implements driver.BacklogReporter with one GetQueueAttributes of topic's queue
// (the queue is its own one subscription, whatever name a subscriber gives it):
//
//   - Messages: ApproximateNumberOfMessages, the visible messages;
//   - InFlight: ApproximateNumberOfMessagesNotVisible, received and not deleted yet —
//     including messages a subscriber nacked with a retry delay (Courier hides them by
//     their visibility timeout);
//   - Delayed: ApproximateNumberOfMessagesDelayed, sent with a delivery delay (DelaySeconds);
//   - Consumers: driver.BacklogUnknown, SQS does not know its consumers.
//
// Approximate is set: SQS documents these counts as approximate and eventually consistent,
// which in practice means they may trail the truth until about a minute after producers and
// consumers stop (the slack the conformance suite allows: ApproximateSettle, and 5%). A
// queue that does not exist is ErrSubscriptionNotFound. It creates nothing.
func (d *Driver) Backlog(parent context.Context, topic, _ string) (driver.Backlog, error) {
	if d.closed.Load() {
		return driver.Backlog{}, fmt.Errorf("sqs: backlog: %w", driver.ErrClosed)
	}
	q, err := d.queue(parent, topic, false)
	if errors.Is(err, driver.ErrTopicNotFound) {
		return driver.Backlog{}, fmt.Errorf("%w: %w", driver.ErrSubscriptionNotFound, err)
	}
	if err != nil {
		return driver.Backlog{}, err
	}
	ctx, cancel := d.opContext(parent, 0)
	defer cancel()
	out, err := d.client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(q.url), AttributeNames: backlogAttributes})
	if err != nil && isNotFound(err) {
		d.forget(q)
		return driver.Backlog{}, fmt.Errorf("sqs: %w: queue %q does not exist: %w", driver.ErrSubscriptionNotFound, topic, driver.ErrTopicNotFound)
	}
	if err != nil {
		return driver.Backlog{}, d.opError(parent, "read the backlog of queue "+strconv.Quote(topic), err)
	}
	return backlogOf(out.Attributes)
}

// backlogOf reads the counts out of GetQueueAttributes' answer. A count that is missing or
// not a number is an error: SQS always sends the attributes asked for.
func backlogOf(attrs map[string]string) (driver.Backlog, error) {
	var n [3]int64
	for i, name := range backlogAttributes {
		v, ok := attrs[string(name)]
		if !ok {
			return driver.Backlog{}, fmt.Errorf("sqs: backlog: the answer lacks %s: %w", name, driver.ErrUnavailable)
		}
		c, err := strconv.ParseInt(v, 10, 64)
		if err != nil || c < 0 {
			return driver.Backlog{}, fmt.Errorf("sqs: backlog: %s is %q, not a count: %w", name, v, driver.ErrUnavailable)
		}
		n[i] = c
	}
	return driver.Backlog{Messages: n[0], InFlight: n[1], Delayed: n[2], Consumers: driver.BacklogUnknown, Approximate: true}, nil
}
