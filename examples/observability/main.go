// Command observability shows Courier's OpenTelemetry wiring (package otelcourier): traces
// written to stdout by the stdout exporter, metrics served on a Prometheus endpoint. It runs on
// the in-process broker by default and on any broker named by COURIER_URL:
//
//	go run ./examples/observability
//	COURIER_URL=kafka://127.0.0.1:9092 go run ./examples/observability
//	METRICS_ADDR=127.0.0.1:9464 LINGER=5m go run ./examples/observability   # then curl it
//
// A "checkout" span publishes each order; the consumer's handler continues that trace (its
// "charge card" span is a grandchild of the checkout, through "send" and "process" spans) on
// any broker, because the trace context travels in the message headers. Order 3 fails once
// and is retried, order 5 fails for good and is dead-lettered: both keep their trace, and the
// dead-letter watcher's span joins it too. At the end the program reads its own /metrics
// endpoint and prints the Courier lines; it exits 1 if a handler saw another trace.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	_ "github.com/courierhq/courier/adapters/all"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

const orders = 5

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	tp, mp, metricsURL, shutdown, err := setupTelemetry()
	if err != nil {
		return err
	}
	defer shutdown()
	// Without these options, otelcourier uses the global providers and propagator.
	obs, err := otelcourier.New(otelcourier.Config{TracerProvider: tp, MeterProvider: mp,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})})
	if err != nil {
		return err
	}
	defer obs.Close()

	url := transport.URLFromEnv()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Logger: quiet, Observer: obs})
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	topic := fmt.Sprintf("observability-orders-%06d", rand.IntN(1_000_000))
	fmt.Fprintf(os.Stderr, "broker  %s (%s)\ntopic   %s\nmetrics %s\n", transport.RedactURL(url), conn.Capabilities().Name, topic, metricsURL)

	c := &consumer{tracer: tp.Tracer("example"), seen: map[string]trace.TraceID{}, done: make(chan struct{})}
	stop, err := c.start(ctx, conn, topic)
	if err != nil {
		return err
	}
	defer stop()
	published, err := publish(ctx, conn, tp.Tracer("example"), topic)
	if err != nil {
		return err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		return fmt.Errorf("not every order was accounted for: %w", ctx.Err())
	}
	stop()
	if err := c.check(published); err != nil {
		return err
	}
	_ = tp.ForceFlush(ctx)
	return printMetrics(ctx, metricsURL)
}

// setupTelemetry installs the SDK: spans to stdout (one JSON object per line), metrics to a
// Prometheus registry served on METRICS_ADDR (default: a free loopback port).
func setupTelemetry() (*sdktrace.TracerProvider, *sdkmetric.MeterProvider, string, func(), error) {
	exp, err := stdouttrace.New(stdouttrace.WithWriter(os.Stdout))
	if err != nil {
		return nil, nil, "", nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	reg := prometheus.NewRegistry()
	pexp, err := otelprom.New(otelprom.WithRegisterer(reg), otelprom.WithoutScopeInfo())
	if err != nil {
		return nil, nil, "", nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(pexp))
	addr := os.Getenv("METRICS_ADDR")
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, "", nil, err
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	shutdown := func() {
		if d, err := time.ParseDuration(os.Getenv("LINGER")); err == nil {
			fmt.Fprintf(os.Stderr, "serving metrics on http://%s/metrics for %v\n", ln.Addr(), d)
			time.Sleep(d)
		}
		_ = srv.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	}
	return tp, mp, "http://" + ln.Addr().String() + "/metrics", shutdown, nil
}

// publish publishes each order inside its own "checkout" span and returns the trace IDs by
// message ID.
func publish(ctx context.Context, conn *transport.Conn, tracer trace.Tracer, topic string) (map[string]trace.TraceID, error) {
	out := map[string]trace.TraceID{}
	for i := 1; i <= orders; i++ {
		cctx, span := tracer.Start(ctx, "checkout")
		m := &message.Message{ID: fmt.Sprintf("order-%d", i), Payload: []byte(fmt.Sprintf(`{"order":%d}`, i))}
		err := conn.Publish(cctx, topic, m)
		span.End()
		if err != nil {
			return nil, err
		}
		out[m.ID] = span.SpanContext().TraceID()
	}
	fmt.Fprintf(os.Stderr, "published %d orders, each in its own checkout trace\n", orders)
	return out, nil
}

// consumer handles orders and watches the dead-letter topic, noting the trace of each.
type consumer struct {
	tracer trace.Tracer
	mu     sync.Mutex
	seen   map[string]trace.TraceID // "handled order-1", "dead-lettered order-5" → trace
	done   chan struct{}
}

func (c *consumer) start(ctx context.Context, conn *transport.Conn, topic string) (stop func(), err error) {
	retry := transport.RetryPolicy{MaxAttempts: 3, InitialDelay: 50 * time.Millisecond}
	sub, err := conn.Subscribe(ctx, topic, "billing", transport.SubscriberConfig{Retry: retry, Order: transport.OrderNone})
	if err != nil {
		return nil, err
	}
	dlq, err := conn.Subscribe(ctx, conn.DefaultDeadLetterTopic(topic), "billing"+transport.DeadLetterSuffix, transport.SubscriberConfig{Order: transport.OrderNone})
	if err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = sub.Run(runCtx, c.billing) })
	wg.Go(func() { _ = dlq.Run(runCtx, c.watchDLQ) })
	var once sync.Once
	return func() { once.Do(func() { cancel(); wg.Wait() }) }, nil
}

func (c *consumer) billing(ctx context.Context, m *message.Message) error {
	_, span := c.tracer.Start(ctx, "charge card") // a child of the process span
	defer span.End()
	switch {
	case m.ID == "order-3" && m.Attempt == 1:
		return errors.New("payment gateway timeout") // retried
	case m.ID == "order-5":
		return message.Permanent(errors.New("card declined")) // dead-lettered
	}
	c.note("handled "+m.ID, ctx)
	return nil
}

func (c *consumer) watchDLQ(ctx context.Context, m *message.Message) error {
	c.note("dead-lettered "+m.ID, ctx)
	return nil
}

func (c *consumer) note(what string, ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seen[what] = trace.SpanContextFromContext(ctx).TraceID()
	if len(c.seen) == orders { // orders-1 handled, one dead-lettered
		close(c.done)
	}
}

// check reports whether every handler call continued its order's checkout trace.
func (c *consumer) check(published map[string]trace.TraceID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for what, got := range c.seen {
		id := what[strings.LastIndexByte(what, ' ')+1:]
		if got != published[id] {
			return fmt.Errorf("%s in trace %s; want its checkout's %s", what, got, published[id])
		}
		fmt.Fprintf(os.Stderr, "%-22s in trace %s (its checkout's)\n", what, got)
	}
	return nil
}

// printMetrics prints the Courier and messaging lines of the Prometheus endpoint.
func printMetrics(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "metrics (counters and gauges):")
	for _, line := range strings.Split(string(body), "\n") {
		if (strings.HasPrefix(line, "courier_") || strings.HasPrefix(line, "messaging_")) && !strings.Contains(line, "_bucket") {
			fmt.Fprintln(os.Stderr, "  "+line)
		}
	}
	if !strings.Contains(string(body), "courier_dead_lettered") {
		return errors.New("the metrics endpoint has no courier_dead_lettered series")
	}
	return nil
}
