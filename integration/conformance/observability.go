package conformance

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

// Observability: the otelcourier Observer on the broker under test — the trace context and
// baggage travel in message headers, a handler continues the publisher's trace (also on a
// retry and in the dead-letter copy), and the metrics count what happened.

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Observability/TraceContinues", testObservedTrace},
		namedTest{"Observability/TraceKeptOnRetryAndDeadLetter", testObservedRetryDeadLetter},
		namedTest{"Observability/Metrics", testObservedMetrics},
	)
}

// telemetry is an SDK set up in memory for one test.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	obs    *otelcourier.Observer
}

func newTelemetry(t *testing.T) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	obs, err := otelcourier.New(otelcourier.Config{TracerProvider: tel.tp, MeterProvider: mp,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = obs.Close()
		_ = tel.tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	tel.obs = obs
	return tel
}

// traced records, per message ID, the trace IDs and baggage its handler calls saw.
type traced struct {
	mu      sync.Mutex
	traces  map[string][]trace.TraceID
	baggage map[string]string
}

func newTraced() *traced {
	return &traced{traces: map[string][]trace.TraceID{}, baggage: map[string]string{}}
}

func (tr *traced) see(ctx context.Context, m *message.Message) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.traces[m.ID] = append(tr.traces[m.ID], trace.SpanContextFromContext(ctx).TraceID())
	tr.baggage[m.ID] = baggage.FromContext(ctx).Member("tenant").Value()
}

func (tr *traced) calls(id string) []trace.TraceID {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return append([]trace.TraceID(nil), tr.traces[id]...)
}

func (h *Harness) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * h.Timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startRequest starts a span with baggage tenant=acme: the request a publish is part of.
func (tel *telemetry) startRequest(t *testing.T) (context.Context, trace.Span) {
	t.Helper()
	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(context.Background(), bag)
	return tel.tp.Tracer("conformance").Start(ctx, "request")
}

// testObservedTrace: a span started before Publish continues in the handler (same trace ID,
// baggage carried); the spans follow the messaging conventions: "send <topic>" (producer)
// child of the request, "process <topic>" (consumer) child of and linked to the send span.
func testObservedTrace(t *testing.T, h *Harness) {
	tel := newTelemetry(t)
	c := h.open(t)
	topic := h.NewTopic(t)
	tr := newTraced()
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Observer: tel.obs}),
		func(ctx context.Context, m *message.Message) error { tr.see(ctx, m); return nil })

	ctx, req := tel.startRequest(t)
	pub := c.Publisher(transport.PublisherConfig{Observer: tel.obs})
	if err := pub.Publish(ctx, topic, &message.Message{ID: "traced-1", Payload: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	req.End()
	h.waitFor(t, "the handler", func() bool { return len(tr.calls("traced-1")) == 1 })
	want := req.SpanContext().TraceID()
	if got := tr.calls("traced-1")[0]; got != want {
		t.Errorf("handler's trace ID %s; want the publisher's %s", got, want)
	}
	tr.mu.Lock()
	if got := tr.baggage["traced-1"]; got != "acme" {
		t.Errorf("handler's baggage tenant = %q; want acme", got)
	}
	tr.mu.Unlock()
	h.waitFor(t, "the process span to end", func() bool { return findSpan(tel.spans.Ended(), "process "+topic) != nil })
	checkSpans(t, tel.spans.Ended(), topic, req.SpanContext(), otelcourier.System(c.Capabilities().Name))
}

func findSpan(spans []sdktrace.ReadOnlySpan, name string) sdktrace.ReadOnlySpan {
	for _, s := range spans {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

func checkSpans(t *testing.T, spans []sdktrace.ReadOnlySpan, topic string, req trace.SpanContext, system string) {
	t.Helper()
	send, proc := findSpan(spans, "send "+topic), findSpan(spans, "process "+topic)
	if send == nil || proc == nil {
		t.Fatalf("spans %d; want send %s and process %s", len(spans), topic, topic)
	}
	if send.SpanKind() != trace.SpanKindProducer || send.Parent().SpanID() != req.SpanID() {
		t.Errorf("send span: kind %v parent %s; want producer, child of the request %s", send.SpanKind(), send.Parent().SpanID(), req.SpanID())
	}
	if proc.SpanKind() != trace.SpanKindConsumer || proc.Parent().SpanID() != send.SpanContext().SpanID() {
		t.Errorf("process span: kind %v parent %s; want consumer, child of the send span %s", proc.SpanKind(), proc.Parent().SpanID(), send.SpanContext().SpanID())
	}
	if links := proc.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != send.SpanContext().SpanID() {
		t.Errorf("process span links %v; want one, to the send span", links)
	}
	want := map[string]string{"messaging.system": system, "messaging.destination.name": topic,
		"messaging.consumer.group.name": "s1", "messaging.operation.type": "process", "messaging.message.id": "traced-1"}
	got := map[string]string{}
	for _, kv := range proc.Attributes() {
		got[string(kv.Key)] = kv.Value.String()
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("process span attribute %s = %q; want %q", k, got[k], v)
		}
	}
	if system == "kafka" {
		if got["messaging.destination.partition.id"] == "" || got["messaging.kafka.offset"] == "" {
			t.Errorf("Kafka process span attributes %v; want the partition and offset", got)
		}
	}
}

// testObservedRetryDeadLetter: a message retried keeps its trace on every attempt; a message
// dead-lettered keeps it in the dead-letter copy's headers (the same traceparent as the
// message as published); both show as span events.
func testObservedRetryDeadLetter(t *testing.T, h *Harness) {
	tel := newTelemetry(t)
	c := h.open(t)
	topic := h.NewTopic(t)
	tr := newTraced()
	var published sync.Map // ID → traceparent as delivered
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Observer: tel.obs}),
		func(ctx context.Context, m *message.Message) error {
			tr.see(ctx, m)
			published.Store(m.ID, m.Header(otelcourier.TraceParentHeader))
			switch {
			case m.ID == "doomed":
				return message.Permanent(errors.New("refused for good"))
			case m.Attempt == 1:
				return errors.New("transient")
			}
			return nil
		})
	dlq := h.dlqCollector(t, c, topic, "s1")

	ctx, req := tel.startRequest(t)
	pub := c.Publisher(transport.PublisherConfig{Observer: tel.obs})
	if err := pub.Publish(ctx, topic, &message.Message{ID: "flaky", Payload: []byte("x")}, &message.Message{ID: "doomed", Payload: []byte("y")}); err != nil {
		t.Fatal(err)
	}
	req.End()
	want := req.SpanContext().TraceID()
	h.waitFor(t, "the retry", func() bool { return len(tr.calls("flaky")) >= 2 })
	for i, got := range tr.calls("flaky") {
		if got != want {
			t.Errorf("attempt %d of the retried message: trace %s; want %s", i+1, got, want)
		}
	}
	dlq.waitDistinct(t, 1, h.Timeout)
	copyTP := dlq.snapshot()[0].Headers[otelcourier.TraceParentHeader]
	tp, _ := published.Load("doomed")
	if copyTP == "" || copyTP != tp {
		t.Errorf("dead-letter copy's traceparent %q; want the original's %q", copyTP, tp)
	}
	if got := tr.calls("doomed"); len(got) != 1 || got[0] != want {
		t.Errorf("dead-lettered message's handler traces %v; want one call in %s", got, want)
	}
	h.waitFor(t, "the span events", func() bool {
		return spanEvents(tel.spans.Ended(), "process "+topic)["courier.dead_letter"] == 1
	})
	ev := spanEvents(tel.spans.Ended(), "process "+topic)
	if ev["courier.retry"]+ev["courier.nack"] < 1 {
		t.Errorf("process span events %v; want a courier.retry or courier.nack", ev)
	}
}

