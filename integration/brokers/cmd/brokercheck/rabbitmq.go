package main

import (
	"context"
	"fmt"
	"net"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func dialAMQP(ctx context.Context, url string) (*amqp.Connection, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(5 * time.Second)
	}
	return amqp.DialConfig(url, amqp.Config{
		Heartbeat: 10 * time.Second,
		Locale:    "en_US",
		Dial: func(network, addr string) (net.Conn, error) {
			d := net.Dialer{Deadline: dl}
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			// The handshake must finish before the deadline too.
			if err := c.SetDeadline(dl); err != nil {
				c.Close()
				return nil, err
			}
			return c, nil
		},
	})
}

func readyRabbitMQ(ctx context.Context, url string) error {
	conn, err := dialAMQP(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	return ch.Close()
}

func smokeRabbitMQ(ctx context.Context, url string) error {
	conn, err := dialAMQP(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()

	// The consistent hash exchange plugin must be enabled: the adapter may
	// shard by key.
	ex := uniqueName("courier-brokercheck-hash")
	if err := ch.ExchangeDeclare(ex, "x-consistent-hash", false, true, false, false, nil); err != nil {
		return fmt.Errorf("declare x-consistent-hash exchange (is rabbitmq_consistent_hash_exchange enabled?): %w", err)
	}
	if err := ch.ExchangeDelete(ex, false, false); err != nil {
		return err
	}

	q, err := ch.QueueDeclare(uniqueName("courier-brokercheck"), false, true, true, false, nil)
	if err != nil {
		return err
	}
	if err := ch.Confirm(false); err != nil {
		return err
	}
	body := []byte(uniqueName("hello"))
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", q.Name, true, false,
		amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent})
	if err != nil {
		return err
	}
	acked, err := conf.WaitContext(ctx)
	if err != nil {
		return err
	}
	if !acked {
		return fmt.Errorf("publish was nacked")
	}
	for ctx.Err() == nil {
		d, ok, err := ch.Get(q.Name, false)
		if err != nil {
			return err
		}
		if ok {
			if string(d.Body) != string(body) {
				return fmt.Errorf("got %q, want %q", d.Body, body)
			}
			return d.Ack(false)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errNoMessage
}
