package otelcourier

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/transport"
)

// ScopeName is the instrumentation scope of the tracer and the meter.
const ScopeName = "github.com/courierhq/courier/otelcourier"

// Config configures an Observer. The zero value is valid: the global providers and
// propagator, read when New is called.
type Config struct {
	// TracerProvider creates the tracer. Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// MeterProvider creates the meter. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Propagator writes and reads the trace context (and baggage) in message headers.
	// Default otel.GetTextMapPropagator(); install propagation.TraceContext{} and
	// propagation.Baggage{} there (otel.SetTextMapPropagator) for W3C traceparent,
	// tracestate and baggage headers — the global default propagates nothing.
	Propagator propagation.TextMapPropagator
}

// Validate reports whether the configuration can be used. Every Config is valid; it exists
// for symmetry with Courier's other configurations.
func (c Config) Validate() error { return nil }

// Observer is a transport.Observer recording OpenTelemetry spans and metrics. Create it with
// New and set it on ConnConfig.Observer (or a PublisherConfig / SubscriberConfig). It is safe
// for concurrent use.
type Observer struct {
	tracer trace.Tracer
	prop   propagation.TextMapPropagator
	inst   instruments

	mu   sync.Mutex
	subs map[*running]struct{} // running subscribers, for the occupancy gauge
	reg  metric.Registration

	attrs sync.Map // attrKey → attribute.Set: the metrics' attributes, made once per destination
}

var _ transport.Observer = (*Observer)(nil)

// running is one subscriber's Run, for the occupancy gauge.
type running struct {
	attrs     attribute.Set
	occupancy func() transport.Occupancy
}

// New returns an Observer recording with cfg's providers. It fails when the meter provider
// refuses an instrument.
func New(cfg Config) (*Observer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("otelcourier: %w", err)
	}
	tp, mp, prop := cfg.TracerProvider, cfg.MeterProvider, cfg.Propagator
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if prop == nil {
		prop = otel.GetTextMapPropagator()
	}
	o := &Observer{
		tracer: tp.Tracer(ScopeName, trace.WithSchemaURL(semconv.SchemaURL)),
		prop:   prop,
		subs:   map[*running]struct{}{},
	}
	meter := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	if err := o.inst.init(meter); err != nil {
		return nil, fmt.Errorf("otelcourier: %w", err)
	}
	reg, err := meter.RegisterCallback(o.observeOccupancy, o.inst.occupancy, o.inst.held)
	if err != nil {
		return nil, fmt.Errorf("otelcourier: register the occupancy callback: %w", err)
	}
	o.reg = reg
	return o, nil
}

// Close unregisters the occupancy gauges' callback. Spans and counters are unaffected.
func (o *Observer) Close() error {
	if err := o.reg.Unregister(); err != nil {
		return fmt.Errorf("otelcourier: %w", err)
	}
	return nil
}

// SubscriberStart implements transport.Observer: the subscriber's prefetch occupancy is
// reported by the courier.prefetch.occupancy and courier.prefetch.held gauges until stop.
func (o *Observer) SubscriberStart(s transport.SubscriptionInfo, occupancy func() transport.Occupancy) (stop func()) {
	r := &running{attrs: o.set(s.Broker, s.Topic, s.Subscription, opProcess), occupancy: occupancy}
	o.mu.Lock()
	o.subs[r] = struct{}{}
	o.mu.Unlock()
	return func() {
		o.mu.Lock()
		delete(o.subs, r)
		o.mu.Unlock()
	}
}

func (o *Observer) observeOccupancy(_ context.Context, obs metric.Observer) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	for r := range o.subs {
		occ := r.occupancy()
		obs.ObserveInt64(o.inst.held, int64(occ.Held), metric.WithAttributeSet(r.attrs))
		if occ.Prefetch > 0 {
			obs.ObserveFloat64(o.inst.occupancy, float64(occ.Held)/float64(occ.Prefetch), metric.WithAttributeSet(r.attrs))
		}
	}
	return nil
}

// System returns the messaging.system value for a Courier broker name: the semantic
// conventions' names where they have one (kafka, rabbitmq, aws_sqs, gcp_pubsub), else the
// adapter's own name ("memory").
func System(broker string) string {
	switch broker {
	case "sqs":
		return "aws_sqs"
	case "pubsub", "gcppubsub":
		return "gcp_pubsub"
	}
	return broker
}

// Operation names (messaging.operation.name) and types.
const (
	opSend    = "send"
	opProcess = "process"
)

type attrKey struct{ broker, topic, sub, op string }

// set returns the metrics' attributes for one destination and operation, made once.
func (o *Observer) set(broker, topic, sub, op string) attribute.Set {
	k := attrKey{broker, topic, sub, op}
	if v, ok := o.attrs.Load(k); ok {
		return v.(attribute.Set)
	}
	kv := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(System(broker)),
		semconv.MessagingDestinationName(topic),
		semconv.MessagingOperationName(op),
	}
	if sub != "" {
		kv = append(kv, semconv.MessagingConsumerGroupName(sub))
	}
	s := attribute.NewSet(kv...)
	o.attrs.Store(k, s)
	return s
}

// errorType is the error.type attribute of a failed operation: Courier's error kind where
// it has one, else "_OTHER".
func errorType(err error) string {
	kinds := []struct {
		err  error
		name string
	}{
		{transport.ErrMessageTooLarge, "message_too_large"},
		{transport.ErrInvalidMessage, "invalid_message"},
		{transport.ErrUnavailable, "unavailable"},
		{transport.ErrClosed, "closed"},
		{context.DeadlineExceeded, "timeout"},
		{context.Canceled, "canceled"},
		{transport.ErrHandlerPanic, "panic"},
	}
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return "_OTHER"
}
