package ordering

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/courierhq/courier/internal/lease"
	"github.com/courierhq/courier/message"
)

// Errors the consume half returns. ErrGap and ErrBusy are wrapped in message.Defer (the
// message comes back later; not a failure); ErrGapTimeout, ErrLate and ErrStale are
// permanent (dead-letter), as are ErrBadStamp and ErrImplausibleStamp (see stamp.go).
var (
	// ErrGap: an earlier message of the key has not been handled yet.
	ErrGap = errors.New("ordering: an earlier message of the key is not handled yet")
	// ErrBusy: another consumer is handling the key's next message (this one's duplicate).
	ErrBusy = errors.New("ordering: another consumer holds the key")
	// ErrGapTimeout: with OnGapTimeout DeadLetter, the gap before the message was not filled
	// within GapTimeout.
	ErrGapTimeout = errors.New("ordering: gap before the message not filled in time")
	// ErrLate: with OnGapTimeout DeadLetter, the message arrived after its key had given up
	// waiting for it and moved on.
	ErrLate = errors.New("ordering: message arrived after its key moved on")
	// ErrStale: the message belongs to an earlier epoch of its key's counter than the one
	// the key has moved to. It is dead-lettered, not acknowledged: nothing leaves unhandled.
	ErrStale = errors.New("ordering: message from an earlier sequence epoch")
)

// Ordering stamps per-key sequence numbers on publish and enforces them on consume. Its
// Publish and Consume halves share one configuration and store, so they cannot drift apart.
// It is safe for concurrent use; create one per application and share it between publishers
// and subscribers of the same keys.
type Ordering struct {
	cfg    Config
	store  Store
	owners *lease.Owners
	waits  waitlist
}

// New returns an Ordering for cfg.
func New(cfg Config) (*Ordering, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	o := &Ordering{cfg: cfg, store: cfg.Store, owners: lease.NewOwners()}
	o.waits.init(2 * cfg.MaxWaitDelay)
	return o, nil
}

// Publish returns the publish half. For each message with a key (Config.KeyFunc, else its
// Key, else Config.KeyHeader), it reserves the key's next sequence number from the store —
// one reservation per distinct key per batch, so a batch's messages of one key get
// consecutive numbers in batch order — and passes on a copy of the message with its Key set
// and message.HeaderSequence stamped. The caller's messages are not modified. Messages without
// a key pass unchanged.
//
// Numbers are reserved before the batch is sent: if the publish fails, the numbers it held are
// never delivered, and consumers wait GapTimeout for them before skipping ahead. A message
// published again after a failure gets new numbers.
func (o *Ordering) Publish() message.PublishMiddleware {
	return func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			return o.publish(ctx, next, topic, msgs)
		}
	}
}

// logger returns Config.Logger, else the logger of the handler's context.
func (o *Ordering) logger(ctx context.Context) *slog.Logger {
	if o.cfg.Logger != nil {
		return o.cfg.Logger
	}
	return message.LoggerFrom(ctx)
}

func (o *Ordering) key(m *message.Message) string {
	if o.cfg.KeyFunc != nil {
		return o.cfg.KeyFunc(m)
	}
	if m.Key != "" || o.cfg.KeyHeader == "" {
		return m.Key
	}
	return m.Headers[o.cfg.KeyHeader]
}

// publish reserves sequence numbers for the keyed messages of msgs in one call to the store,
// then passes them on stamped; a batch without keys passes through untouched.
func (o *Ordering) publish(ctx context.Context, next message.PublishFunc, topic string, msgs []*message.Message) error {
	slots, rs := o.plan(topic, msgs)
	if rs == nil {
		return next(ctx, topic, msgs)
	}
	if err := o.store.Reserve(ctx, rs, o.cfg.Retention); err != nil {
		return fmt.Errorf("ordering: reserve sequence numbers on %q: %w", topic, err)
	}
	return next(ctx, topic, stamp(msgs, slots, rs))
}

// slot is a message's key and the index of its reservation (-1: unordered).
type slot struct {
	key string
	j   int
}

