package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/api/iterator"
)

const pubsubProject = "courier-brokercheck"

var emulatorEnvMu sync.Mutex

// pubsubClient connects the real client to the emulator the way tests do:
// through PUBSUB_EMULATOR_HOST.
func pubsubClient(ctx context.Context, host string) (*pubsub.Client, error) {
	emulatorEnvMu.Lock()
	defer emulatorEnvMu.Unlock()
	if err := os.Setenv("PUBSUB_EMULATOR_HOST", host); err != nil {
		return nil, err
	}
	return pubsub.NewClient(ctx, pubsubProject)
}

func readyPubSub(ctx context.Context, host string) error {
	c, err := pubsubClient(ctx, host)
	if err != nil {
		return err
	}
	defer c.Close()
	it := c.TopicAdminClient.ListTopics(ctx, &pubsubpb.ListTopicsRequest{Project: "projects/" + pubsubProject})
	if _, err := it.Next(); err != nil && err != iterator.Done {
		return err
	}
	return nil
}

func smokePubSub(ctx context.Context, host string) error {
	c, err := pubsubClient(ctx, host)
	if err != nil {
		return err
	}
	defer c.Close()
	id := uniqueName("courier-brokercheck")
	topic := fmt.Sprintf("projects/%s/topics/%s", pubsubProject, id)
	sub := fmt.Sprintf("projects/%s/subscriptions/%s", pubsubProject, id)
	if _, err := c.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: topic}); err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	defer c.TopicAdminClient.DeleteTopic(context.Background(), &pubsubpb.DeleteTopicRequest{Topic: topic})
	if _, err := c.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: topic, AckDeadlineSeconds: 10,
	}); err != nil {
		return fmt.Errorf("create subscription: %w", err)
	}
	defer c.SubscriptionAdminClient.DeleteSubscription(context.Background(), &pubsubpb.DeleteSubscriptionRequest{Subscription: sub})

	p := c.Publisher(topic)
	defer p.Stop()
	body := uniqueName("hello")
	if _, err := p.Publish(ctx, &pubsub.Message{Data: []byte(body)}).Get(ctx); err != nil {
		return fmt.Errorf("publish: %w", err)
	}

	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got string
	err = c.Subscriber(sub).Receive(rctx, func(_ context.Context, m *pubsub.Message) {
		got = string(m.Data)
		m.Ack()
		cancel()
	})
	if err != nil {
		return fmt.Errorf("receive: %w", err)
	}
	if got == "" {
		return errNoMessage
	}
	if got != body {
		return fmt.Errorf("got %q, want %q", got, body)
	}
	return nil
}
