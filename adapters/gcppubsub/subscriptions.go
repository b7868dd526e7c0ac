package gcppubsub

import (
	"context"
	"errors"
	"strings"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"

	"github.com/courierhq/courier/transport/driver"
)

var _ driver.SubscriptionLister = (*Driver)(nil)

// Subscriptions implements driver.SubscriptionLister with ListTopicSubscriptions. A
// subscription Courier created ("<prefix><topic>~<name>") is listed as its Courier name, any
// other under its subscription ID (a Courier name too long for Pub/Sub, hashed, is listed as
// the hashed rest of the ID). A topic that does not exist has none.
func (d *Driver) Subscriptions(ctx context.Context, topic string) ([]string, error) {
	if d.closed.Load() {
		return nil, driver.ErrClosed
	}
	tid, err := d.topicID(topic)
	if err != nil {
		return nil, err
	}
	it := d.client.TopicAdminClient.ListTopicSubscriptions(ctx, &pubsubpb.ListTopicSubscriptionsRequest{Topic: d.topicPath(tid)})
	own := d.subscriptionPath(tid + subscriptionSep)
	var names []string
	for {
		path, err := it.Next()
		if errors.Is(err, iterator.Done) {
			return names, nil
		}
		if err != nil {
			if classify(err, driver.ErrTopicNotFound, driver.ErrInvalidTopic) == driver.ErrTopicNotFound {
				return nil, nil
			}
			return nil, wrap(ctx, "list subscriptions of topic "+tid, err, driver.ErrTopicNotFound, driver.ErrInvalidTopic)
		}
		if name, ok := strings.CutPrefix(path, own); ok {
			names = append(names, name)
		} else {
			names = append(names, path[strings.LastIndexByte(path, '/')+1:])
		}
	}
}
