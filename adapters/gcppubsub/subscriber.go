package gcppubsub

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// deletedTopic is what Pub/Sub reports as the topic of a subscription whose topic was deleted.
const deletedTopic = "_deleted-topic_"

// subInfo is what a receiver needs to know about its subscription.
type subInfo struct {
	// minBackoff is the retry policy's minimum backoff: Pub/Sub waits at least this long
	// after a nack before redelivering.
	minBackoff time.Duration
}

// Subscribe implements driver.Driver: it makes sure the subscription exists (creating
// the topic and the subscription when allowed: message ordering on when spec.RequireOrder
// (OrderPublish; OrderDelivery takes Pub/Sub's delivery order as it comes, so that the
// ordering middleware can receive a key's later message while it holds an earlier one), a
// dead-letter policy when spec.NativeDeadLetter is set) and returns a receiver. Streaming
// starts on the receiver's first Receive.
func (d *Driver) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("pubsub: subscribe: %w", driver.ErrClosed)
	}
	topicID, err := d.topicID(spec.Topic)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe: %w", err)
	}
	subID, err := subscriptionIDFor(d.cfg.Prefix, spec.Topic, spec.Subscription)
	if err != nil {
		return nil, fmt.Errorf("pubsub: subscribe: %w", err)
	}
	var dl *pubsubpb.DeadLetterPolicy
	if nd := spec.NativeDeadLetter; nd != nil {
		dlID, err := d.topicID(nd.Topic)
		if err != nil {
			return nil, fmt.Errorf("pubsub: subscribe: dead-letter topic: %w", err)
		}
		dl = &pubsubpb.DeadLetterPolicy{
			DeadLetterTopic:     d.topicPath(dlID),
			MaxDeliveryAttempts: int32(min(max(nd.MaxAttempts, minDeadLetterAttempts), maxDeadLetterAttempts)),
		}
		if int(dl.MaxDeliveryAttempts) != nd.MaxAttempts {
			d.log.Debug("courier: Pub/Sub dead-letter policies count 5 to 100 deliveries; using the nearest",
				"requested", nd.MaxAttempts, "max_delivery_attempts", dl.MaxDeliveryAttempts)
		}
	}
	if legacy, ok := d.legacySubscription(ctx, spec, topicID); ok {
		subID = legacy
	}
	info, err := d.ensureSubscription(ctx, spec, topicID, subID, dl)
	if err != nil {
		return nil, err
	}
	return d.newReceiver(spec, subID, info), nil
}

// legacySubscription reports the ID of a subscription named as Courier named them before
// subscription IDs included the topic ("<prefix><subscription>"), when one exists on this
// topic: an existing deployment keeps consuming it, with its backlog, instead of starting a new
// subscription. Any other answer (not found, another topic, an error) means no.
func (d *Driver) legacySubscription(ctx context.Context, spec driver.SubscriptionSpec, topicID string) (string, bool) {
	id := d.cfg.Prefix + spec.Subscription
	if checkID("subscription", id) != nil {
		return "", false
	}
	s, err := d.client.SubscriptionAdminClient.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: d.subscriptionPath(id)})
	if err != nil || s.Topic != d.topicPath(topicID) {
		return "", false
	}
	d.log.Debug("courier: consuming the Pub/Sub subscription named without its topic", "pubsub.subscription", id)
	return id, true
}

