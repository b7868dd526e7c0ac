package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
)

// Subscribe implements driver.Driver. It makes sure the topic exists (creating it when
// allowed) and returns a receiver for the subscription's consumer group (GroupID). The group
// is joined when the receiver is first asked for messages, so that Subscribe alone (the
// engine's dead-letter set-up) costs no rebalance. Where a new group (one without committed
// offsets) starts is spec.Start: with driver.StartLatest, the default, Subscribe commits the
// topic's end offsets for the group before it returns, so the subscription receives exactly
// what is published after Subscribe returned, however late its first member joins; with
// driver.StartEarliest it reads the topic's retained history from the oldest record.
func (d *Driver) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if d.closed.Load() {
		return nil, fmt.Errorf("kafka: subscribe: %w", driver.ErrClosed)
	}
	if spec.NativeDeadLetter != nil {
		return nil, fmt.Errorf("%w: kafka has no broker-side dead-lettering; Courier dead-letters to a topic", driver.ErrInvalidConfig)
	}
	if err := checkTopicName(spec.Topic); err != nil {
		return nil, err
	}
	if err := d.ensureTopic(ctx, spec.Topic); err != nil {
		return nil, err
	}
	// Where partitions without a committed offset begin: the oldest record for StartEarliest;
	// for StartLatest the end offsets are committed now, so partitions found later (added to
	// the topic after Subscribe) hold only newer records and start at their oldest too.
	group := d.groupID(ctx, spec.Topic, spec.Subscription)
	startOffset := kafka.FirstOffset
	if spec.Start != driver.StartEarliest {
		committed, err := d.startLatest(ctx, spec.Topic, group)
		if err != nil {
			return nil, err
		}
		if !committed {
			startOffset = kafka.LastOffset
		}
	}
	r := &receiver{
		d:           d,
		startOffset: startOffset,
		sub:         spec.Subscription,
		topic:       spec.Topic,
		group:       group,
		log:         d.log.With("courier.topic", spec.Topic, "courier.subscription", spec.Subscription),
		queue:       make(chan []delivery, max((d.cfg.QueueCapacity+chunkSize-1)/chunkSize, 1)),
		closing:     make(chan struct{}),
		failed:      make(chan struct{}),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// receiver consumes one consumer group for the engine.
//
// Its structure: a goroutine follows the group's generations (kafka-go's ConsumerGroup);
// for each generation, one goroutine per assigned partition fetches from the partition
// leader (a kafka-go Conn) from the committed offset and feeds a shared queue, in chunks,
// that Receive drains. Every fetched offset is recorded in its partition's offsetTracker
// before it can be handed out; Ack finishes offsets and commits each partition's contiguous
// finished prefix, synchronously, with the generation's ID (the broker refuses commits from
// a generation that has ended).
//
// A generation ends when the group rebalances (noticed by a heartbeat) or the receiver
// closes. Then the receiver stops fetching, drops its queued and not yet handed-out
// records, waits up to Config.RevokeTimeout for handed-out ones to be acked, commits what
// finished, and only then lets kafka-go rejoin. Acks that arrive after that are not
// committed: the partition may belong to another member now, which starts from the last
// commit and so delivers those records again (at-least-once; the duplicate window is the
// work in flight at the revocation that outlived RevokeTimeout).
type receiver struct {
	d            *Driver
	startOffset  int64  // for partitions without a committed offset: kafka.FirstOffset or LastOffset
	sub          string // the Courier subscription name (group is its consumer group ID)
	topic, group string
	log          *slog.Logger
	queue        chan []delivery // chunks of fetched records, in partition order
	pending      []delivery      // the rest of a chunk Receive took part of (Receive's alone)

	ctx    context.Context // ends when the receiver closes
	cancel context.CancelFunc

	startOnce sync.Once
	cg        *kafka.ConsumerGroup
	done      chan struct{} // closed when the group loop returned

	closed  atomic.Bool
	closing chan struct{}

	failOnce sync.Once
	failed   chan struct{}
	err      error // set before failed is closed
}

// delivery is one fetched record: the message handed to the engine and its receipt.
// Deliveries are allocated a chunk at a time (one allocation per chunkSize records): a
// message kept after its handler returned keeps its chunk's records in memory; clone what
// you keep (message.Clone, and copy the payload).
type delivery struct {
	msg message.Message
	// The record as fetched, for As (middleware may change msg): what msg does not hold.
	key, value []byte
	headers    []kafka.Header
	time       time.Time
	offset     int64
	hwm        int64
	p          *partition
}

// As implements message.Receipt: *kafka.Message receives the fetched record (its byte
// slices are shared with the message; do not modify them); *driver.LogPosition its
// partition and offset.
func (dl *delivery) As(target any) bool {
	if t, ok := target.(*driver.LogPosition); ok {
		*t = driver.LogPosition{Partition: dl.p.id, Offset: dl.offset}
		return true
	}
	if t, ok := target.(*kafka.Message); ok {
		*t = kafka.Message{
			Topic: dl.p.g.r.topic, Partition: dl.p.id, Offset: dl.offset, HighWaterMark: dl.hwm,
			Key: dl.key, Value: dl.value, Headers: dl.headers, Time: dl.time,
		}
		return true
	}
	return false
}

// generation is the receiver's state for one consumer-group generation.
type generation struct {
	r        *receiver
	gen      *kafka.Generation
	parts    []*partition
	revoking atomic.Bool  // its records are no longer handed out
	revoked  atomic.Bool  // its offsets are no longer committed
	inflight atomic.Int64 // handed out and not yet acked or released
	idle     chan struct{}
	commitMu sync.Mutex // one commit at a time, so committed offsets only grow
}

// partition is one assigned partition within a generation.
type partition struct {
	g         *generation
	id        int
	start     int64      // assigned offset (or kafka.FirstOffset / LastOffset)
	mu        sync.Mutex // guards t, committed and epoch
	t         offsetTracker
	committed int64 // last offset committed (or assigned)
	epoch     int   // counts tracker resets
}

func (r *receiver) start() {
	cfg := r.d.cfg
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    r.group,
		Brokers:               cfg.Brokers,
		Dialer:                r.d.dialer,
		Topics:                []string{r.topic},
		HeartbeatInterval:     cfg.HeartbeatInterval,
		SessionTimeout:        cfg.SessionTimeout,
		RebalanceTimeout:      cfg.RebalanceTimeout,
		JoinGroupBackoff:      cfg.JoinGroupBackoff,
		StartOffset:           r.startOffset,
		Timeout:               cfg.RequestTimeout,
		WatchPartitionChanges: true,
		ErrorLogger:           r.d.kafkaLog,
	})
	if err != nil {
		r.fail(fmt.Errorf("%w: kafka: consumer group %q: %w", driver.ErrInvalidConfig, r.group, err))
		return
	}
	r.cg = cg
	r.done = make(chan struct{})
	r.d.recvs.Add(1)
	go r.run()
}

