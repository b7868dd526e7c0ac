package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/exactlyonce"
	"github.com/courierhq/courier/outbox"
	"github.com/courierhq/courier/transport"
)

// startBilling subscribes the billing consumer: behind the exactlyonce middleware, it writes
// a charge and a "payment" event in the middleware's transaction. Its first handling of the
// first order fails after writing: the transaction rolls back and the retry charges once.
func startBilling(ctx context.Context, conn *transport.Conn, pool *pgxpool.Pool, topic string, log *slog.Logger) error {
	eo, err := exactlyonce.New(exactlyonce.Config{DB: pool, Logger: log})
	if err != nil {
		return err
	}
	sub, err := conn.Subscribe(ctx, topic, "billing", transport.SubscriberConfig{
		Order:      transport.OrderDelivery,
		Retry:      transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 50 * time.Millisecond},
		Middleware: []message.Middleware{eo.Consume()},
	})
	if err != nil {
		return err
	}
	var failed atomic.Bool
	go func() {
		_ = sub.Run(ctx, func(ctx context.Context, m *message.Message) error {
			tx, _ := exactlyonce.TxFromContext(ctx)
			orderID := string(m.Payload)
			if _, err := tx.Exec(ctx, "INSERT INTO charges (order_id, amount) SELECT id, amount FROM orders WHERE id = $1", orderID); err != nil {
				return err
			}
			if err := (outbox.Writer{}).Write(ctx, tx, paymentsTopic(topic), &message.Message{Key: m.Key, Payload: m.Payload}); err != nil {
				return err
			}
			if orderID == "order-00" && failed.CompareAndSwap(false, true) {
				fmt.Println("billing order-00: fails after writing its charge — rolled back, retried")
				return errors.New("card service timed out")
			}
			return nil
		})
	}()
	return nil
}

func paymentsTopic(ordersTopic string) string {
	return "outbox-payments-" + ordersTopic[len("outbox-orders-"):]
}

// watchPayments counts the payment events that reach the broker.
func watchPayments(ctx context.Context, conn *transport.Conn, topic string) (*atomic.Int64, error) {
	var n atomic.Int64
	sub, err := conn.Subscribe(ctx, topic, "audit", transport.SubscriberConfig{Order: transport.OrderDelivery})
	if err != nil {
		return nil, err
	}
	go func() {
		_ = sub.Run(ctx, func(context.Context, *message.Message) error { n.Add(1); return nil })
	}()
	return &n, nil
}

// report waits until every order is charged and its payment event arrived, then checks that
// nothing happened twice.
func report(ctx context.Context, pool *pgxpool.Pool, payments *atomic.Int64) error {
	var charges, distinct int
	for {
		if err := pool.QueryRow(ctx, "SELECT count(*), count(DISTINCT order_id) FROM charges").Scan(&charges, &distinct); err != nil {
			return err
		}
		if distinct == orders && payments.Load() >= orders {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waited for %d charges and payment events: %d charges, %d events", orders, distinct, payments.Load())
		case <-time.After(50 * time.Millisecond):
		}
	}
	time.Sleep(500 * time.Millisecond) // a duplicate would show now
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM charges").Scan(&charges); err != nil {
		return err
	}
	fmt.Printf("charged %d orders with %d charge rows; %d payment events reached the broker\n", distinct, charges, payments.Load())
	if charges != orders || payments.Load() != orders {
		return fmt.Errorf("want exactly %d charges and %d payment events", orders, orders)
	}
	fmt.Println("ok      each order charged once, despite a failed first try and a duplicate delivery")
	return nil
}
