package sqs

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/courierhq/courier/internal/keyhash"

	"github.com/courierhq/courier/transport/driver"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/message"
)

// entryIDs are the batch entry IDs: an entry's position in its request.
var entryIDs = func() [MaxBatch]string {
	var ids [MaxBatch]string
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	return ids
}()

// Publish implements driver.Driver. It sends msgs with SendMessageBatch, in requests of at
// most 10 entries and 1 MiB, and returns nil once SQS accepted every entry. A message larger
// than the queue's limit (as SQS counts it) fails alone; the others are sent.
//
// Order: requests are spread over up to Config.PublishConcurrency lanes that send at once. A
// lane sends its requests one after another, stopping at a request that fails as a whole (the
// later ones are reported as not sent). On a FIFO queue a keyed message goes to the lane its key
// hashes to, and unkeyed messages, which share a group (Config.FIFODefaultGroup), share a lane:
// a group's messages are stored in order and without gaps. On a standard queue all keyed
// messages go through one lane (the queue keeps no order of its own beyond arrival). Unkeyed
// messages of a standard queue, or with FIFOGroupPerMessage, have no order to keep: they fill
// requests of their own that any lane takes once its ordered requests are sent, so that a slow
// request delays no other.
func (d *Driver) Publish(ctx context.Context, topic string, msgs []*message.Message) error {
	if d.closed.Load() {
		return fmt.Errorf("sqs: publish to %q: %w", topic, driver.ErrClosed)
	}
	q, err := d.queue(ctx, topic, !d.cfg.DisableCreate)
	if err != nil {
		return err
	}
	enc := encoder{fifo: q.fifo, defaultGroup: d.cfg.FIFODefaultGroup, groupPerMessage: d.cfg.FIFOGroupPerMessage, dedupByID: d.cfg.FIFODeduplicateByID}
	unkeyedOrdered := q.fifo && !d.cfg.FIFOGroupPerMessage
	nlanes := max(1, d.cfg.PublishConcurrency)
	// A standard queue orders only by arrival (ElasticMQ: by millisecond, ties in any order):
	// keyed messages there go through one lane, so that a key's requests at least arrive one
	// after another. A FIFO queue orders each group itself, whatever else arrives meanwhile.
	keyLanes := nlanes
	if !q.fifo {
		keyLanes = 1
	}

	// Encode, hold back what is too large, and deal the rest to lanes.
	var failed []driver.FailedMessage
	entries := make([]types.SendMessageBatchRequestEntry, len(msgs))
	sizes := make([]int, len(msgs))
	lanes := make([][]int, nlanes) // message indexes per lane, in batch order
	var loose []int                // unkeyed messages with no order to keep
	for i, m := range msgs {
		e := enc.encode(m)
		if e.size > q.maxBytes {
			how := ""
			if len(m.Payload) > 0 && !textSafeBytes(m.Payload) {
				how = ", binary payload in base64"
			}
			failed = append(failed, driver.FailedMessage{Index: i, ID: m.ID, Err: fmt.Errorf(
				"%w: %d bytes as SQS counts them (body and attributes%s) exceeds the limit of %d bytes of queue %q",
				driver.ErrMessageTooLarge, e.size, how, q.maxBytes, q.name)})
			continue
		}
		entries[i], sizes[i] = e.entry, e.size
		switch {
		case m.Key != "" || unkeyedOrdered:
			l := int(keyhash.Sum32(m.Key) % uint32(keyLanes))
			lanes[l] = append(lanes[l], i)
		default:
			loose = append(loose, i)
		}
	}
	// Loose messages fill requests of their own, taken by whichever lane is free first.
	pool := cut(loose, sizes)
	if len(loose) == 0 {
		pool = nil
	}
	var next atomic.Int64 // the next request of pool to send

	var mu sync.Mutex
	var whole []error // errors that failed whole requests
	nreq := len(pool)
	send := func(req []int) error {
		var f []driver.FailedMessage
		var err error
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("sqs: publish to %q: %w", q.name, cerr)
			f = failAll(msgs, req, err)
		} else {
			f, err = d.sendBatch(ctx, q, msgs, entries, req)
		}
		if f != nil || err != nil {
			mu.Lock()
			failed = append(failed, f...)
			if err != nil {
				whole = append(whole, err)
			}
			mu.Unlock()
		}
		return err
	}
	var wg sync.WaitGroup
	for _, lane := range lanes {
		var reqs [][]int
		if len(lane) > 0 {
			reqs = cut(lane, sizes)
			nreq += len(reqs)
		} else if len(pool) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k, req := range reqs {
				if err := send(req); err != nil {
					// Stop the lane: its later messages may share keys with these.
					mu.Lock()
					for _, rest := range reqs[k+1:] {
						failed = append(failed, failAll(msgs, rest, fmt.Errorf(
							"sqs: not sent, to keep order, after an earlier request of the batch failed: %w", err))...)
					}
					mu.Unlock()
					break
				}
			}
			for {
				k := int(next.Add(1)) - 1
				if k >= len(pool) {
					return
				}
				_ = send(pool[k]) // unordered: a failed request stops nothing else
			}
		}()
	}
	wg.Wait()
	if len(failed) == 0 {
		return nil
	}
	// One request with every message, failed as a whole: its error says it all.
	if nreq == 1 && len(whole) == 1 && len(failed) == len(msgs) && failed[0].Err == whole[0] {
		return whole[0]
	}
	slices.SortFunc(failed, func(a, b driver.FailedMessage) int { return a.Index - b.Index })
	return &driver.PublishError{Topic: topic, Total: len(msgs), Failed: failed}
}

