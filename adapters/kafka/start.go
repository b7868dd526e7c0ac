package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/transport/driver"
)

// startLatest makes a new subscription begin at the end of its topic as it is now, so that it
// receives exactly what is published after Subscribe returns (driver.StartLatest, the
// portable default): for every partition on which the group has no committed offset, it
// commits the partition's end offset. Partitions the group already has offsets on resume
// there. It reports false when the commit could not be made because the group is active
// (its members own the partitions and commit as they go); the receiver then joins at the
// latest offset for partitions still without a commit.
func (d *Driver) startLatest(ctx context.Context, topic, group string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		// A topic created a moment ago may have no partition leaders yet.
		ok, err := d.commitEnds(ctx, topic, group)
		if err == nil || !errors.Is(err, driver.ErrUnavailable) {
			return ok, err
		}
		select {
		case <-ctx.Done():
			return false, err
		case <-time.After(wait):
		}
	}
}

// commitEnds is one attempt of startLatest.
func (d *Driver) commitEnds(ctx context.Context, topic, group string) (bool, error) {
	parts, err := d.partitions(ctx, topic)
	if err != nil {
		return false, err
	}
	fetched, err := d.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: parts}})
	if err == nil {
		err = fetched.Error
	}
	var missing []kafka.OffsetRequest
	switch {
	case errors.Is(err, kafka.GroupIdNotFound):
		// Some brokers (and test fakes) answer so for a group that never committed.
		for _, p := range parts {
			missing = append(missing, kafka.LastOffsetOf(p))
		}
	case err != nil:
		return false, wrap(fmt.Sprintf("subscribe %q: read the group's offsets", group), err)
	default:
		for _, p := range fetched.Topics[topic] {
			if p.Error == nil && p.CommittedOffset < 0 {
				missing = append(missing, kafka.LastOffsetOf(p.Partition))
			}
		}
	}
	if len(missing) == 0 {
		return true, nil
	}
	ends, err := d.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: missing}})
	if err != nil {
		return false, wrap(fmt.Sprintf("subscribe %q: read the end of %q", group, topic), err)
	}
	commits := make([]kafka.OffsetCommit, 0, len(missing))
	for _, p := range ends.Topics[topic] {
		if p.Error != nil {
			return false, wrap(fmt.Sprintf("subscribe %q: end of %q partition %d", group, topic, p.Partition), p.Error)
		}
		commits = append(commits, kafka.OffsetCommit{Partition: p.Partition, Offset: p.LastOffset})
	}
	res, err := d.client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1, Topics: map[string][]kafka.OffsetCommit{topic: commits}})
	if err != nil {
		return false, wrap(fmt.Sprintf("subscribe %q: commit the start offsets", group), err)
	}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			// An active group refuses commits from outside a generation.
			d.log.Debug("courier: kafka: the group is active; a new member starts at the latest offset where nothing is committed",
				"topic", topic, "group", group, "partition", p.Partition, "error", p.Error)
			return false, nil
		}
	}
	d.log.Debug("courier: kafka: new subscription starts at the end of the topic", "topic", topic, "group", group, "partitions", len(commits))
	return true, nil
}

// partitions lists topic's partition IDs.
func (d *Driver) partitions(ctx context.Context, topic string) ([]int, error) {
	md, err := d.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, wrap(fmt.Sprintf("partitions of %q", topic), err)
	}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, wrap(fmt.Sprintf("partitions of %q", topic), t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, fmt.Errorf("kafka: partitions of %q: %w", topic, driver.ErrTopicNotFound)
}

// groupSep joins the topic and the subscription name in a consumer group ID.
const groupSep = "~"

// GroupID returns the consumer group ID of Courier subscription sub on topic:
// "<topic>~<sub>". Consumer groups are cluster-wide while Courier's subscription names are
// per topic, so the ID names both: one subscription name on two topics is two groups, which
// neither share offsets nor rebalance together.
func GroupID(topic, sub string) string { return topic + groupSep + sub }

// groupID returns the group to consume: GroupID(topic, sub), or sub itself when a group of
// that name already has offsets committed on topic (a subscription made before group IDs
// named the topic keeps its position). A failed look-up means no such group.
func (d *Driver) groupID(ctx context.Context, topic, sub string) string {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.RequestTimeout)
	defer cancel()
	parts, err := d.partitions(ctx, topic)
	if err != nil {
		return GroupID(topic, sub)
	}
	res, err := d.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: sub, Topics: map[string][]int{topic: parts}})
	if err != nil || res.Error != nil {
		return GroupID(topic, sub)
	}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.CommittedOffset >= 0 {
			d.log.Debug("courier: kafka: consuming the group named without its topic", "topic", topic, "group", sub)
			return sub
		}
	}
	return GroupID(topic, sub)
}
