package sqs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/internal/closing"
	"github.com/courierhq/courier/message"
)

// Subscribe implements driver.Driver. The subscription is the queue itself: SQS has no
// fan-out, so spec.Subscription only labels the messages (Message.Subscription), and several
// subscribers of one queue, whatever their subscription names, compete for its messages.
// Subscribe makes sure the queue exists (creating it when allowed) and, when
// spec.NativeDeadLetter asks, that its RedrivePolicy sends messages received more than
// MaxAttempts times to the dead-letter queue (created when allowed; FIFO for a FIFO queue).
func (d *Driver) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("sqs: subscribe to %q: %w", spec.Topic, driver.ErrClosed)
	}
	create := !d.cfg.DisableCreate
	q, err := d.queue(ctx, spec.Topic, create)
	if err != nil {
		return nil, err
	}
	if spec.RequireOrder && !q.fifo {
		return nil, fmt.Errorf("sqs: subscribe to %q: a standard queue delivers one key's messages out of publish order "+
			"(best-effort ordering); use a FIFO queue (a name ending in \".fifo\"), the ordering middleware with "+
			"transport.OrderDelivery, or accept delivery order with transport.OrderDelivery: %w", spec.Topic, driver.ErrUnsupported)
	}
	if nd := spec.NativeDeadLetter; nd != nil {
		if err := d.setRedrive(ctx, q, nd, create); err != nil {
			return nil, err
		}
	}
	lease := d.cfg.VisibilityTimeout
	if lease <= 0 {
		lease = q.visibility
	}
	if lease < time.Second {
		// A queue with no visibility timeout would hand every message out again at once:
		// ask for SQS's default on each receive instead.
		lease = 30 * time.Second
	}
	lease = time.Duration(seconds(lease)) * time.Second
	pollers := d.cfg.Pollers
	if pollers <= 0 {
		if !q.fifo && spec.Ordered {
			pollers = 1
		} else {
			pollers = max(1, min(d.cfg.MaxPollers, (spec.Prefetch+MaxBatch-1)/MaxBatch))
		}
	}
	r := &receiver{
		d: d, q: q, spec: spec, lease: lease, maxPollers: pollers,
		log:    d.log.With("courier.topic", spec.Topic, "courier.subscription", spec.Subscription),
		wake:   make(chan struct{}, 1),
		life:   closing.New(),
		held:   map[*delivery]struct{}{},
		hbStop: make(chan struct{}),
		hbDone: make(chan struct{}),
	}
	r.relIdle = sync.NewCond(&r.relMu)
	r.ackIdle = sync.NewCond(&r.ackMu)
	r.sysAttrs = []types.MessageSystemAttributeName{
		types.MessageSystemAttributeNameApproximateReceiveCount,
		types.MessageSystemAttributeNameSentTimestamp,
	}
	if q.fifo {
		r.sysAttrs = append(r.sysAttrs, types.MessageSystemAttributeNameMessageGroupId)
	}
	return r, nil
}

// setRedrive points q's RedrivePolicy at the dead-letter queue nd names.
func (d *Driver) setRedrive(ctx context.Context, q *queue, nd *driver.NativeDeadLetterSpec, create bool) error {
	if nd.MaxAttempts < 1 || nd.MaxAttempts > 1000 {
		return fmt.Errorf("%w: sqs: native dead-lettering needs MaxAttempts from 1 to 1000 (SQS maxReceiveCount); got %d", driver.ErrInvalidConfig, nd.MaxAttempts)
	}
	dq, err := d.queue(ctx, nd.Topic, create)
	if err != nil {
		return fmt.Errorf("sqs: dead-letter queue: %w", err)
	}
	if dq.fifo != q.fifo {
		return fmt.Errorf("%w: sqs: queue %q and its dead-letter queue %q must both be FIFO or both standard", driver.ErrInvalidConfig, q.name, dq.name)
	}
	if dq.arn == "" {
		return fmt.Errorf("sqs: dead-letter queue %q: SQS reported no QueueArn", dq.name)
	}
	policy := fmt.Sprintf(`{"deadLetterTargetArn":%q,"maxReceiveCount":"%d"}`, dq.arn, nd.MaxAttempts)
	octx, cancel := d.opContext(ctx, 0)
	defer cancel()
	_, err = d.client.SetQueueAttributes(octx, &sqs.SetQueueAttributesInput{
		QueueUrl:   aws.String(q.url),
		Attributes: map[string]string{string(types.QueueAttributeNameRedrivePolicy): policy},
	})
	if err != nil {
		return d.opError(ctx, "set RedrivePolicy of queue "+strconv.Quote(q.name), err)
	}
	return nil
}