func (d *Driver) ensureSubscription(ctx context.Context, spec driver.SubscriptionSpec, topicID, subID string, dl *pubsubpb.DeadLetterPolicy) (subInfo, error) {
	what := fmt.Sprintf("subscription %q", spec.Subscription)
	admin := d.client.SubscriptionAdminClient
	for attempt := 0; ; attempt++ {
		s, err := admin.GetSubscription(ctx, &pubsubpb.GetSubscriptionRequest{Subscription: d.subscriptionPath(subID)})
		switch status.Code(err) {
		case codes.OK:
			return d.checkSubscription(ctx, spec, s, topicID, dl)
		case codes.NotFound:
			if d.cfg.DisableCreate {
				return subInfo{}, fmt.Errorf("pubsub: %s (Pub/Sub ID %q) does not exist and creation is off: %w",
					what, subID, driver.ErrSubscriptionNotFound)
			}
			s, err = d.createSubscription(ctx, spec, topicID, subID, dl)
			if status.Code(err) == codes.AlreadyExists && attempt == 0 {
				continue // another process created it meanwhile: check what it made
			}
			if err != nil {
				return subInfo{}, err
			}
			return infoOf(s), nil
		case codes.PermissionDenied:
			// roles/pubsub.subscriber may consume a subscription but not read it. Without
			// its settings, go on; StreamingPull reports what is really wrong.
			d.log.Debug("courier: not allowed to read the Pub/Sub subscription; assuming it is set up", "pubsub.subscription", subID)
			if !d.cfg.DisableCreate {
				s, err := d.createSubscription(ctx, spec, topicID, subID, dl)
				if err == nil {
					return infoOf(s), nil
				}
				if status.Code(err) != codes.AlreadyExists {
					return subInfo{}, err
				}
			}
			return subInfo{}, nil
		default:
			return subInfo{}, wrap(ctx, "get "+what, err, driver.ErrSubscriptionNotFound, driver.ErrInvalidConfig)
		}
	}
}

func infoOf(s *pubsubpb.Subscription) subInfo {
	var info subInfo
	if rp := s.GetRetryPolicy(); rp != nil {
		info.minBackoff = rp.GetMinimumBackoff().AsDuration()
	}
	return info
}

// checkSubscription validates an existing subscription against what the subscriber asks for.
func (d *Driver) checkSubscription(ctx context.Context, spec driver.SubscriptionSpec, s *pubsubpb.Subscription, topicID string, dl *pubsubpb.DeadLetterPolicy) (subInfo, error) {
	what := fmt.Sprintf("subscription %q", spec.Subscription)
	switch s.Topic {
	case d.topicPath(topicID):
	case deletedTopic:
		return subInfo{}, fmt.Errorf("pubsub: %s belongs to a deleted topic; delete the subscription to reuse its name: %w", what, driver.ErrTopicNotFound)
	default:
		return subInfo{}, fmt.Errorf("pubsub: %s (Pub/Sub ID %q) already exists on topic %q, not %q: %w",
			what, s.Name, s.Topic, d.topicPath(topicID), driver.ErrInvalidTopic)
	}
	if spec.RequireOrder && !s.EnableMessageOrdering {
		d.log.Debug("courier: Pub/Sub subscription was created without message ordering, which cannot be changed; per-key order holds within one subscriber only, and redeliveries may come out of order",
			"pubsub.subscription", s.Name)
	}
	if dl != nil {
		cur := s.GetDeadLetterPolicy()
		if cur.GetDeadLetterTopic() != dl.DeadLetterTopic || cur.GetMaxDeliveryAttempts() != dl.MaxDeliveryAttempts {
			if d.cfg.DisableCreate {
				if cur == nil {
					return subInfo{}, fmt.Errorf("pubsub: %s has no dead-letter policy, and creation (and update) is off: %w", what, driver.ErrInvalidConfig)
				}
				d.log.Warn("courier: Pub/Sub subscription's dead-letter policy differs from the one asked for; creation is off, so it stays",
					"pubsub.subscription", s.Name, "dead_letter_topic", cur.GetDeadLetterTopic(), "max_delivery_attempts", cur.GetMaxDeliveryAttempts())
			} else {
				if err := d.ensureDeadLetterTopic(ctx, spec, dl); err != nil {
					return subInfo{}, err
				}
				s.DeadLetterPolicy = dl
				us, err := d.client.SubscriptionAdminClient.UpdateSubscription(ctx, &pubsubpb.UpdateSubscriptionRequest{
					Subscription: s,
					UpdateMask:   &fieldmaskpb.FieldMask{Paths: []string{"dead_letter_policy"}},
				})
				if err != nil {
					return subInfo{}, wrap(ctx, "set the dead-letter policy of "+what, err, driver.ErrSubscriptionNotFound, driver.ErrInvalidConfig)
				}
				d.log.Info("courier: set the Pub/Sub subscription's dead-letter policy", "pubsub.subscription", s.Name,
					"dead_letter_topic", dl.DeadLetterTopic, "max_delivery_attempts", dl.MaxDeliveryAttempts)
				s = us
			}
		}
	}
	return infoOf(s), nil
}