// run follows the group's generations until the receiver closes.
func (r *receiver) run() {
	defer r.d.recvs.Done()
	defer close(r.done)
	failing := false
	for {
		gen, err := r.cg.Next(r.ctx)
		if err != nil {
			if r.ctx.Err() != nil || errors.Is(err, kafka.ErrGroupClosed) {
				return
			}
			if fatal(err) {
				r.fail(wrap(fmt.Sprintf("join consumer group %q", r.group), err))
				return
			}
			if !failing {
				r.log.Warn("courier: kafka: cannot join consumer group; retrying", "error", err, "backoff", r.d.cfg.JoinGroupBackoff)
				failing = true
			} else {
				r.log.Debug("courier: kafka: still cannot join consumer group", "error", err)
			}
			continue
		}
		if failing {
			r.log.Info("courier: kafka: joined consumer group again", "generation", gen.ID)
			failing = false
		}
		g := &generation{r: r, gen: gen, idle: make(chan struct{}, 1)}
		for _, a := range gen.Assignments[r.topic] {
			g.parts = append(g.parts, &partition{g: g, id: a.ID, start: a.Offset, t: newOffsetTracker(), committed: a.Offset})
		}
		r.log.Debug("courier: kafka: generation started", "generation", gen.ID, "partitions", len(g.parts))
		gen.Start(g.run)
	}
}

// run fetches the generation's partitions until it ends, then revokes them.
func (g *generation) run(gctx context.Context) {
	r := g.r
	fctx, stop := context.WithCancel(r.ctx)
	var wg sync.WaitGroup
	for _, p := range g.parts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.fetch(fctx)
		}()
	}
	<-gctx.Done()

	// Revoke: hand out nothing more, stop fetching, let handlers in flight finish (unless
	// the receiver is closing: the engine has stopped and released what it held), commit
	// what finished, and stop committing.
	g.revoking.Store(true)
	stop()
	wg.Wait()
	if g.inflight.Load() > 0 {
		select {
		case <-r.closing:
		default:
			g.drain(r.d.cfg.RevokeTimeout)
		}
	}
	g.commitMu.Lock()
	g.revoked.Store(true)
	err := g.commitLocked()
	g.commitMu.Unlock()
	if err != nil {
		r.log.Debug("courier: kafka: final commit of a generation failed; its finished records may be delivered again", "generation", g.gen.ID, "error", err)
	}
	r.log.Debug("courier: kafka: generation ended", "generation", g.gen.ID, "unfinished", g.inflight.Load())
}

