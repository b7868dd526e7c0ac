package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// benchConfig configures a courier bench run. Zero fields take the defaults noted.
type benchConfig struct {
	URL          string        // broker URL (default $COURIER_URL, else memory://)
	Topic        string        // default: courier-bench-<time>, a new topic
	Subscription string        // default: <topic>-s, deleted afterwards where the broker can
	Count        int           // messages to send (default 10,000 unless Duration is set)
	Duration     time.Duration // send for this long instead of Count messages
	Rate         float64       // messages per second over all publishers; 0: as fast as possible
	Size         int           // payload bytes, at least benchHeaderBytes (default 100)
	Publishers   int           // concurrent publishers (default 1)
	Consumers    int           // subscribers on the subscription (default 1)
	Concurrency  int           // handlers per subscriber (default transport.DefaultConcurrency)
	Batch        int           // messages per Publish call (default 1)
	Keys         int           // ordering keys the messages are spread over; 0: no key
	Drain        time.Duration // wait this long for a message after sending ended (default 10s)
	JSON         bool          // print one JSON object instead of the summary
	Plot         string        // write a PNG of throughput and latency over time here
	Progress     string        // "auto" (on a terminal), "always" or "never"
}

// Defaults of benchConfig.
const (
	benchDefaultCount = 10000
	benchDefaultSize  = 100
	benchDefaultDrain = 10 * time.Second
	benchMaxSize      = 64 << 20
)

// Validate reports a configuration that cannot run.
func (c benchConfig) Validate() error {
	switch {
	case c.Count < 0 || c.Duration < 0:
		return usageError("bench: -n and -duration must not be negative")
	case c.Count > 0 && c.Duration > 0:
		return usageError("bench: give -n or -duration, not both")
	case c.Rate < 0:
		return usageError("bench: -rate must not be negative")
	case c.Size < benchHeaderBytes || c.Size > benchMaxSize:
		return usageError("bench: -size must be between %d and %d bytes", benchHeaderBytes, benchMaxSize)
	case c.Publishers < 1 || c.Consumers < 1 || c.Batch < 1 || c.Concurrency < 0 || c.Keys < 0:
		return usageError("bench: -publishers, -consumers and -batch must be at least 1; -concurrency and -keys not negative")
	case c.Drain <= 0:
		return usageError("bench: -drain must be positive")
	case c.Progress != "auto" && c.Progress != "always" && c.Progress != "never":
		return usageError("bench: -progress is auto, always or never")
	}
	return nil
}

// parseBenchFlags reads bench's flags into a validated benchConfig with defaults applied.
func parseBenchFlags(args []string, stderr io.Writer) (benchConfig, error) {
	var c benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "", "broker URL (default $COURIER_URL, else memory://)")
	fs.StringVar(&c.Topic, "topic", "", "topic (default: a new one, courier-bench-<time>)")
	fs.StringVar(&c.Subscription, "subscription", "", "subscription (default: <topic>-s, deleted afterwards where the broker can delete subscriptions)")
	fs.IntVar(&c.Count, "n", 0, "messages to send (default 10000 unless -duration is given)")
	fs.DurationVar(&c.Duration, "duration", 0, "send for this long instead of -n messages")
	fs.Float64Var(&c.Rate, "rate", 0, "messages per second over all publishers (0: as fast as possible)")
	fs.IntVar(&c.Size, "size", benchDefaultSize, fmt.Sprintf("payload bytes (at least %d: run ID, sequence number, send time)", benchHeaderBytes))
	fs.IntVar(&c.Publishers, "publishers", 1, "concurrent publishers")
	fs.IntVar(&c.Consumers, "consumers", 1, "subscribers sharing the subscription (competing consumers)")
	fs.IntVar(&c.Concurrency, "concurrency", 0, "handlers per subscriber (0: the default, 8)")
	fs.IntVar(&c.Batch, "batch", 1, "messages per Publish call")
	fs.IntVar(&c.Keys, "keys", 0, "spread messages over this many ordering keys (0: no key)")
	fs.DurationVar(&c.Drain, "drain", benchDefaultDrain, "after sending, give up once no message arrived for this long")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON object instead of the summary")
	fs.StringVar(&c.Plot, "plot", "", "write a PNG of throughput and latency per second to this file")
	fs.StringVar(&c.Progress, "progress", "auto", "live progress line on standard error: auto (when it is a terminal), always, never")
	if err := parseFlags(fs, args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, usageError("bench: unexpected argument %q", fs.Arg(0))
	}
	if c.Count == 0 && c.Duration == 0 {
		c.Count = benchDefaultCount
	}
	return c, c.Validate()
}

