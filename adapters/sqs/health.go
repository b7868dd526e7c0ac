package sqs

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/courierhq/courier/transport/driver"
)

// Ping implements driver.Pinger: one ListQueues asking for a single queue, bounded by ctx
// and Config.OperationTimeout. SQS has no subscriptions apart from queues, so the adapter
// implements no driver.SubscriptionDeleter: a queue is the topic itself.
func (d *Driver) Ping(ctx context.Context) error {
	endpoint := d.cfg.Endpoint
	if endpoint == "" {
		endpoint = "SQS in " + d.cfg.Region
	}
	if d.closed.Load() {
		return fmt.Errorf("sqs: ping %s: %w", endpoint, driver.ErrClosed)
	}
	octx, cancel := d.opContext(ctx, 0)
	defer cancel()
	if _, err := d.client.ListQueues(octx, &sqs.ListQueuesInput{MaxResults: aws.Int32(1)}); err != nil {
		return d.opError(ctx, "ping "+endpoint, err)
	}
	return nil
}