func spanEvents(spans []sdktrace.ReadOnlySpan, name string) map[string]int {
	n := map[string]int{}
	for _, s := range spans {
		if s.Name() == name {
			for _, e := range s.Events() {
				n[e.Name]++
			}
		}
	}
	return n
}

// testObservedMetrics: after publishing 100 messages of which 10 fail permanently, the
// metrics read sent 100, consumed at least 100 (retries count again), dead-lettered 10.
func testObservedMetrics(t *testing.T, h *Harness) {
	tel := newTelemetry(t)
	c := h.open(t)
	topic := h.NewTopic(t)
	var handled, failed atomic.Int64
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Observer: tel.obs}),
		func(_ context.Context, m *message.Message) error {
			if m.Header("fail") == "yes" {
				failed.Add(1)
				return message.Permanent(errors.New("bad"))
			}
			if m.Attempt == 1 && m.Header("flaky") == "yes" {
				return errors.New("transient")
			}
			handled.Add(1)
			return nil
		})
	msgs := make([]*message.Message, 100)
	for i := range msgs {
		msgs[i] = &message.Message{ID: fmt.Sprintf("m-%d", i), Payload: []byte("x"), Headers: message.Headers{}}
		if i%10 == 0 {
			msgs[i].Headers["fail"] = "yes"
		} else if i%10 == 5 {
			msgs[i].Headers["flaky"] = "yes"
		}
	}
	pub := c.Publisher(transport.PublisherConfig{Observer: tel.obs})
	for i := 0; i < len(msgs); i += 25 {
		if err := pub.Publish(context.Background(), topic, msgs[i:i+25]...); err != nil {
			t.Fatal(err)
		}
	}
	var sums map[string]int64
	h.waitFor(t, "90 handled and 10 dead-lettered", func() bool {
		// handled is read before the metrics: every call it counts started (and was counted
		// as consumed) before, so the snapshot holds them all.
		n := handled.Load()
		sums = metricSums(t, tel.reader)
		return n >= 90 && sums[otelcourier.MetricDeadLettered] >= 10
	})
	if sums[otelcourier.MetricSentMessages] != 100 {
		t.Errorf("%s = %d; want 100", otelcourier.MetricSentMessages, sums[otelcourier.MetricSentMessages])
	}
	if got := sums[otelcourier.MetricConsumedMessages]; got < 110 {
		t.Errorf("%s = %d; want at least 110 (100 and the 10 retries)", otelcourier.MetricConsumedMessages, got)
	}
	if sums[otelcourier.MetricDeadLettered] != 10 {
		t.Errorf("%s = %d; want 10", otelcourier.MetricDeadLettered, sums[otelcourier.MetricDeadLettered])
	}
	if sums[otelcourier.MetricRetries] < 10 {
		t.Errorf("%s = %d; want at least 10", otelcourier.MetricRetries, sums[otelcourier.MetricRetries])
	}
	if sums[otelcourier.MetricPublishBatchSize] != 4 || sums[otelcourier.MetricEndToEndLatency] < 100 {
		t.Errorf("batch-size records %d, end-to-end latency records %d; want 4 and at least 100",
			sums[otelcourier.MetricPublishBatchSize], sums[otelcourier.MetricEndToEndLatency])
	}
}

// metricSums reads the counters' sums (over every attribute set; an error.type point
// excluded) and the histograms' counts.
func metricSums(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					if _, failed := p.Attributes.Value("error.type"); !failed {
						out[m.Name] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[m.Name] += int64(p.Count)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					out[m.Name] += int64(p.Count)
				}
			}
		}
	}
	return out
}