func (d *Driver) createSubscription(ctx context.Context, spec driver.SubscriptionSpec, topicID, subID string, dl *pubsubpb.DeadLetterPolicy) (*pubsubpb.Subscription, error) {
	what := fmt.Sprintf("subscription %q", spec.Subscription)
	if err := d.ensureTopic(ctx, spec.Topic, topicID); err != nil {
		return nil, err
	}
	if dl != nil {
		if err := d.ensureDeadLetterTopic(ctx, spec, dl); err != nil {
			return nil, err
		}
	}
	req := &pubsubpb.Subscription{
		Name:                  d.subscriptionPath(subID),
		Topic:                 d.topicPath(topicID),
		AckDeadlineSeconds:    int32(d.cfg.AckDeadline / time.Second),
		EnableMessageOrdering: spec.RequireOrder,
		DeadLetterPolicy:      dl,
	}
	if d.cfg.RetryMinBackoff > 0 {
		req.RetryPolicy = &pubsubpb.RetryPolicy{
			MinimumBackoff: durationpb.New(d.cfg.RetryMinBackoff),
			MaximumBackoff: durationpb.New(d.cfg.RetryMaxBackoff),
		}
	}
	s, err := d.client.SubscriptionAdminClient.CreateSubscription(ctx, req)
	switch status.Code(err) {
	case codes.OK:
		d.log.Debug("courier: created Pub/Sub subscription", "pubsub.subscription", subID, "pubsub.topic", topicID,
			"ordering", spec.RequireOrder, "dead_letter", dl != nil)
		return s, nil
	case codes.AlreadyExists:
		return nil, err
	case codes.NotFound:
		return nil, fmt.Errorf("pubsub: create %s: topic %q (or the dead-letter topic) does not exist: %w: %w", what, spec.Topic, driver.ErrTopicNotFound, err)
	}
	return nil, wrap(ctx, "create "+what, err, driver.ErrTopicNotFound, driver.ErrInvalidConfig)
}

// ensureDeadLetterTopic creates the dead-letter topic and, on it, the subscription
// "<subscription>.dlq" that retains what Pub/Sub moves there (Pub/Sub drops messages sent to
// a topic without subscriptions) — the same subscription the engine keeps for its own
// dead-lettering.
func (d *Driver) ensureDeadLetterTopic(ctx context.Context, spec driver.SubscriptionSpec, dl *pubsubpb.DeadLetterPolicy) error {
	dlName := spec.NativeDeadLetter.Topic
	dlID, _ := d.topicID(dlName) // checked by Subscribe
	if err := d.ensureTopic(ctx, dlName, dlID); err != nil {
		return err
	}
	keepID, err := subscriptionIDFor(d.cfg.Prefix, dlName, spec.Subscription+transport.DeadLetterSuffix)
	if err != nil {
		return fmt.Errorf("pubsub: dead-letter subscription: %w", err)
	}
	_, err = d.client.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name:               d.subscriptionPath(keepID),
		Topic:              dl.DeadLetterTopic,
		AckDeadlineSeconds: int32(d.cfg.AckDeadline / time.Second),
	})
	switch status.Code(err) {
	case codes.OK:
		d.log.Debug("courier: created the Pub/Sub subscription that keeps dead-lettered messages", "pubsub.subscription", keepID)
		return nil
	case codes.AlreadyExists:
		return nil
	}
	return wrap(ctx, fmt.Sprintf("create dead-letter subscription %q", spec.Subscription+transport.DeadLetterSuffix), err, driver.ErrTopicNotFound, driver.ErrInvalidConfig)
}

// receiver bridges the client's callback-driven streaming pull to driver.Receiver.
//
// Each message the client delivers runs the callback, which hands a delivery to Receive over
// an unbuffered channel and then stays until the engine settles the message (ack, nack) —
// so the client's flow control (MaxOutstandingMessages = the engine's Prefetch) counts the
// messages the engine holds, the client keeps their leases alive, and its per-key scheduler
// hands one key's messages over one at a time, in order. When the receiver closes (or the
// stream fails), every callback still waiting nacks its message, so nothing stays leased.
type receiver struct {
	d       *Driver
	spec    driver.SubscriptionSpec
	sub     *pubsub.Subscriber
	subID   string
	info    subInfo
	handoff chan *delivery

	startOnce sync.Once
	closed    atomic.Bool
	cancel    context.CancelFunc
	done      chan struct{} // closed when the client's Receive returned
	err       error         // its error, read after done
}

