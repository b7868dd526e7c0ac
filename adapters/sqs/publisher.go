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
	r := d.newPublishRun(q, msgs)
	r.run(ctx)
	return r.result(topic)
}

// publishRun is one Publish to one queue: the encoded entries, the requests to send, and what
// failed.
type publishRun struct {
	d       *Driver
	q       *queue
	msgs    []*message.Message
	entries []types.SendMessageBatchRequestEntry
	sizes   []int
	lanes   [][]int      // message indexes per lane, in batch order
	pool    [][]int      // requests of loose messages, taken by whichever lane is free first
	next    atomic.Int64 // the next request of pool to send
	nreq    int          // requests the batch was cut into

	mu     sync.Mutex
	failed []driver.FailedMessage
	whole  []error // errors that failed whole requests
}

// newPublishRun encodes msgs, holds back what is too large, and deals the rest to lanes.
func (d *Driver) newPublishRun(q *queue, msgs []*message.Message) *publishRun {
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
	r := &publishRun{d: d, q: q, msgs: msgs,
		entries: make([]types.SendMessageBatchRequestEntry, len(msgs)),
		sizes:   make([]int, len(msgs)),
		lanes:   make([][]int, nlanes),
	}
	var loose []int // unkeyed messages with no order to keep
	for i, m := range msgs {
		e := enc.encode(m)
		if e.size > q.maxBytes {
			r.failed = append(r.failed, driver.FailedMessage{Index: i, ID: m.ID, Err: tooLarge(q, m, e.size)})
			continue
		}
		r.entries[i], r.sizes[i] = e.entry, e.size
		switch {
		case m.Key != "" || unkeyedOrdered:
			l := int(keyhash.Sum32(m.Key) % uint32(keyLanes))
			r.lanes[l] = append(r.lanes[l], i)
		default:
			loose = append(loose, i)
		}
	}
	// Loose messages fill requests of their own, taken by whichever lane is free first.
	if len(loose) > 0 {
		r.pool = cut(loose, r.sizes)
	}
	return r
}

// tooLarge is the error of a message of size bytes (as SQS counts them) over q's limit.
func tooLarge(q *queue, m *message.Message, size int) error {
	how := ""
	if len(m.Payload) > 0 && !textSafeBytes(m.Payload) {
		how = ", binary payload in base64"
	}
	return fmt.Errorf("%w: %d bytes as SQS counts them (body and attributes%s) exceeds the limit of %d bytes of queue %q",
		driver.ErrMessageTooLarge, size, how, q.maxBytes, q.name)
}

// run sends every request, each lane on a goroutine of its own, and waits for them.
func (r *publishRun) run(ctx context.Context) {
	r.nreq = len(r.pool)
	var wg sync.WaitGroup
	for _, lane := range r.lanes {
		var reqs [][]int
		if len(lane) > 0 {
			reqs = cut(lane, r.sizes)
			r.nreq += len(reqs)
		} else if len(r.pool) == 0 {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runLane(ctx, reqs)
		}()
	}
	wg.Wait()
}

// runLane sends a lane's requests in order, stopping at one that fails as a whole, then takes
// requests from the pool until none is left.
func (r *publishRun) runLane(ctx context.Context, reqs [][]int) {
	for k, req := range reqs {
		if err := r.send(ctx, req); err != nil {
			// Stop the lane: its later messages may share keys with these.
			r.mu.Lock()
			for _, rest := range reqs[k+1:] {
				r.failed = append(r.failed, failAll(r.msgs, rest, fmt.Errorf(
					"sqs: not sent, to keep order, after an earlier request of the batch failed: %w", err))...)
			}
			r.mu.Unlock()
			break
		}
	}
	for {
		k := int(r.next.Add(1)) - 1
		if k >= len(r.pool) {
			return
		}
		_ = r.send(ctx, r.pool[k]) // unordered: a failed request stops nothing else
	}
}

// send sends one request, records the messages that failed, and returns the error that
// failed the whole request, if any.
func (r *publishRun) send(ctx context.Context, req []int) error {
	var f []driver.FailedMessage
	var err error
	if cerr := ctx.Err(); cerr != nil {
		err = fmt.Errorf("sqs: publish to %q: %w", r.q.name, cerr)
		f = failAll(r.msgs, req, err)
	} else {
		f, err = r.d.sendBatch(ctx, r.q, r.msgs, r.entries, req)
	}
	if f != nil || err != nil {
		r.mu.Lock()
		r.failed = append(r.failed, f...)
		if err != nil {
			r.whole = append(r.whole, err)
		}
		r.mu.Unlock()
	}
	return err
}

// result is Publish's answer once every lane is done.
func (r *publishRun) result(topic string) error {
	if len(r.failed) == 0 {
		return nil
	}
	// One request with every message, failed as a whole: its error says it all.
	if r.nreq == 1 && len(r.whole) == 1 && len(r.failed) == len(r.msgs) && r.failed[0].Err == r.whole[0] {
		return r.whole[0]
	}
	slices.SortFunc(r.failed, func(a, b driver.FailedMessage) int { return a.Index - b.Index })
	return &driver.PublishError{Topic: topic, Total: len(r.msgs), Failed: r.failed}
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