// cut splits a lane's messages, in order, into requests of at most 10 entries and 1 MiB.
func cut(lane []int, sizes []int) [][]int {
	var reqs [][]int
	start, bytes := 0, 0
	for j, i := range lane {
		if j-start == MaxBatch || bytes+sizes[i] > MaxMessageBytes {
			reqs = append(reqs, lane[start:j])
			start, bytes = j, 0
		}
		bytes += sizes[i]
	}
	return append(reqs, lane[start:])
}

// failAll reports every message of a request as failed with err.
func failAll(msgs []*message.Message, req []int, err error) []driver.FailedMessage {
	f := make([]driver.FailedMessage, len(req))
	for j, i := range req {
		f[j] = driver.FailedMessage{Index: i, ID: msgs[i].ID, Err: err}
	}
	return f
}

// sendBatch sends the messages at indexes req (at most 10) in one SendMessageBatch request. It
// returns the entries SQS refused, or an error when the whole request failed (then every entry
// failed).
func (d *Driver) sendBatch(ctx context.Context, q *queue, msgs []*message.Message, all []types.SendMessageBatchRequestEntry, req []int) ([]driver.FailedMessage, error) {
	entries := make([]types.SendMessageBatchRequestEntry, len(req))
	for j, i := range req {
		entries[j] = all[i]
		entries[j].Id = aws.String(entryIDs[j])
	}
	index := req
	octx, cancel := d.opContext(ctx, 0)
	defer cancel()
	out, err := d.client.SendMessageBatch(octx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(q.url), Entries: entries})
	if err != nil {
		if isNotFound(err) {
			d.forget(q)
		}
		err = d.opError(ctx, "send to queue "+strconv.Quote(q.name), err)
		return failAll(msgs, req, err), err
	}
	if len(out.Successful) == len(entries) && len(out.Failed) == 0 {
		return nil, nil
	}
	var seen [MaxBatch]bool
	for _, s := range out.Successful {
		if p, err := strconv.Atoi(aws.ToString(s.Id)); err == nil && p >= 0 && p < len(entries) {
			seen[p] = true
		}
	}
	var failed []driver.FailedMessage
	for _, f := range out.Failed {
		p, err := strconv.Atoi(aws.ToString(f.Id))
		if err != nil || p < 0 || p >= len(entries) || seen[p] {
			continue
		}
		seen[p] = true
		i := index[p]
		failed = append(failed, driver.FailedMessage{Index: i, ID: msgs[i].ID, Err: entryError(q, f)})
	}
	for p := range entries {
		if !seen[p] {
			i := index[p]
			failed = append(failed, driver.FailedMessage{Index: i, ID: msgs[i].ID,
				Err: fmt.Errorf("sqs: queue %q: %w: SQS returned no result for the entry", q.name, driver.ErrNacked)})
		}
	}
	return failed, nil
}

// entryError describes a batch entry SQS refused.
func entryError(q *queue, f types.BatchResultErrorEntry) error {
	code := sanitizeCode(aws.ToString(f.Code))
	kind := codeKinds[code]
	switch {
	case code == "InvalidAttributeValue" && aws.ToString(f.Message) == "MessageTooLong":
		kind = driver.ErrMessageTooLarge
	case kind == nil && f.SenderFault:
		kind = driver.ErrInvalidMessage
	case kind == nil:
		kind = driver.ErrNacked
	}
	return fmt.Errorf("sqs: queue %q refused the message: %w: %s: %s", q.name, kind, code, aws.ToString(f.Message))
}
