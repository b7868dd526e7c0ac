package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
)

// kafkaClient returns a client with its own transport: kafka-go's default
// transport is shared and caches metadata, which could answer for a broker
// that is gone.
func kafkaClient(brokers string) (*kafka.Client, []string) {
	addrs := strings.Split(brokers, ",")
	return &kafka.Client{Addr: kafka.TCP(addrs...), Timeout: 10 * time.Second, Transport: &kafka.Transport{}}, addrs
}

func readyKafka(ctx context.Context, brokers string) error {
	c, _ := kafkaClient(brokers)
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{}})
	if err != nil {
		return err
	}
	if len(md.Brokers) == 0 || md.Controller.ID < 0 {
		return fmt.Errorf("metadata names no broker or no controller yet")
	}
	// A fresh broker creates its offsets topic on the first coordinator lookup; until that is
	// done, consumer groups fail with "coordinator not available". Ready means groups work.
	fc, err := c.FindCoordinator(ctx, &kafka.FindCoordinatorRequest{Key: "courier-brokercheck", KeyType: kafka.CoordinatorKeyTypeConsumer})
	if err != nil {
		return fmt.Errorf("find group coordinator: %w", err)
	}
	if fc.Error != nil {
		return fmt.Errorf("find group coordinator: %w", fc.Error)
	}
	return nil
}

func smokeKafka(ctx context.Context, brokers string) error {
	c, addrs := kafkaClient(brokers)
	topic := uniqueName("courier-brokercheck")
	res, err := c.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: topic, NumPartitions: 1, ReplicationFactor: 1,
	}}})
	if err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	if err := res.Errors[topic]; err != nil {
		return fmt.Errorf("create topic: %w", err)
	}
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = c.DeleteTopics(dctx, &kafka.DeleteTopicsRequest{Topics: []string{topic}})
	}()

	w := &kafka.Writer{
		Addr:                   kafka.TCP(addrs...),
		Topic:                  topic,
		RequiredAcks:           kafka.RequireAll,
		BatchTimeout:           5 * time.Millisecond,
		AllowAutoTopicCreation: false,
	}
	defer w.Close()
	value := []byte(uniqueName("hello"))
	// A new topic's leader may take a moment to be known.
	for {
		err = w.WriteMessages(ctx, kafka.Message{Key: []byte("k"), Value: value})
		if err == nil || ctx.Err() != nil || !isRetriable(err) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}

	// Reading through a consumer group also proves the group coordinator
	// (and so __consumer_offsets) works.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:     addrs,
		GroupID:     topic,
		Topic:       topic,
		StartOffset: kafka.FirstOffset,
		MinBytes:    1,
		MaxBytes:    10 << 20,
		MaxWait:     250 * time.Millisecond,
	})
	defer r.Close()
	m, err := r.FetchMessage(ctx)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	if string(m.Value) != string(value) {
		return fmt.Errorf("got %q, want %q", m.Value, value)
	}
	if err := r.CommitMessages(ctx, m); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func isRetriable(err error) bool {
	var ke kafka.Error
	if errors.As(err, &ke) {
		return ke.Temporary()
	}
	var we kafka.WriteErrors
	if errors.As(err, &we) {
		for _, e := range we {
			if e != nil && !isRetriable(e) {
				return false
			}
		}
		return true
	}
	return false
}