// errBenchLoss marks a run in which messages were lost or could not be published (exit 1).
var errBenchLoss = errors.New("bench")

// bench runs "courier bench": a load test that is also a loss check. It subscribes first, so
// that nothing published is missed, publishes messages carrying their sequence number and send
// time, and receives them until every sent message arrived or none arrived for -drain. It
// fails when a message was lost or a publish failed; duplicates are reported but allowed
// (delivery is at least once).
func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseBenchFlags(args, stderr)
	if err != nil {
		return err
	}
	conn, err := open(ctx, cfg.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if err := checkOwnSubscription(conn.Capabilities(), cfg); err != nil {
		return err
	}
	cfg, cleanup := benchNames(conn, cfg)
	res, err := runBench(ctx, conn, cfg, benchProgressOut(cfg.Progress, stderr))
	res.Cleanup = cleanup()
	if err != nil {
		if res.Cleanup != "" {
			fmt.Fprintln(stderr, res.Cleanup)
		}
		return err
	}
	if err := reportBench(stdout, cfg, res); err != nil {
		return err
	}
	if cfg.Plot != "" {
		if err := writePlotFile(cfg.Plot, res.PerSecond); err != nil {
			return fmt.Errorf("bench: plot: %w", err)
		}
	}
	return benchVerdict(res)
}

// checkOwnSubscription refuses to consume a named topic through a subscription of bench's own
// on a broker without fan-out (SQS), where that subscription is the topic's queue: bench would
// take, and acknowledge, messages meant for the topic's consumers. Naming the subscription
// does it on purpose.
func checkOwnSubscription(caps transport.Capabilities, cfg benchConfig) error {
	if !caps.FanOut && cfg.Topic != "" && cfg.Subscription == "" {
		return usageError("bench: %s has no fan-out, so a subscription of bench's own on topic %s would take messages from its consumers; leave -topic out (bench makes a new one) or name -subscription to consume from it on purpose", caps.Name, cfg.Topic)
	}
	return nil
}

// benchVerdict is the run's error: lost messages or failed publishes.
func benchVerdict(res benchResult) error {
	switch {
	case res.Interrupted && res.Lost > 0:
		return fmt.Errorf("%w: interrupted with %d message(s) not received yet", errBenchLoss, res.Lost)
	case res.Lost > 0 && res.Failed > 0:
		return fmt.Errorf("%w: %d message(s) lost, %d publish(es) failed (first: %v)", errBenchLoss, res.Lost, res.Failed, res.firstFail)
	case res.Lost > 0:
		return fmt.Errorf("%w: %d message(s) lost", errBenchLoss, res.Lost)
	case res.Failed > 0:
		return fmt.Errorf("%w: %d publish(es) failed (first: %v)", errBenchLoss, res.Failed, res.firstFail)
	}
	return nil
}

// benchNames fills in the default topic and subscription and returns the function that
// deletes the subscription bench made (it says what happened, or "" when there was nothing
// to do).
func benchNames(conn *transport.Conn, cfg benchConfig) (benchConfig, func() string) {
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	if cfg.Topic == "" {
		cfg.Topic = "courier-bench-" + stamp
	}
	if cfg.Subscription != "" {
		return cfg, func() string { return "" }
	}
	cfg.Subscription = cfg.Topic + "-s"
	return cfg, func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		switch err := conn.DeleteSubscription(ctx, cfg.Topic, cfg.Subscription); {
		case err == nil:
			return "deleted subscription " + cfg.Subscription
		case errors.Is(err, transport.ErrUnsupported):
			return fmt.Sprintf("%s cannot delete subscriptions: what this run made for topic %s stays on the broker", conn.Capabilities().Name, cfg.Topic)
		default:
			return fmt.Sprintf("could not delete subscription %s: %s", cfg.Subscription, errorLine(err))
		}
	}
}

// runBench subscribes, publishes and waits for the messages, then tallies the run.
func runBench(ctx context.Context, conn *transport.Conn, cfg benchConfig, progress io.Writer) (benchResult, error) {
	subs, err := benchSubscribe(ctx, conn, cfg)
	if err != nil {
		return benchResult{}, err
	}
	var idb [8]byte
	_, _ = rand.Read(idb[:]) // never fails (crypto/rand panics rather)
	rec := newRecorder(binary.BigEndian.Uint64(idb[:]), time.Now(), cfg.Count)
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	subErr := make(chan error, len(subs))
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Go(func() {
			subErr <- s.Run(runCtx, func(_ context.Context, m *message.Message) error {
				rec.received(m.Payload, time.Now())
				return nil
			})
		})
	}
	pubDone := make(chan time.Time, 1)
	go func() { pubDone <- benchPublish(runCtx, conn, cfg, rec) }()
	pubEnd, werr := benchWait(runCtx, cfg, rec, pubDone, subErr, progress)
	stopRun()
	if pubEnd.IsZero() {
		<-pubDone // the publishers stop at once: runCtx is done
	}
	wg.Wait()
	res := newBenchResult(conn, cfg, rec, pubEnd)
	res.Interrupted = ctx.Err() != nil
	return res, werr
}

