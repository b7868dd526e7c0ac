package kafka

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/transport/driver"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
)

// Publish implements driver.Driver. It makes sure the topic exists (see the package
// documentation), then writes the batch through one shared kafka-go Writer and waits: it
// returns nil only once every partition leader acknowledged its records with the configured
// Acks (all in-sync replicas by default). Concurrent publishes to one partition share
// produce requests; a lone publish waits Config.BatchTimeout (50µs) for company.
//
// kafka-go reports errors per partition batch; every message of a failed batch is listed
// in the *driver.PublishError, the others were stored. When ctx ends first, the whole
// call fails although some records may still be stored (a retry can duplicate them).
func (d *Driver) Publish(ctx context.Context, topic string, msgs []*message.Message) error {
	if d.closed.Load() {
		return fmt.Errorf("kafka: publish to %q: %w", topic, driver.ErrClosed)
	}
	if err := checkTopicName(topic); err != nil {
		return err
	}
	if err := d.ensureTopic(ctx, topic); err != nil {
		return err
	}
	send, pos, failed := d.records(topic, msgs)
	var err error
	if len(send) > 0 {
		err = d.writer.WriteMessages(ctx, send...)
	}
	if err == nil && failed == nil {
		return nil
	}
	return d.publishError(topic, msgs, send, pos, failed, err)
}

// records turns msgs into the records to write. A record larger than the writer's limit is
// held back and reported in failed; then pos[i] is the msgs index of send[i] (pos is nil when
// nothing was held back, and send[i] is msgs[i]).
func (d *Driver) records(topic string, msgs []*message.Message) (send []kafka.Message, pos []int, failed []driver.FailedMessage) {
	records := make([]kafka.Message, len(msgs))
	limit := d.cfg.batchBytes()
	for i, m := range msgs {
		records[i] = toRecord(topic, m)
		if size := recordSize(&records[i]); size > limit {
			if pos == nil {
				pos = make([]int, i, len(msgs))
				for j := range pos {
					pos[j] = j
				}
			}
			failed = append(failed, driver.FailedMessage{Index: i, ID: m.ID,
				Err: fmt.Errorf("%w: record of %d bytes (with headers and record overhead) exceeds the writer's limit of %d bytes; raise MaxMessageBytes with the broker's message.max.bytes",
					driver.ErrMessageTooLarge, size, limit)})
			continue
		}
		if pos != nil {
			records[len(pos)] = records[i]
			pos = append(pos, i)
		}
	}
	send = records
	if pos != nil {
		send = records[:len(pos)]
	}
	return send, pos, failed
}

// publishError reports a Publish that did not store every message: failed holds the records
// held back, err is what the writer returned for send (pos as records returns it).
func (d *Driver) publishError(topic string, msgs []*message.Message, send []kafka.Message, pos []int, failed []driver.FailedMessage, err error) error {
	index := func(i int) int {
		if pos != nil {
			return pos[i]
		}
		return i
	}
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
	case errors.As(err, &werrs) && len(werrs) == len(send):
		for i, e := range werrs {
			if e != nil {
				j := index(i)
				failed = append(failed, driver.FailedMessage{Index: j, ID: msgs[j].ID, Err: wrap("write", e)})
				if errors.Is(e, kafka.UnknownTopicOrPartition) {
					d.forgetTopic(topic)
				}
			}
		}
	default:
		// The whole call failed (ctx ended, metadata unavailable, writer closed): every
		// record handed to the writer is unconfirmed.
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			d.forgetTopic(topic)
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("%w (records may still be stored)", err)
		}
		werr := wrap("write", err)
		if failed == nil {
			return fmt.Errorf("kafka: publish %d messages to %q: %w", len(send), topic, werr)
		}
		for i := range send {
			j := index(i)
			failed = append(failed, driver.FailedMessage{Index: j, ID: msgs[j].ID, Err: werr})
		}
	}
	sortFailed(failed)
	return &driver.PublishError{Topic: topic, Total: len(msgs), Failed: failed}
}

func sortFailed(f []driver.FailedMessage) {
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && f[j].Index < f[j-1].Index; j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}