// drain waits until every record handed out in the generation is acked, or timeout.
func (g *generation) drain(timeout time.Duration) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for g.inflight.Load() > 0 {
		select {
		case <-g.idle:
		case <-g.r.closing:
			return
		case <-t.C:
			g.r.log.Info("courier: kafka: partitions revoked with handlers still running; their records will be delivered again to the new owner",
				"in_flight", g.inflight.Load(), "revoke_timeout", timeout)
			return
		}
	}
}

// release accounts for a handed-out record that was acked or given back.
func (g *generation) release() { g.releaseN(1) }

// releaseN accounts for n handed-out records that were acked or given back.
func (g *generation) releaseN(n int64) {
	if g.inflight.Add(-n) <= 0 && g.revoking.Load() {
		select {
		case g.idle <- struct{}{}:
		default:
		}
	}
}

// chunkSize is how many records a partition fetcher hands over at once: fewer channel
// operations and wake-ups per record, and one lock of the partition's tracker per chunk.
const chunkSize = 64

// readBatchTimeout bounds reading the rest of a fetched batch from the connection.
const readBatchTimeout = 10 * time.Second

// fetch reads one partition from its assigned offset until ctx ends. It talks to the
// partition leader on a kafka-go Conn directly (as kafka-go's Reader does internally, minus
// the Reader's goroutine and per-record channel): it reconnects after errors with backoff,
// and closes the connection as soon as ctx ends, so stopping does not wait for a fetch.
func (p *partition) fetch(ctx context.Context) {
	r := p.g.r
	offset := p.start
	failures := 0
	var lastLog time.Time
	for ctx.Err() == nil {
		if failures > 0 {
			d := min(time.Duration(failures*failures)*100*time.Millisecond, 2*time.Second)
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		conn, err := p.dial(ctx)
		if err == nil {
			stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
			var progressed bool
			offset, progressed, err = p.consume(ctx, conn, offset)
			stop()
			_ = conn.Close()
			if progressed {
				failures = 0
			}
		}
		if ctx.Err() != nil {
			return
		}
		if fatal(err) {
			r.fail(wrap(fmt.Sprintf("fetch %s/%d", r.topic, p.id), err))
			return
		}
		failures++
		if time.Since(lastLog) > 10*time.Second {
			r.log.Warn("courier: kafka: fetch failing; reconnecting", "partition", p.id, "offset", offset, "error", err)
			lastLog = time.Now()
		} else {
			r.log.Debug("courier: kafka: fetch failing; reconnecting", "partition", p.id, "offset", offset, "error", err)
		}
	}
}

// dial connects to the partition's leader through the first bootstrap broker that answers.
func (p *partition) dial(ctx context.Context) (*kafka.Conn, error) {
	r := p.g.r
	var err error
	for _, b := range r.d.cfg.Brokers {
		var c *kafka.Conn
		if c, err = r.d.dialer.DialLeader(ctx, "tcp", b, r.topic, p.id); err == nil {
			return c, nil
		}
	}
	return nil, err
}

// consume fetches from offset on conn until an error, handing records out in chunks. It
// returns the next offset to fetch and whether any record was fetched.
func (p *partition) consume(ctx context.Context, conn *kafka.Conn, offset int64) (int64, bool, error) {
	r := p.g.r
	cfg := &r.d.cfg
	_ = conn.SetDeadline(time.Now().Add(cfg.RequestTimeout))
	first, last, err := conn.ReadOffsets()
	if err != nil {
		return offset, false, err
	}
	switch {
	case offset == kafka.FirstOffset:
		offset = first
	case offset == kafka.LastOffset:
		offset = last
	case offset < first:
		r.log.Warn("courier: kafka: records were deleted by retention before this subscription consumed them; continuing at the oldest one left",
			"partition", p.id, "from", offset, "to", first)
		offset = first
	case offset > last:
		// The committed offset is past the end: the topic was recreated or truncated.
		to := first
		if cfg.StartOffset == StartLatest {
			to = last
		}
		r.log.Warn("courier: kafka: committed offset is past the end of the partition; resetting", "partition", p.id, "from", offset, "to", to)
		offset = to
	}
	if _, err := conn.Seek(offset, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
		return offset, false, err
	}
	_ = conn.SetDeadline(time.Time{})
	isolation := kafka.ReadCommitted
	if cfg.ReadUncommitted {
		isolation = kafka.ReadUncommitted
	}
	progressed := false
	for ctx.Err() == nil {
		// The broker answers within MaxWait; the deadline leaves RequestTimeout on top for a
		// slow network or a busy broker before the connection counts as broken.
		_ = conn.SetReadDeadline(time.Now().Add(cfg.MaxWait + cfg.RequestTimeout))
		batch := conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: cfg.FetchMaxBytes, IsolationLevel: isolation, MaxWait: cfg.MaxWait})
		n, err := p.drain(ctx, conn, batch)
		if cerr := batch.Close(); err == nil || errors.Is(err, io.EOF) {
			err = cerr
		}
		offset = batch.Offset()
		progressed = progressed || n > 0
		switch {
		case err == nil, errors.Is(err, io.EOF), errors.Is(err, kafka.RequestTimedOut):
			continue // end of a batch, or nothing new within MaxWait
		default:
			return offset, progressed, err
		}
	}
	return offset, progressed, ctx.Err()
}