// plan groups msgs by ordering key: slots[i] is message i's slot, and rs holds one
// reservation per key, counting its messages. Both are nil when no message has a key.
func (o *Ordering) plan(topic string, msgs []*message.Message) ([]slot, []Reservation) {
	// firsts[j] is the first message of reservation j, whose key the others are compared with.
	var (
		slots    []slot
		rs       []Reservation
		firstBuf [8]int
		firsts   = firstBuf[:0]
		index    map[string]int // once there are many keys
	)
	for i, m := range msgs {
		k := ""
		if m != nil {
			k = o.key(m)
		}
		if k == "" {
			if slots != nil {
				slots[i].j = -1
			}
			continue
		}
		if slots == nil {
			slots = make([]slot, len(msgs))
			for x := 0; x < i; x++ {
				slots[x].j = -1
			}
		}
		j := -1
		if index != nil {
			if x, ok := index[k]; ok {
				j = x
			}
		} else {
			for x, f := range firsts {
				if slots[f].key == k {
					j = x
					break
				}
			}
		}
		if j < 0 {
			j = len(rs)
			rs = append(rs, Reservation{Key: counterKey(topic, k)})
			firsts = append(firsts, i)
			if index != nil {
				index[k] = j
			} else if len(firsts) > 8 {
				index = make(map[string]int, len(msgs))
				for x, f := range firsts {
					index[slots[f].key] = x
				}
				index[k] = j
			}
		}
		rs[j].Count++
		slots[i] = slot{key: k, j: j}
	}
	return slots, rs
}

// stamp returns msgs with each keyed message replaced by a copy carrying its key and the
// sequence stamp its reservation (filled in by the store) gives it, in order within a key.
// It consumes the reservations' counts.
func stamp(msgs []*message.Message, slots []slot, rs []Reservation) []*message.Message {
	out := make([]*message.Message, len(msgs))
	for i, m := range msgs {
		sl := slots[i]
		if sl.j < 0 {
			out[i] = m
			continue
		}
		r := &rs[sl.j]
		seq := r.Last - r.Count + 1
		r.Count-- // the next message of this key takes the following number
		c := *m
		c.Key = sl.key
		c.Headers = make(message.Headers, len(m.Headers)+1)
		for k, v := range m.Headers {
			c.Headers[k] = v
		}
		c.Headers[message.HeaderSequence] = FormatStamp(r.Epoch, seq)
		message.SetReceipt(&c, nil)
		out[i] = &c
	}
	return out
}

func counterKey(topic, key string) string { return topic + "/" + key }

// Consume returns the consume half. For a message with a sequence stamp it asks the store
// where the message's key stands for this subscription (the state is per topic,
// subscription and key):
//
//   - already at or past the message's number: a duplicate — acknowledged, not handled;
//   - the message is the key's next: it is claimed (with Lease), handled, and on success the
//     key advances to it; on failure the claim is released and the error returned, so the
//     engine retries it while later messages wait;
//   - an earlier message is missing: OnGap decides (Redeliver or Hold), and after GapTimeout
//     with nobody handling the missing message, OnGapTimeout (SkipAhead or DeadLetter);
//   - another consumer holds the key's next message: like a gap.
//
// Messages without a stamp, or carrying the dead-letter or redrive headers (a dead-lettered
// or redriven copy: out of its key's order by nature), pass through unchecked. A malformed stamp is a permanent error. A
// store that fails makes the message fail with a retryable error: it is never handled out of
// order because the store was unreachable.
//
// It runs on top of the consumer engine's per-key handling; put it outside idempotency,
// decryption and validation (see the package documentation).
func (o *Ordering) Consume() message.Middleware {
	return func(next message.Handler) message.Handler {
		return func(ctx context.Context, m *message.Message) error {
			return o.consume(ctx, next, m)
		}
	}
}