// benchSubscribe attaches every consumer before anything is published, so nothing is missed.
func benchSubscribe(ctx context.Context, conn *transport.Conn, cfg benchConfig) ([]*transport.Subscriber, error) {
	// The handler never fails, so no dead-letter subscription is needed: setting DeadLetter
	// keeps Subscribe from creating one.
	sc := transport.SubscriberConfig{
		Concurrency: cfg.Concurrency, Order: transport.OrderDelivery, DrainTimeout: 5 * time.Second,
		DeadLetter: transport.DeadLetterFunc(func(context.Context, *message.Message, transport.Failure) error {
			return errors.New("bench does not dead-letter")
		}),
	}
	subs := make([]*transport.Subscriber, 0, cfg.Consumers)
	for range cfg.Consumers {
		s, err := conn.Subscribe(ctx, cfg.Topic, cfg.Subscription, sc)
		if err != nil {
			for _, s := range subs {
				_ = s.Close(context.Background())
			}
			return nil, fmt.Errorf("bench: %w", err)
		}
		subs = append(subs, s)
	}
	return subs, nil
}

// benchPublish runs the publishers and returns when the last one finished.
func benchPublish(ctx context.Context, conn *transport.Conn, cfg benchConfig, rec *recorder) time.Time {
	var deadline time.Time
	if cfg.Duration > 0 {
		deadline = rec.start.Add(cfg.Duration)
	}
	var wg sync.WaitGroup
	for range cfg.Publishers {
		wg.Go(func() {
			for ctx.Err() == nil {
				first := rec.claim(cfg.Batch)
				n := cfg.Batch
				if cfg.Count > 0 {
					n = min(n, cfg.Count-int(min(first, uint64(cfg.Count))))
				}
				if n <= 0 || !benchPace(ctx, cfg.Rate, rec.start, first, deadline) {
					return
				}
				benchSend(ctx, conn, cfg, rec, first, n)
			}
		})
	}
	wg.Wait()
	return time.Now()
}

// benchPace waits until message seq is due at rate (messages per second from start; 0: at
// once). It returns false when ctx ended or the message is not due before the deadline (if
// any).
func benchPace(ctx context.Context, rate float64, start time.Time, seq uint64, deadline time.Time) bool {
	due := start
	if rate > 0 {
		due = start.Add(time.Duration(float64(seq) / rate * float64(time.Second)))
	}
	if !deadline.IsZero() && !due.Before(deadline) {
		return false
	}
	if d := time.Until(due); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	// A publisher that wakes a little late still sends a message due before the deadline, so
	// that a fixed rate sends rate × duration; one that is far behind (the broker cannot keep
	// up with the rate) stops at the deadline.
	return ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline.Add(benchLateGrace)))
}

// benchLateGrace is how late after -duration a message due before it may still be sent.
const benchLateGrace = 250 * time.Millisecond

// benchSend publishes messages first..first+n-1 in one call and records the outcome.
func benchSend(ctx context.Context, conn *transport.Conn, cfg benchConfig, rec *recorder, first uint64, n int) {
	msgs := make([]*message.Message, n)
	now := time.Now()
	for i := range msgs {
		seq := first + uint64(i)
		p := make([]byte, cfg.Size)
		encodeBenchPayload(p, rec.run, seq, now)
		msgs[i] = &message.Message{Payload: p}
		if cfg.Keys > 0 {
			msgs[i].Key = "k" + strconv.FormatUint(seq%uint64(cfg.Keys), 10)
		}
	}
	err := conn.Publish(ctx, cfg.Topic, msgs...)
	failed := func(int) bool { return err != nil }
	var pe *transport.PublishError
	if errors.As(err, &pe) {
		refused := make(map[int]bool, len(pe.Failed))
		for _, f := range pe.Failed {
			refused[f.Index] = true
		}
		failed = func(i int) bool { return refused[i] }
	}
	rec.published(first, n, failed, err, time.Now())
}