func (d *Driver) newReceiver(spec driver.SubscriptionSpec, subID string, info subInfo) *receiver {
	s := d.client.Subscriber(d.subscriptionPath(subID))
	prefetch := spec.Prefetch
	if prefetch <= 0 {
		prefetch = pubsub.DefaultReceiveSettings.MaxOutstandingMessages
	}
	s.ReceiveSettings.MaxOutstandingMessages = prefetch
	s.ReceiveSettings.NumGoroutines = d.cfg.ReceiveStreams
	// The stream's ack deadline: the client extends held messages' leases by this much at a
	// time, and a message lost with its stream (a crashed consumer, a stream cut while the
	// server was pushing) comes back after it. The client's default is 60s.
	s.ReceiveSettings.MaxDurationPerAckExtension = d.cfg.AckDeadline
	return &receiver{
		d: d, spec: spec, sub: s, subID: subID, info: info,
		handoff: make(chan *delivery),
		done:    make(chan struct{}),
	}
}

func (r *receiver) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.err = r.sub.Receive(ctx, r.callback)
	}()
}

// callback runs in the client's goroutine for one message; see receiver.
func (r *receiver) callback(ctx context.Context, pm *pubsub.Message) {
	dv := r.newDelivery(pm)
	select {
	case r.handoff <- dv:
	case <-ctx.Done():
		pm.Nack() // never handed over: no attempt counted
		return
	}
	select {
	case <-dv.settled:
	case <-ctx.Done():
		if dv.state.CompareAndSwap(held, released) {
			pm.Nack()
			return
		}
		<-dv.settled // settled meanwhile
	}
	if dv.state.Load() == delayed {
		t := time.NewTimer(dv.delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop() // closing: give it back now rather than keep it leased
		}
		pm.Nack()
	}
}

