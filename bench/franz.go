package main

import (
	"context"
	"errors"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

// franzContender is franz-go, the Kafka ceiling: acks=all (its default, set explicitly),
// idempotent producer, one client shared by all publishing goroutines.
type franzContender struct {
	seeds []string
}

func (f *franzContender) Name() string { return "franz-go" }

func (f *franzContender) Close() error { return nil }

func (f *franzContender) Sender(_ context.Context, topic string) (sender, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.seeds...), kgo.DefaultProduceTopic(topic),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return nil, err
	}
	return &franzSender{cl: cl}, nil
}

type franzSender struct{ cl *kgo.Client }

func (s *franzSender) Send(ctx context.Context, p []byte) error {
	return s.cl.ProduceSync(ctx, &kgo.Record{Value: p}).FirstErr()
}

func (s *franzSender) Close() error { s.cl.Close(); return nil }

// Subscribe joins a new consumer group that starts at the earliest offset; Run commits what
// it handled after every poll (auto-commit off), as Courier commits what its handlers finished.
func (f *franzContender) Subscribe(_ context.Context, topic, sub string) (consumer, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.seeds...), kgo.ConsumerGroup(sub), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		return nil, err
	}
	return &franzConsumer{cl: cl}, nil
}

type franzConsumer struct{ cl *kgo.Client }

func (c *franzConsumer) Run(ctx context.Context, h func([]byte)) error {
	for {
		fs := c.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fetchErr(fs); err != nil {
			return err
		}
		fs.EachRecord(func(r *kgo.Record) { h(r.Value) })
		if err := c.cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			return err
		}
	}
}

// fetchErr joins the fetch errors of fs, if any.
func fetchErr(fs kgo.Fetches) error {
	var errs []error
	fs.EachError(func(t string, p int32, err error) { errs = append(errs, err) })
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

func (c *franzConsumer) Close() error { c.cl.Close(); return nil }

func splitSeeds(s string) []string { return strings.Split(s, ",") }