// receiver consumes one queue for the engine.
//
// Pollers: Receive keeps up to maxPollers ReceiveMessage long polls in flight, asking in all for
// no more messages than the engine has room for; what they bring is queued in pending and
// handed out by the next Receive calls. The polls run on the Driver's context: Close does not
// cancel them but lets them end on their own and release what they bring (see Close).
//
// Leases: every message the receiver received and that is not yet acked, nacked or released —
// queued in pending or held by the engine — is in held. The heartbeat renews the visibility
// timeout of those whose lease is half gone, so that a handler may run for longer than the
// visibility timeout without SQS delivering its message to someone else meanwhile.
type receiver struct {
	d          *Driver
	q          *queue
	spec       driver.SubscriptionSpec
	lease      time.Duration
	maxPollers int
	sysAttrs   []types.MessageSystemAttributeName
	log        *slog.Logger

	mu        sync.Mutex
	pending   []*message.Message
	polling   int // polls in flight
	asked     int // messages they asked for
	failures  int // consecutive failed polls
	fatal     error
	life      closing.Latch
	hbStarted bool
	wake      chan struct{}

	heldMu sync.Mutex
	held   map[*delivery]struct{}
	hbStop chan struct{}
	hbDone chan struct{}

	relMu   sync.Mutex
	relIdle *sync.Cond
	relq    []*delivery
	relBusy bool

	ackMu     sync.Mutex
	ackIdle   *sync.Cond // broadcast when no deletion is queued or in flight
	ackq      []*delivery
	ackFlying int
}

// delivery is one received message and its receipt.
type delivery struct {
	msg      message.Message
	r        *receiver
	native   *types.Message
	mu       sync.Mutex   // held while a visibility change of this message is in flight
	done     atomic.Bool  // acked, nacked or released: no more heartbeats
	deadline atomic.Int64 // when the lease runs out (UnixNano), conservatively early
}

// As implements message.Receipt: a *types.Message target receives a copy of the SQS record
// (receipt handle, system and message attributes as received).
func (dl *delivery) As(target any) bool {
	if t, ok := target.(*types.Message); ok {
		*t = *dl.native
		return true
	}
	return false
}

