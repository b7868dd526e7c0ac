package main

import (
	"context"
	"io"
	"log/slog"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// courierContender is Courier at its defaults on the broker its URL names.
type courierContender struct {
	conn *transport.Conn
}

func newCourier(ctx context.Context, url string) (*courierContender, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet})
	if err != nil {
		return nil, err
	}
	return &courierContender{conn: conn}, nil
}

func (c *courierContender) Name() string { return "courier" }

func (c *courierContender) Close() error { return c.conn.Close(context.Background()) }

func (c *courierContender) Sender(_ context.Context, topic string) (sender, error) {
	return &courierSender{p: c.conn.Publisher(transport.PublisherConfig{}), topic: topic}, nil
}

type courierSender struct {
	p     *transport.Publisher
	topic string
}

func (s *courierSender) Send(ctx context.Context, p []byte) error {
	return s.p.Publish(ctx, s.topic, &message.Message{Payload: p})
}

func (s *courierSender) Close() error { return nil }

func (c *courierContender) Subscribe(ctx context.Context, topic, sub string) (consumer, error) {
	// OrderDelivery: the messages carry no key, so this only lets SQS standard queues in.
	s, err := c.conn.Subscribe(ctx, topic, sub, transport.SubscriberConfig{
		Order: transport.OrderDelivery,
		Start: transport.StartEarliest,
	})
	if err != nil {
		return nil, err
	}
	return &courierConsumer{s: s}, nil
}

type courierConsumer struct{ s *transport.Subscriber }

func (c *courierConsumer) Run(ctx context.Context, h func([]byte)) error {
	err := c.s.Run(ctx, func(_ context.Context, m *message.Message) error {
		h(m.Payload)
		return nil
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (c *courierConsumer) Close() error { return c.s.Close(context.Background()) }
