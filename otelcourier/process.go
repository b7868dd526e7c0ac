package otelcourier

import (
	"context"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
	"github.com/courierhq/courier/transport/driver"
)

// AttemptKey is the span attribute holding the delivery attempt (Message.Attempt).
const AttemptKey = attribute.Key("courier.attempt")

type processKey struct{}

// ProcessStart implements transport.Observer: it extracts the producer's trace context (and
// baggage) from the message's headers and starts a consumer span "process <topic>" that is
// the child of the producer's span and also links to it (see the package documentation). It
// counts the message as consumed and records its end-to-end latency.
func (o *Observer) ProcessStart(ctx context.Context, d transport.Delivery) context.Context {
	m := d.Message
	ctx = o.prop.Extract(ctx, propagation.MapCarrier(m.Headers))
	opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer), trace.WithAttributes(processAttrs(d)...)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	ctx, span := o.tracer.Start(ctx, opProcess+" "+d.Topic, opts...)
	set := metric.WithAttributeSet(o.set(d.Broker, d.Topic, d.Subscription, opProcess))
	o.inst.consumed.Add(ctx, 1, set)
	o.inst.inFlight.Add(ctx, 1, set)
	if !m.PublishTime.IsZero() {
		o.inst.e2e.Record(ctx, time.Since(m.PublishTime).Seconds(), set)
	}
	return context.WithValue(ctx, processKey{}, span)
}

// processAttrs are the process span's attributes.
func processAttrs(d transport.Delivery) []attribute.KeyValue {
	m := d.Message
	system := System(d.Broker)
	attrs := make([]attribute.KeyValue, 0, 11)
	attrs = append(attrs,
		semconv.MessagingSystemKey.String(system),
		semconv.MessagingDestinationName(d.Topic),
		semconv.MessagingConsumerGroupName(d.Subscription),
		semconv.MessagingOperationName(opProcess),
		semconv.MessagingOperationTypeProcess,
		semconv.MessagingMessageID(m.ID),
		semconv.MessagingMessageBodySize(len(m.Payload)),
		AttemptKey.Int(m.Attempt))
	if system == "kafka" {
		if m.Key != "" {
			attrs = append(attrs, semconv.MessagingKafkaMessageKey(m.Key))
		}
		var pos driver.LogPosition
		if m.As(&pos) {
			attrs = append(attrs, semconv.MessagingDestinationPartitionID(strconv.Itoa(pos.Partition)),
				semconv.MessagingKafkaOffset(int(pos.Offset)))
		}
	}
	return attrs
}

// Event implements transport.Observer: the engine's decision becomes a span event
// ("courier.<kind>", with the delay and the error) and, for retries, deferrals and
// dead-lettering, a count.
func (o *Observer) Event(ctx context.Context, d transport.Delivery, ev transport.Event) {
	set := metric.WithAttributeSet(o.set(d.Broker, d.Topic, d.Subscription, opProcess))
	switch ev.Kind {
	case transport.EventRetry, transport.EventNack:
		o.inst.retries.Add(ctx, 1, set)
	case transport.EventDefer, transport.EventPark:
		o.inst.deferrals.Add(ctx, 1, set)
	case transport.EventDeadLetter:
		o.inst.deadLettered.Add(ctx, 1, set)
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	attrs := []attribute.KeyValue{AttemptKey.Int(d.Message.Attempt)}
	if ev.Delay > 0 {
		attrs = append(attrs, attribute.Float64("courier.delay", ev.Delay.Seconds()))
	}
	if ev.Err != nil {
		attrs = append(attrs, attribute.String("courier.error", ev.Err.Error()))
	}
	span.AddEvent("courier."+ev.Kind.String(), trace.WithAttributes(attrs...))
}

// ProcessEnd implements transport.Observer: it records the handler's duration and ends the
// span, with status Error when the handler failed (a deferral is not a failure).
func (o *Observer) ProcessEnd(ctx context.Context, s transport.SubscriptionInfo, err error, elapsed time.Duration) {
	set := o.set(s.Broker, s.Topic, s.Subscription, opProcess)
	o.inst.inFlight.Add(ctx, -1, metric.WithAttributeSet(set))
	if err != nil && !message.IsDeferred(err) {
		o.inst.handlerDuration.Record(ctx, elapsed.Seconds(),
			metric.WithAttributes(append(set.ToSlice(), semconv.ErrorTypeKey.String(errorType(err)))...))
	} else {
		o.inst.handlerDuration.Record(ctx, elapsed.Seconds(), metric.WithAttributeSet(set))
	}
	span, _ := ctx.Value(processKey{}).(trace.Span)
	if span == nil {
		return
	}
	if err != nil && !message.IsDeferred(err) {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