// Receive implements driver.Receiver.
func (r *receiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	for {
		r.mu.Lock()
		if r.life.Closed() {
			r.mu.Unlock()
			return 0, fmt.Errorf("sqs: receive from %q: %w", r.q.name, driver.ErrClosed)
		}
		if len(r.pending) > 0 {
			n := copy(buf, r.pending)
			rest := copy(r.pending, r.pending[n:])
			clear(r.pending[rest:])
			r.pending = r.pending[:rest]
			r.mu.Unlock()
			return n, nil
		}
		if r.fatal != nil {
			err := r.fatal
			r.mu.Unlock()
			return 0, err
		}
		if !r.hbStarted {
			r.hbStarted = true
			go r.heartbeat()
		}
		for want := len(buf) - r.asked; want > 0 && r.polling < r.maxPollers; {
			k := min(MaxBatch, want)
			want -= k
			if !r.d.startPoll(func() { r.poll(k) }) {
				r.mu.Unlock()
				return 0, fmt.Errorf("sqs: receive from %q: %w", r.q.name, driver.ErrClosed)
			}
			r.polling++
			r.asked += k
		}
		r.mu.Unlock()
		select {
		case <-r.wake:
		case <-r.life.Done():
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

func (r *receiver) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// poll makes one ReceiveMessage call for up to k messages.
func (r *receiver) poll(k int) {
	defer r.signal()
	msgs, err := r.receive(k)
	r.mu.Lock()
	closed := r.life.Closed()
	r.mu.Unlock()
	if err != nil && r.d.pollCtx.Err() == nil && !closed {
		if errors.Is(err, driver.ErrTopicNotFound) || errors.Is(err, driver.ErrAccessDenied) {
			r.log.Error("courier: SQS receive failed; the subscription cannot continue", "error", err)
			if errors.Is(err, driver.ErrTopicNotFound) {
				r.d.forget(r.q)
			}
			r.mu.Lock()
			r.fatal = err
			r.mu.Unlock()
		} else {
			// The SDK retried already: back off before this poller's slot is used again.
			r.mu.Lock()
			r.failures++
			n := r.failures
			r.mu.Unlock()
			delay := min(100*time.Millisecond<<min(n-1, 10), 5*time.Second)
			delay = delay/2 + rand.N(delay/2+1)
			r.log.Warn("courier: SQS receive failed; retrying", "error", err, "failures", n, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-r.life.Done():
				t.Stop()
			case <-r.d.pollCtx.Done():
				t.Stop()
			}
		}
	}
	r.mu.Lock()
	r.polling--
	r.asked -= k
	closed = r.life.Closed()
	if err == nil {
		if r.failures > 0 {
			r.log.Info("courier: SQS receive works again", "after_failures", r.failures)
		}
		r.failures = 0
		if !closed {
			r.pending = append(r.pending, msgs...)
		}
	}
	r.mu.Unlock()
	if closed && len(msgs) > 0 {
		// The receiver was closed while this poll was in flight: give the messages back.
		dls := make([]*delivery, len(msgs))
		for i, m := range msgs {
			dls[i] = message.ReceiptOf(m).(*delivery)
		}
		if err := r.release(context.WithoutCancel(r.d.pollCtx), dls...); err != nil {
			r.log.Warn("courier: could not release messages received after Close; they reappear when their lease ends", "count", len(dls), "error", err)
		}
	}
}

func (r *receiver) receive(k int) ([]*message.Message, error) {
	in := &sqs.ReceiveMessageInput{
		QueueUrl:                    aws.String(r.q.url),
		MaxNumberOfMessages:         int32(k),
		WaitTimeSeconds:             seconds(r.d.cfg.WaitTime),
		VisibilityTimeout:           seconds(r.lease),
		MessageAttributeNames:       []string{"All"},
		MessageSystemAttributeNames: r.sysAttrs,
	}
	// No ReceiveRequestAttemptId on FIFO queues: it would let the SDK's retry of a receive
	// whose answer was lost get the same messages back (instead of their group waiting out a
	// lease), but ElasticMQ 1.7 crashes the queue's actor, losing its messages, when such a
	// retry comes after those messages changed (seen in TestNetworkOutages).
	ctx, cancel := r.d.opContext(r.d.pollCtx, r.d.cfg.WaitTime)
	defer cancel()
	start := time.Now()
	out, err := r.d.client.ReceiveMessage(ctx, in)
	if err != nil {
		return nil, r.d.opError(r.d.pollCtx, "receive from queue "+strconv.Quote(r.q.name), err)
	}
	if len(out.Messages) == 0 {
		return nil, nil
	}
	deadline := start.Add(r.lease).UnixNano()
	msgs := make([]*message.Message, len(out.Messages))
	dls := make([]delivery, len(out.Messages))
	for i := range out.Messages {
		dl := &dls[i]
		dl.r, dl.native = r, &out.Messages[i]
		dl.deadline.Store(deadline)
		m := &dl.msg
		m.Topic, m.Subscription = r.spec.Topic, r.spec.Subscription
		if err := decode(dl.native, m); err != nil {
			r.log.Warn("courier: SQS message with a malformed courier-meta attribute, delivered as a foreign message", "sqs_message_id", aws.ToString(dl.native.MessageId), "error", err)
		}
		message.SetReceipt(m, dl)
		msgs[i] = m
	}
	r.heldMu.Lock()
	for i := range dls {
		r.held[&dls[i]] = struct{}{}
	}
	r.heldMu.Unlock()
	r.log.Debug("courier: SQS received", "count", len(msgs), "asked", k, "took", time.Since(start))
	return msgs, nil
}

// heartbeat renews the leases of held messages until Close.
func (r *receiver) heartbeat() {
	defer close(r.hbDone)
	t := time.NewTicker(r.lease / 4)
	defer t.Stop()
	for {
		select {
		case <-r.hbStop:
			return
		case <-t.C:
			r.extend()
		}
	}
}

// extend renews the lease of every held message with less than half of it left.
func (r *receiver) extend() {
	due := time.Now().Add(r.lease / 2).UnixNano()
	var list []*delivery
	r.heldMu.Lock()
	for dl := range r.held {
		if dl.deadline.Load() < due {
			list = append(list, dl)
		}
	}
	r.heldMu.Unlock()
	if len(list) == 0 {
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for lo := 0; lo < len(list); lo += MaxBatch {
		chunk := list[lo:min(lo+MaxBatch, len(list))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r.extendBatch(chunk)
		}()
	}
	wg.Wait()
}

func (r *receiver) extendBatch(chunk []*delivery) {
	locked := chunk[:0:0]
	for _, dl := range chunk {
		dl.mu.Lock()
		if dl.done.Load() {
			dl.mu.Unlock()
			continue
		}
		locked = append(locked, dl)
	}
	if len(locked) == 0 {
		return
	}
	defer func() {
		for _, dl := range locked {
			dl.mu.Unlock()
		}
	}()
	start := time.Now()
	failed, err := r.changeVisibility(r.d.pollCtx, locked, seconds(r.lease))
	if err != nil && r.d.pollCtx.Err() == nil {
		r.log.Warn("courier: SQS visibility heartbeat failed; messages may be redelivered while their handlers run", "count", len(failed), "error", err)
	}
	deadline := start.Add(r.lease).UnixNano()
	for i, dl := range locked {
		if !failed[i] {
			dl.deadline.Store(deadline)
		}
	}
}

// changeVisibility sets the visibility timeout of dls (at most 10) to secs. It returns which
// entries failed and an error describing the failures.
func (r *receiver) changeVisibility(ctx context.Context, dls []*delivery, secs int32) ([]bool, error) {
	entries := make([]types.ChangeMessageVisibilityBatchRequestEntry, len(dls))
	for i, dl := range dls {
		entries[i] = types.ChangeMessageVisibilityBatchRequestEntry{
			Id: aws.String(entryIDs[i]), ReceiptHandle: dl.native.ReceiptHandle, VisibilityTimeout: secs,
		}
	}
	failed := make([]bool, len(dls))
	octx, cancel := r.d.opContext(ctx, 0)
	defer cancel()
	out, err := r.d.client.ChangeMessageVisibilityBatch(octx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(r.q.url), Entries: entries})
	if err != nil {
		for i := range failed {
			failed[i] = true
		}
		return failed, r.d.opError(ctx, "change visibility in queue "+strconv.Quote(r.q.name), err)
	}
	return failed, r.batchFailures(out.Failed, failed, "change visibility of")
}

// batchFailures marks the failed entries of a batch result and describes them.
func (r *receiver) batchFailures(fs []types.BatchResultErrorEntry, failed []bool, what string) error {
	if len(fs) == 0 {
		return nil
	}
	var first types.BatchResultErrorEntry
	n := 0
	for _, f := range fs {
		if p, err := strconv.Atoi(aws.ToString(f.Id)); err == nil && p >= 0 && p < len(failed) && !failed[p] {
			failed[p] = true
			if n == 0 {
				first = f
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	code := sanitizeCode(aws.ToString(first.Code))
	kind := codeKinds[code]
	if kind == nil {
		kind = driver.ErrNacked
	}
	return fmt.Errorf("sqs: %s %d of %d messages in queue %q failed: %w: %s: %s", what, n, len(failed), r.q.name, kind, code, aws.ToString(first.Message))
}

// deliveryOf returns the receiver's receipt of m.
func (r *receiver) deliveryOf(m *message.Message) (*delivery, error) {
	dl, ok := message.ReceiptOf(m).(*delivery)
	if !ok || dl.r != r {
		return nil, fmt.Errorf("%w: message %s was not received by this SQS subscription", driver.ErrInvalidMessage, m.ID)
	}
	return dl, nil
}

func (r *receiver) unhold(dls ...*delivery) {
	r.heldMu.Lock()
	for _, dl := range dls {
		delete(r.held, dl)
	}
	r.heldMu.Unlock()
}

// maxDeletesInFlight bounds a receiver's concurrent DeleteMessageBatch requests.
const maxDeletesInFlight = 4

// Ack implements driver.Receiver with DeleteMessageBatch. It queues the messages and
// returns: full batches of 10 go out at once, up to 4 requests in flight; a partial batch goes
// out when no request is in flight or when one completes, so that batches fill up under load
// and nothing waits when idle. A failed deletion is logged; SQS then redelivers the messages
// after their lease (at-least-once). Close waits for every queued deletion.
func (r *receiver) Ack(_ context.Context, msgs []*message.Message) error {
	dls := make([]*delivery, 0, len(msgs))
	var errs []error
	for _, m := range msgs {
		dl, err := r.deliveryOf(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if dl.done.Swap(true) {
			continue // already nacked or released
		}
		dls = append(dls, dl)
	}
	r.unhold(dls...)
	r.ackMu.Lock()
	r.ackq = append(r.ackq, dls...)
	r.pumpAcks(r.ackFlying == 0)
	r.ackMu.Unlock()
	return errors.Join(errs...)
}

// pumpAcks starts deletions of queued acks; r.ackMu is held.
func (r *receiver) pumpAcks(partial bool) {
	for r.ackFlying < maxDeletesInFlight && (len(r.ackq) >= MaxBatch || (partial && len(r.ackq) > 0)) {
		n := min(MaxBatch, len(r.ackq))
		chunk := make([]*delivery, n)
		copy(chunk, r.ackq)
		rest := copy(r.ackq, r.ackq[n:])
		clear(r.ackq[rest:])
		r.ackq = r.ackq[:rest]
		r.ackFlying++
		partial = false
		go r.delete(chunk)
	}
	if r.ackFlying == 0 && len(r.ackq) == 0 {
		r.ackIdle.Broadcast()
	}
}

// delete sends one DeleteMessageBatch request.
func (r *receiver) delete(chunk []*delivery) {
	entries := make([]types.DeleteMessageBatchRequestEntry, len(chunk))
	for i, dl := range chunk {
		entries[i] = types.DeleteMessageBatchRequestEntry{Id: aws.String(entryIDs[i]), ReceiptHandle: dl.native.ReceiptHandle}
	}
	ctx, cancel := r.d.opContext(context.Background(), 0)
	out, err := r.d.client.DeleteMessageBatch(ctx, &sqs.DeleteMessageBatchInput{QueueUrl: aws.String(r.q.url), Entries: entries})
	cancel()
	if err != nil {
		err = r.d.opError(context.Background(), fmt.Sprintf("delete %d messages from queue %q", len(chunk), r.q.name), err)
	} else {
		err = r.batchFailures(out.Failed, make([]bool, len(chunk)), "delete")
	}
	if err != nil {
		r.log.Warn("courier: SQS delete failed; the messages will be delivered again after their lease", "count", len(chunk), "error", err)
	}
	r.ackMu.Lock()
	r.ackFlying--
	r.pumpAcks(true)
	r.ackMu.Unlock()
}

// flushAcks sends every queued ack and waits for the deletions in flight.
func (r *receiver) flushAcks() {
	r.ackMu.Lock()
	for r.ackFlying > 0 || len(r.ackq) > 0 {
		r.pumpAcks(true)
		if r.ackFlying > 0 || len(r.ackq) > 0 {
			r.ackIdle.Wait()
		}
	}
	r.ackMu.Unlock()
}

// batches calls fn for each chunk of at most 10 of dls, up to 4 at once.
func (r *receiver) batches(dls []*delivery, fn func([]*delivery)) {
	if len(dls) <= MaxBatch {
		if len(dls) > 0 {
			fn(dls)
		}
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for lo := 0; lo < len(dls); lo += MaxBatch {
		chunk := dls[lo:min(lo+MaxBatch, len(dls))]
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fn(chunk)
		}()
	}
	wg.Wait()
}

// Nack implements driver.Receiver: the message's visibility timeout becomes delay (rounded
// up to whole seconds, at most 12 hours), after which SQS delivers it again with its
// ApproximateReceiveCount raised. Releases (delay 0) are coalesced into
// ChangeMessageVisibilityBatch requests.
func (r *receiver) Nack(ctx context.Context, m *message.Message, delay time.Duration) error {
	dl, err := r.deliveryOf(m)
	if err != nil {
		return err
	}
	if delay <= 0 {
		return r.release(ctx, dl)
	}
	dl.mu.Lock() // waits for an in-flight heartbeat of this message
	already := dl.done.Swap(true)
	dl.mu.Unlock()
	if already {
		return nil
	}
	r.unhold(dl)
	octx, cancel := r.d.opContext(ctx, 0)
	defer cancel()
	_, err = r.d.client.ChangeMessageVisibility(octx, &sqs.ChangeMessageVisibilityInput{
		QueueUrl: aws.String(r.q.url), ReceiptHandle: dl.native.ReceiptHandle,
		VisibilityTimeout: seconds(min(delay, MaxVisibilityTimeout)),
	})
	if err != nil {
		return r.d.opError(ctx, "nack message "+m.ID+" in queue "+strconv.Quote(r.q.name), err)
	}
	return nil
}

// release makes messages visible again at once. The first caller sends what accumulates
// meanwhile; concurrent callers return at once.
func (r *receiver) release(ctx context.Context, dls ...*delivery) error {
	fresh := dls[:0:0]
	for _, dl := range dls {
		dl.mu.Lock()
		already := dl.done.Swap(true)
		dl.mu.Unlock()
		if !already {
			fresh = append(fresh, dl)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	r.unhold(fresh...)
	r.relMu.Lock()
	r.relq = append(r.relq, fresh...)
	if r.relBusy {
		r.relMu.Unlock()
		return nil
	}
	r.relBusy = true
	var errs []error
	for len(r.relq) > 0 {
		batch := r.relq
		r.relq = nil
		r.relMu.Unlock()
		var mu sync.Mutex
		r.batches(batch, func(chunk []*delivery) {
			if _, err := r.changeVisibility(ctx, chunk, 0); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
		r.relMu.Lock()
	}
	r.relBusy = false
	r.relIdle.Broadcast()
	r.relMu.Unlock()
	if len(errs) > 0 {
		return fmt.Errorf("sqs: release messages (they reappear when their lease ends): %w", errors.Join(errs...))
	}
	return nil
}

// Close implements driver.Receiver: it stops the heartbeat, makes the messages received but
// never handed to the engine visible again at once, and waits for the queued acks' deletions. Messages the engine still holds become
// visible when their lease runs out.
//
// Long polls still in flight are not cancelled: SQS (ElasticMQ verified) keeps serving a long
// poll whose client went away, and the messages it hands to it stay invisible for a whole
// lease. Instead they run to their end in the background (at most WaitTime), and release at
// once whatever they bring. Driver.Close cancels those still running.
func (r *receiver) Close(ctx context.Context) error {
	var hb bool
	if !r.life.CloseUnder(&r.mu, func() { hb = r.hbStarted }) {
		return driver.ErrClosed
	}

	if hb {
		close(r.hbStop)
		<-r.hbDone
	}
	r.mu.Lock()
	pend := r.pending
	r.pending = nil
	r.mu.Unlock()
	var err error
	if len(pend) > 0 {
		dls := make([]*delivery, len(pend))
		for i, m := range pend {
			dls[i] = message.ReceiptOf(m).(*delivery)
		}
		err = r.release(ctx, dls...)
	}
	r.relMu.Lock()
	for r.relBusy {
		r.relIdle.Wait()
	}
	r.relMu.Unlock()
	r.flushAcks()
	return err
}
