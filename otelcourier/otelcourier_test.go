package otelcourier_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/goleak"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newObserver(t *testing.T) (*otelcourier.Observer, *tracetest.SpanRecorder, *sdktrace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	obs, err := otelcourier.New(otelcourier.Config{TracerProvider: tp, MeterProvider: mp, Propagator: propagation.TraceContext{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = obs.Close(); _ = tp.Shutdown(context.Background()); _ = mp.Shutdown(context.Background()) })
	return obs, rec, tp
}

// TestPublishKeepsExistingTraceContext: a message that already carries a traceparent (a
// dead-letter copy, a redriven message) keeps it, and a publish without a span in its context
// joins that trace; a message without one gets the send span's; the caller's shared header map
// is not written to.
func TestPublishKeepsExistingTraceContext(t *testing.T) {
	obs, rec, _ := newObserver(t)
	const orig = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	shared := message.Headers{"app": "x"}
	old := &message.Message{ID: "old", Headers: message.Headers{otelcourier.TraceParentHeader: orig}}
	fresh := &message.Message{ID: "fresh", Headers: shared}
	info := transport.PublishInfo{Broker: "sqs", Topic: "orders"}
	ctx := obs.PublishStart(context.Background(), info, []*message.Message{old, fresh})
	obs.PublishEnd(ctx, info, []*message.Message{old, fresh}, nil)

	if got := old.Header(otelcourier.TraceParentHeader); got != orig {
		t.Errorf("existing traceparent replaced by %q", got)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "send orders" || spans[0].SpanKind() != trace.SpanKindProducer {
		t.Fatalf("spans %v; want one producer span send orders", spans)
	}
	if got := spans[0].SpanContext().TraceID().String(); got != "0af7651916cd43dd8448eb211c80319c" {
		t.Errorf("send span in trace %s; want the message's original trace", got)
	}
	want := "00-0af7651916cd43dd8448eb211c80319c-" + spans[0].SpanContext().SpanID().String() + "-01"
	if got := fresh.Header(otelcourier.TraceParentHeader); got != want {
		t.Errorf("fresh message traceparent %q; want the send span's %q", got, want)
	}
	if _, ok := shared[otelcourier.TraceParentHeader]; ok || fresh.Header("app") != "x" {
		t.Errorf("shared header map written to (%v) or the copy lost a header (%v)", shared, fresh.Headers)
	}
}

// TestProcessSpanStatus: a failed handler call ends its span with status Error, a deferral
// does not; the engine's decisions are events on the span.
func TestProcessSpanStatus(t *testing.T) {
	obs, rec, _ := newObserver(t)
	s := transport.SubscriptionInfo{Broker: "kafka", Topic: "orders", Subscription: "billing"}
	for _, err := range []error{errors.New("boom"), message.Defer(errors.New("later"), 0), nil} {
		d := transport.Delivery{SubscriptionInfo: s, Message: &message.Message{ID: "m", Key: "k", Attempt: 2}}
		ctx := obs.ProcessStart(context.Background(), d)
		obs.Event(ctx, d, transport.Event{Kind: transport.EventRetry, Err: err})
		obs.ProcessEnd(ctx, s, err, 0)
	}
	spans := rec.Ended()
	if len(spans) != 3 {
		t.Fatalf("%d spans; want 3", len(spans))
	}
	for i, want := range []string{"Error", "Unset", "Unset"} {
		if got := spans[i].Status().Code.String(); got != want {
			t.Errorf("span %d status %s; want %s", i, got, want)
		}
		if ev := spans[i].Events(); len(ev) == 0 || ev[0].Name != "courier.retry" {
			t.Errorf("span %d events %v; want courier.retry first", i, ev)
		}
	}
	attrs := map[string]string{}
	for _, kv := range spans[0].Attributes() {
		attrs[string(kv.Key)] = kv.Value.String()
	}
	for k, v := range map[string]string{"messaging.system": "kafka", "messaging.kafka.message.key": "k", "courier.attempt": "2",
		"messaging.consumer.group.name": "billing", "messaging.operation.type": "process"} {
		if attrs[k] != v {
			t.Errorf("attribute %s = %q; want %q", k, attrs[k], v)
		}
	}
}
