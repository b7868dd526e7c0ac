package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport/driver"
)

// DeleteTopic implements driver.TopicDeleter: it deletes the topic and its records (the
// broker must allow it: delete.topic.enable, the default). A topic that does not exist is not
// an error. The deletion completes on the brokers asynchronously.
func (d *Driver) DeleteTopic(ctx context.Context, topic string) error {
	if d.closed.Load() {
		return fmt.Errorf("kafka: delete topic %q: %w", topic, driver.ErrClosed)
	}
	cctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	resp, err := d.client.DeleteTopics(cctx, &kafka.DeleteTopicsRequest{Addr: d.addr, Topics: []string{topic}})
	d.forgetTopic(topic)
	if err != nil {
		return wrap(fmt.Sprintf("delete topic %q", topic), err)
	}
	if terr := resp.Errors[topic]; terr != nil && !errors.Is(terr, kafka.UnknownTopicOrPartition) {
		return wrap(fmt.Sprintf("delete topic %q", topic), terr)
	}
	return nil
}