// Receive implements driver.Receiver.
func (r *receiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	if r.closed.Load() {
		return 0, driver.ErrClosed
	}
	if len(buf) == 0 {
		return 0, nil
	}
	r.startOnce.Do(r.start)
	var dv *delivery
	select {
	case dv = <-r.handoff:
	case <-r.done:
		return 0, r.failure()
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	buf[0] = &dv.msg
	n := 1
	for n < len(buf) {
		select {
		case dv = <-r.handoff:
			buf[n] = &dv.msg
			n++
		default:
			return n, nil
		}
	}
	return n, nil
}

// failure says why the client's Receive ended.
func (r *receiver) failure() error {
	if r.closed.Load() {
		return driver.ErrClosed
	}
	if r.err == nil {
		return fmt.Errorf("pubsub: streaming pull of subscription %q ended: %w", r.spec.Subscription, driver.ErrUnavailable)
	}
	return wrap(context.Background(), fmt.Sprintf("streaming pull of subscription %q", r.spec.Subscription), r.err, driver.ErrSubscriptionNotFound, driver.ErrInvalidConfig)
}

func deliveryOf(m *message.Message) (*delivery, error) {
	dv, ok := message.ReceiptOf(m).(*delivery)
	if !ok {
		return nil, fmt.Errorf("%w: message %s was not received from Pub/Sub", driver.ErrInvalidMessage, m.ID)
	}
	return dv, nil
}

// Ack implements driver.Receiver. The client sends acks in batches every 100ms, and
// before its Receive returns.
func (r *receiver) Ack(_ context.Context, msgs []*message.Message) error {
	var errs []error
	for _, m := range msgs {
		dv, err := deliveryOf(m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dv.ack()
	}
	return errors.Join(errs...)
}

// Nack implements driver.Receiver: the message is redelivered no sooner than delay from
// now. Pub/Sub has no per-message delay, so the adapter keeps the message leased (the client
// extends its ack deadline) for the part of delay the subscription's retry policy does not
// already cover, then nacks it. See "Retries" in the package documentation.
func (r *receiver) Nack(_ context.Context, m *message.Message, delay time.Duration) error {
	dv, err := deliveryOf(m)
	if err != nil {
		return err
	}
	dv.nack(holdFor(delay, dv.r.info.minBackoff))
	return nil
}

// holdFor returns how long to keep a nacked message before handing it back, so that it comes
// back no sooner than delay: Pub/Sub adds at least minBackoff itself.
func holdFor(delay, minBackoff time.Duration) time.Duration {
	return max(delay-minBackoff, 0)
}

// Close implements driver.Receiver: the streaming pull stops, every message still held is
// nacked (redelivered at once; messages waiting out a retry delay too), pending acks are
// sent, and Close returns once the client has finished.
func (r *receiver) Close(ctx context.Context) error {
	if !r.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	neverStarted := false
	r.startOnce.Do(func() { neverStarted = true; close(r.done) })
	if neverStarted {
		return nil
	}
	r.cancel()
	select {
	case <-r.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("pubsub: close subscription %q: the client is still stopping: %w", r.spec.Subscription, ctx.Err())
	}
}

// delivery states.
const (
	held     int32 = iota // with the engine
	acked                 // acked
	nacked                // nacked at once
	delayed               // to be nacked after delay
	released              // nacked because the receiver closed
	settling              // being settled: a final state follows
)

// delivery is one received message and its receipt.
type delivery struct {
	msg     message.Message
	pm      *pubsub.Message
	r       *receiver
	state   atomic.Int32
	delay   time.Duration // set before state becomes delayed
	settled chan struct{} // closed when the engine acked or nacked
}

func (r *receiver) newDelivery(pm *pubsub.Message) *delivery {
	dv := &delivery{pm: pm, r: r, settled: make(chan struct{})}
	unmarshal(&dv.msg, pm)
	dv.msg.Topic = r.spec.Topic
	dv.msg.Subscription = r.spec.Subscription
	if pm.DeliveryAttempt != nil {
		dv.msg.Attempt = *pm.DeliveryAttempt
	} else {
		dv.msg.Attempt = r.d.attempts.next(r.subID, pm.ID)
	}
	message.SetReceipt(&dv.msg, dv)
	return dv
}

// As implements message.Receipt: target *(*pubsub.Message) receives the native message.
func (dv *delivery) As(target any) bool {
	if p, ok := target.(**pubsub.Message); ok {
		*p = dv.pm
		return true
	}
	return false
}

func (dv *delivery) ack() {
	dv.settle(acked, 0)
}

func (dv *delivery) nack(hold time.Duration) {
	if hold <= 0 {
		dv.settle(nacked, 0)
	} else {
		dv.settle(delayed, hold) // the callback nacks after the delay
	}
}

// settle moves a held delivery to state to, once: the first of ack, nack and release wins.
func (dv *delivery) settle(to int32, hold time.Duration) {
	if !dv.state.CompareAndSwap(held, settling) {
		return
	}
	counted := dv.pm.DeliveryAttempt == nil
	switch to {
	case acked:
		if counted {
			dv.r.d.attempts.forget(dv.r.subID, dv.pm.ID)
		}
		dv.pm.Ack()
	case nacked:
		if counted {
			dv.r.d.attempts.record(dv.r.subID, dv.pm.ID, dv.msg.Attempt)
		}
		dv.pm.Nack()
	case delayed:
		if counted {
			dv.r.d.attempts.record(dv.r.subID, dv.pm.ID, dv.msg.Attempt)
		}
		dv.delay = hold
	}
	dv.state.Store(to)
	close(dv.settled)
}

// attemptTable counts deliveries where Pub/Sub does not (subscriptions without a dead-letter
// policy): a nack records the attempt of the message by its Pub/Sub message ID, the next
// delivery to this connection continues from it, an ack forgets it. It is per connection
// and bounded: a message redelivered to another process, or after a restart, or after
// maxTracked other messages were nacked since, starts again at 1.
type attemptTable struct {
	mu sync.Mutex
	m  map[attemptKey]int
}

type attemptKey struct{ sub, id string }

// maxTracked bounds the table; when full, an arbitrary quarter of it is dropped.
const maxTracked = 1 << 16

func (t *attemptTable) next(sub, id string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[attemptKey{sub, id}] + 1
}

func (t *attemptTable) record(sub, id string, attempt int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[attemptKey]int{}
	}
	if len(t.m) >= maxTracked {
		drop := len(t.m) / 4
		for k := range t.m {
			if drop == 0 {
				break
			}
			delete(t.m, k)
			drop--
		}
	}
	t.m[attemptKey{sub, id}] = attempt
}

func (t *attemptTable) forget(sub, id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, attemptKey{sub, id})
}