func (o *Ordering) consume(ctx context.Context, next message.Handler, m *message.Message) error {
	stamp := m.Headers[message.HeaderSequence]
	if stamp == "" || m.Headers[message.HeaderDeadLetterTopic] != "" || m.Headers[message.HeaderRedriven] != "" {
		return next(ctx, m)
	}
	if m.Key == "" {
		o.logger(ctx).Warn("ordering: sequenced message has no key; handling it unordered", "message_id", m.ID)
		return next(ctx, m)
	}
	epoch, seq, err := ParseStamp(stamp)
	if err != nil {
		return message.Permanent(fmt.Errorf("ordering: message %s: %w", m.ID, err))
	}
	skey := m.Topic + "/" + m.Subscription + "/" + m.Key
	req := BeginRequest{Epoch: epoch, Seq: seq, Owner: o.owners.Next(), Lease: o.cfg.Lease,
		GapTimeout: o.cfg.GapTimeout, Retention: o.cfg.Retention}
	res, err := o.store.Begin(ctx, skey, req)
	if err == nil && res.Outcome == NewEpoch {
		// A stamp alone never resets a key: the counter must vouch for the new epoch.
		if err = o.verify(ctx, m, req); err != nil {
			return err
		}
		req.AcceptEpoch = true
		res, err = o.store.Begin(ctx, skey, req)
	}
	if err != nil {
		return fmt.Errorf("ordering: message %s: %w", m.ID, err)
	}
	if res.Outcome != Gap && res.Outcome != Busy { // not waiting (any more)
		o.waits.remove(skey, seq)
	}
	return o.decide(ctx, next, m, skey, req, res)
}

// decide acts on the store's answer to Begin.
func (o *Ordering) decide(ctx context.Context, next message.Handler, m *message.Message, skey string, req BeginRequest, res BeginResult) error {
	switch res.Outcome {
	case Proceed, Late:
		return o.run(ctx, next, m, skey, req, res)
	case Duplicate:
		if log := o.logger(ctx); log.Enabled(ctx, slog.LevelDebug) {
			log.Debug("ordering: duplicate acknowledged", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "last", res.Last)
		}
		return nil
	case Stale:
		o.logger(ctx).Warn("ordering: message from an earlier sequence epoch; dead-lettering it", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "epoch", req.Epoch)
		return message.Permanent(fmt.Errorf("%w: message %s (key %q, seq %d, epoch %d): the key has moved to a later epoch",
			ErrStale, m.ID, m.Key, req.Seq, req.Epoch))
	case Busy:
		wake, _ := o.waits.add(skey, req.Epoch, req.Seq, req.Seq)
		return o.wait(fmt.Errorf("%w: message %s (key %q, seq %d)", ErrBusy, m.ID, m.Key, req.Seq), o.delay(1, res.Wait, false), wake)
	case Gap:
		gerr := fmt.Errorf("%w: message %s (key %q) has seq %d, key is at %d", ErrGap, m.ID, m.Key, req.Seq, res.Last)
		wake, chained := o.waits.add(skey, req.Epoch, req.Seq, req.Seq-1)
		return o.wait(gerr, o.delay(req.Seq-res.Last-1, 0, chained), wake)
	default:
		return fmt.Errorf("ordering: message %s: store answered unknown outcome %d", m.ID, res.Outcome)
	}
}

// verify checks m's stamp against what its key's publisher counter has handed out
// (CheckIssued): a permanent error for a stamp the counter cannot have issued, a retryable
// one when the store cannot be asked.
func (o *Ordering) verify(ctx context.Context, m *message.Message, req BeginRequest) error {
	ce, cl, err := o.store.Issued(ctx, counterKey(m.Topic, m.Key))
	if err != nil {
		return fmt.Errorf("ordering: message %s: check the stamp against the counter: %w", m.ID, err)
	}
	if err := CheckIssued(req.Epoch, req.Seq, ce, cl, time.Now()); err != nil {
		o.logger(ctx).Warn("ordering: sequence stamp not issued by the key's counter; dead-lettering the message", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "epoch", req.Epoch, "error", err)
		return message.Permanent(fmt.Errorf("ordering: message %s (key %q): %w", m.ID, m.Key, err))
	}
	return nil
}

// wait returns the deferral OnGap asks for: with Hold, one that ends early when wake closes.
func (o *Ordering) wait(err error, d time.Duration, wake <-chan struct{}) error {
	if o.cfg.OnGap == Redeliver {
		return message.Requeue(err, d)
	}
	return message.DeferUntil(err, d, wake)
}

// run handles a message the store let through.
func (o *Ordering) run(ctx context.Context, next message.Handler, m *message.Message, skey string, req BeginRequest, res BeginResult) error {
	if err := o.atEdge(ctx, m, skey, req, res); err != nil {
		return err
	}
	return lease.Run(func() error { return next(ctx, m) },
		func() { o.release(ctx, m, skey, req) },
		func() { o.commit(ctx, m, skey, req) })
}

