package main

import (
	"context"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	wamqp "github.com/ThreeDotsLabs/watermill-amqp/v3/pkg/amqp"
	wkafka "github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
)

// watermillContender is one Watermill Pub/Sub: newPub opens a publisher, newSub a subscriber
// for one subscription (creating it, so that later publishes are kept).
type watermillContender struct {
	name   string
	newPub func() (message.Publisher, error)
	newSub func(topic, sub string) (message.Subscriber, error)
	close  func() error
}

func (w *watermillContender) Name() string { return w.name }

func (w *watermillContender) Close() error {
	if w.close != nil {
		return w.close()
	}
	return nil
}

func (w *watermillContender) Sender(_ context.Context, topic string) (sender, error) {
	p, err := w.newPub()
	if err != nil {
		return nil, err
	}
	return &watermillSender{p: p, topic: topic}, nil
}

type watermillSender struct {
	p     message.Publisher
	topic string
	own   bool // Close closes p
}

// Send publishes one message; Watermill's Publish has no context.
func (s *watermillSender) Send(_ context.Context, p []byte) error {
	return s.p.Publish(s.topic, message.NewMessage(watermill.NewUUID(), p))
}

func (s *watermillSender) Close() error {
	if s.own {
		return s.p.Close()
	}
	return nil
}

func (w *watermillContender) Subscribe(_ context.Context, topic, sub string) (consumer, error) {
	s, err := w.newSub(topic, sub)
	if err != nil {
		return nil, err
	}
	return &watermillConsumer{s: s, topic: topic}, nil
}

type watermillConsumer struct {
	s     message.Subscriber
	topic string
}

func (c *watermillConsumer) Run(ctx context.Context, h func([]byte)) error {
	ch, err := c.s.Subscribe(ctx, c.topic)
	if err != nil {
		return err
	}
	for m := range ch {
		h(m.Payload)
		m.Ack()
	}
	return nil
}

func (c *watermillConsumer) Close() error { return c.s.Close() }

// newGoChannel is Watermill's in-process GoChannel. Persistent keeps what was published
// before a subscriber arrives (the only way to pre-fill it for the consume workload).
func newGoChannel() *watermillContender {
	gc := gochannel.NewGoChannel(gochannel.Config{Persistent: true, OutputChannelBuffer: 256}, watermill.NopLogger{})
	return &watermillContender{
		name:   "watermill-gochannel",
		newPub: func() (message.Publisher, error) { return gc, nil },
		newSub: func(string, string) (message.Subscriber, error) { return gochannelSub{gc}, nil },
		close:  gc.Close,
	}
}

// gochannelSub shares the GoChannel without closing it with each consumer.
type gochannelSub struct{ gc *gochannel.GoChannel }

func (g gochannelSub) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return g.gc.Subscribe(ctx, topic)
}

func (g gochannelSub) Close() error { return nil }

// newWatermillAMQP is watermill-amqp's durable pub/sub config with the weak defaults raised
// to Courier's: publisher confirms on (off by default), persistent messages (the default
// marshaler's), a pool of `channels` publishing channels, prefetch 256 (1 by default).
func newWatermillAMQP(uri string, channels int) *watermillContender {
	cfg := func(sub string) wamqp.Config {
		c := wamqp.NewDurablePubSubConfig(uri, wamqp.GenerateQueueNameTopicNameWithSuffix(sub))
		c.Publish.ConfirmDelivery = true
		c.Publish.ChannelPoolSize = channels
		c.Consume.Qos.PrefetchCount = 256
		return c
	}
	var pub *wamqp.Publisher
	return &watermillContender{
		name: "watermill-amqp",
		newPub: func() (message.Publisher, error) {
			if pub != nil {
				return pub, nil
			}
			p, err := wamqp.NewPublisher(cfg(""), watermill.NopLogger{})
			pub = p
			return p, err
		},
		newSub: func(topic, sub string) (message.Subscriber, error) {
			s, err := wamqp.NewSubscriber(cfg(sub), watermill.NopLogger{})
			if err != nil {
				return nil, err
			}
			if err := s.SubscribeInitialize(topic); err != nil {
				_ = s.Close()
				return nil, err
			}
			return s, nil
		},
		close: func() error {
			if pub != nil {
				return pub.Close()
			}
			return nil
		},
	}
}

// newWatermillKafka is watermill-kafka (Sarama) with acks=all (Sarama's default is the
// leader's ack only) and new consumer groups starting at the oldest offset (Sarama: newest).
func newWatermillKafka(brokers []string) *watermillContender {
	var pub *wkafka.Publisher
	return &watermillContender{
		name: "watermill-kafka",
		newPub: func() (message.Publisher, error) {
			if pub != nil {
				return pub, nil
			}
			sc := wkafka.DefaultSaramaSyncPublisherConfig()
			sc.Producer.RequiredAcks = sarama.WaitForAll
			p, err := wkafka.NewPublisher(wkafka.PublisherConfig{
				Brokers: brokers, Marshaler: wkafka.DefaultMarshaler{}, OverwriteSaramaConfig: sc,
			}, watermill.NopLogger{})
			pub = p
			return p, err
		},
		newSub: func(_, sub string) (message.Subscriber, error) {
			sc := wkafka.DefaultSaramaSubscriberConfig()
			sc.Consumer.Offsets.Initial = sarama.OffsetOldest
			return wkafka.NewSubscriber(wkafka.SubscriberConfig{
				Brokers: brokers, Unmarshaler: wkafka.DefaultMarshaler{}, ConsumerGroup: sub,
				OverwriteSaramaConfig: sc,
			}, watermill.NopLogger{})
		},
		close: func() error {
			if pub != nil {
				return pub.Close()
			}
			return nil
		},
	}
}