// drain reads a fetched batch and hands its records out in chunks; it returns how many.
func (p *partition) drain(ctx context.Context, conn *kafka.Conn, batch *kafka.Batch) (int, error) {
	total := 0
	for {
		_ = conn.SetReadDeadline(time.Now().Add(readBatchTimeout))
		chunk := make([]delivery, chunkSize)
		n := 0
		var err error
		for n < chunkSize {
			var rec kafka.Message
			if rec, err = batch.ReadMessage(); err != nil {
				break
			}
			// Only what the commit rule needs happens here, on the partition's goroutine;
			// Receive maps the record to a message (fromRecord) on the engine's.
			dl := &chunk[n]
			dl.key, dl.value, dl.headers, dl.time = rec.Key, rec.Value, rec.Headers, rec.Time
			dl.offset, dl.hwm, dl.p = rec.Offset, rec.HighWaterMark, p
			n++
		}
		if n > 0 {
			if !p.handOver(ctx, chunk[:n]) {
				return total, ctx.Err()
			}
			total += n
		}
		if err != nil {
			return total, err
		}
	}
}

// handOver records a chunk's offsets in the tracker, then queues it for Receive.
func (p *partition) handOver(ctx context.Context, chunk []delivery) bool {
	p.mu.Lock()
	for i := range chunk {
		if !p.t.add(chunk[i].offset) {
			// Offsets only go back when the partition was reset under us (the topic deleted
			// and created again): the old offsets mean nothing now. Track the new log from
			// scratch; acks of old records find nothing to finish.
			p.g.r.log.Warn("courier: kafka: partition offsets went backwards (topic recreated?); tracking commits afresh",
				"partition", p.id, "offset", chunk[i].offset)
			p.t = newOffsetTracker()
			p.committed = -1
			p.epoch++
			p.t.add(chunk[i].offset)
		}
	}
	p.mu.Unlock()
	select {
	case p.g.r.queue <- chunk:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail records an unrecoverable error for Receive to return.
func (r *receiver) fail(err error) {
	r.failOnce.Do(func() {
		r.log.Error("courier: kafka: subscription failed", "error", err)
		r.err = err
		close(r.failed)
	})
}

// Receive implements driver.Receiver.
func (r *receiver) Receive(ctx context.Context, buf []*message.Message) (int, error) {
	if r.closed.Load() {
		return 0, driver.ErrClosed
	}
	r.startOnce.Do(r.start)
	n := 0
	for n < len(buf) {
		if len(r.pending) == 0 {
			if n > 0 {
				select {
				case r.pending = <-r.queue:
				default:
					return n, nil
				}
			} else {
				select {
				case r.pending = <-r.queue:
				case <-r.failed:
					return 0, r.err
				case <-r.closing:
					return 0, driver.ErrClosed
				case <-ctx.Done():
					return 0, ctx.Err()
				}
			}
			// A chunk holds one partition's records of one generation.
			if g := r.pending[0].p.g; g.revoking.Load() {
				r.pending = nil // not started: the partition's next owner delivers them
				continue
			}
		}
		k := min(len(buf)-n, len(r.pending))
		g := r.pending[0].p.g
		g.inflight.Add(int64(k))
		if g.revoking.Load() {
			g.releaseN(int64(k))
			r.pending = nil
			continue
		}
		for i := range k {
			dl := &r.pending[i]
			rec := kafka.Message{Topic: r.topic, Partition: dl.p.id, Offset: dl.offset,
				Key: dl.key, Value: dl.value, Headers: dl.headers, Time: dl.time}
			fromRecord(&dl.msg, &rec, r.sub)
			message.SetReceipt(&dl.msg, dl)
			buf[n] = &dl.msg
			n++
		}
		r.pending = r.pending[k:]
	}
	return n, nil
}

func deliveryOf(m *message.Message) (*delivery, error) {
	dl, ok := message.ReceiptOf(m).(*delivery)
	if !ok {
		return nil, fmt.Errorf("%w: message %s was not received from kafka", driver.ErrInvalidMessage, m.ID)
	}
	return dl, nil
}

// Ack implements driver.Receiver: it finishes the messages' offsets and commits, for
// each partition touched, the offset after its contiguous run of finished records. Acks for
// a generation that was revoked are not committed (see receiver).
func (r *receiver) Ack(ctx context.Context, msgs []*message.Message) error {
	var gens []*generation
	for i := 0; i < len(msgs); {
		dl, err := deliveryOf(msgs[i])
		if err != nil {
			return err
		}
		// Consecutive messages of one partition share a lock (the engine acks in batches).
		p := dl.p
		moved := false
		p.mu.Lock()
		j := i
		for ; j < len(msgs); j++ {
			d, ok := message.ReceiptOf(msgs[j]).(*delivery)
			if !ok || d.p != p {
				break
			}
			if p.t.finish(d.offset) {
				moved = true
			}
		}
		p.mu.Unlock()
		p.g.releaseN(int64(j - i))
		i = j
		if moved && !containsGen(gens, p.g) {
			gens = append(gens, p.g)
		}
	}
	var errs []error
	for _, g := range gens {
		if err := g.commit(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func containsGen(gs []*generation, g *generation) bool {
	for _, x := range gs {
		if x == g {
			return true
		}
	}
	return false
}

// commit commits the generation's finished prefixes, unless it was revoked.
func (g *generation) commit() error {
	g.commitMu.Lock()
	defer g.commitMu.Unlock()
	if g.revoked.Load() {
		return nil
	}
	return g.commitLocked()
}

func (g *generation) commitLocked() error {
	var offsets map[int]int64
	var epochs map[int]int
	for _, p := range g.parts {
		p.mu.Lock()
		next, ok := p.t.commitPoint()
		if ok && next > p.committed {
			if offsets == nil {
				offsets = make(map[int]int64, len(g.parts))
				epochs = make(map[int]int, len(g.parts))
			}
			offsets[p.id], epochs[p.id] = next, p.epoch
		}
		p.mu.Unlock()
	}
	if offsets == nil {
		return nil
	}
	if err := g.gen.CommitOffsets(map[string]map[int]int64{g.r.topic: offsets}); err != nil {
		return wrap(fmt.Sprintf("commit offsets of %q for group %q", g.r.topic, g.r.group), err)
	}
	for _, p := range g.parts {
		if next, ok := offsets[p.id]; ok {
			p.mu.Lock()
			if p.epoch == epochs[p.id] && next > p.committed {
				p.committed = next
			}
			p.mu.Unlock()
		}
	}
	return nil
}

// Nack implements driver.Receiver. The engine does not call it for Kafka
// (Capabilities.Redelivery is false: failures are retried in place); should it be called,
// the record is given back uncommitted, so it is delivered again after a restart or
// rebalance, and the committed offset stays below it.
func (r *receiver) Nack(_ context.Context, m *message.Message, _ time.Duration) error {
	dl, err := deliveryOf(m)
	if err != nil {
		return err
	}
	dl.p.g.release()
	return nil
}

// Close implements driver.Receiver: it ends the current generation (committing what
// finished), leaves the group so that its partitions move to the other members at once,
// and waits for that within ctx.
func (r *receiver) Close(ctx context.Context) error {
	if !r.closed.CompareAndSwap(false, true) {
		return driver.ErrClosed
	}
	close(r.closing)
	r.cancel()
	r.startOnce.Do(func() {}) // a receiver never asked for messages never joined
	if r.cg == nil {
		return nil
	}
	left := make(chan struct{})
	r.d.recvs.Add(1)
	go func() {
		defer r.d.recvs.Done()
		_ = r.cg.Close() // ends the generation, then leaves the group
		<-r.done
		close(left)
	}()
	select {
	case <-left:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka: leave consumer group %q: %w", r.group, ctx.Err())
	}
}