// atEdge deals with a claim that is not simply the key's next message: a late message, or
// one the key skips ahead to. A skip is checked against the counter first, so that a forged
// far-ahead stamp cannot move the key past numbers never issued (the claim is given up, the
// key unchanged). A non-nil error ends the attempt with the claim settled.
func (o *Ordering) atEdge(ctx context.Context, m *message.Message, skey string, req BeginRequest, res BeginResult) error {
	log := o.logger(ctx)
	if res.Outcome == Late {
		if o.cfg.OnGapTimeout == DeadLetter {
			log.Warn("ordering: message arrived after its key gave up on it; dead-lettering it", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "last", res.Last)
			o.commit(ctx, m, skey, req)
			return message.Permanent(fmt.Errorf("%w: message %s (key %q, seq %d) arrived after the key moved on to %d",
				ErrLate, m.ID, m.Key, req.Seq, res.Last))
		}
		log.Warn("ordering: message arrived after its key gave up on it; handling it late", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "last", res.Last)
	}
	if res.Skipped == 0 {
		return nil
	}
	if err := o.verify(ctx, m, req); err != nil {
		o.release(ctx, m, skey, req)
		return err
	}
	if o.cfg.OnGapTimeout == DeadLetter {
		log.Warn("ordering: gap not filled in time; dead-lettering the message that waited", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "missing", res.Skipped)
		o.commit(ctx, m, skey, req)
		return message.Permanent(fmt.Errorf("%w: message %s (key %q, seq %d): %d earlier message(s) missing after %v",
			ErrGapTimeout, m.ID, m.Key, req.Seq, res.Skipped, o.cfg.GapTimeout))
	}
	log.Warn("ordering: gap not filled in time; skipping ahead", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "missing", res.Skipped)
	return nil
}

// commit advances the key after the handler succeeded. The message is acknowledged whatever
// happens: it was handled; a failed commit costs the key's later messages a wait of up to
// GapTimeout, which is better than handling this one twice.
func (o *Ordering) commit(ctx context.Context, m *message.Message, skey string, req BeginRequest) {
	defer o.waits.advanced(skey, req.Epoch, req.Seq)
	err := lease.Settle(ctx, o.cfg.StoreTimeout, func(err error) bool { return !errors.Is(err, ErrLeaseLost) },
		func(ctx context.Context) error { return o.store.Commit(ctx, skey, req.Seq, req.Owner, o.cfg.Retention) })
	switch {
	case err == nil:
	case errors.Is(err, ErrLeaseLost):
		o.logger(ctx).Warn("ordering: claim expired before the handler finished; raise Lease", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "lease", o.cfg.Lease)
	default:
		o.logger(ctx).Error("ordering: could not record the handled message; the key's next messages wait for GapTimeout", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "error", err)
	}
}

// release gives up the claim after a failed attempt (or one that must not go on).
func (o *Ordering) release(ctx context.Context, m *message.Message, skey string, req BeginRequest) {
	defer o.waits.released(skey, req.Seq)
	err := lease.Settle(ctx, o.cfg.StoreTimeout, nil,
		func(ctx context.Context) error { return o.store.Abort(ctx, skey, req.Seq, req.Owner) })
	if err != nil {
		o.logger(ctx).Warn("ordering: could not release the claim; it expires after Lease", "message_id", m.ID, "key", m.Key, "seq", req.Seq, "error", err)
	}
}

// delay is how long a message missing n predecessors (or whose key is busy for at least
// wait) is set aside: WaitDelay per missing message, at most MaxWaitDelay, ±20% jitter. A
// message whose predecessor waits in this process too (chained) is woken when that one is
// handled, so it only checks back after MaxWaitDelay, in case that never happens here.
func (o *Ordering) delay(n int64, wait time.Duration, chained bool) time.Duration {
	d := o.cfg.WaitDelay * time.Duration(max(n, 1))
	if chained || n > int64(o.cfg.MaxWaitDelay/max(o.cfg.WaitDelay, 1)) {
		d = o.cfg.MaxWaitDelay // also guards the multiplication above from overflow
	}
	d = min(max(d, wait), o.cfg.MaxWaitDelay)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}
