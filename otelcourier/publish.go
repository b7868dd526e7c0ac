package otelcourier

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// TraceParentHeader is the W3C trace-context header a traced message carries.
const TraceParentHeader = "traceparent"

type publishKey struct{}

// publishState is what PublishEnd needs from PublishStart.
type publishState struct {
	span  trace.Span
	start time.Time
}

// PublishStart implements transport.Observer: it starts a producer span "send <topic>" and
// writes its context into the headers of every message that carries none yet. A message that
// already carries a traceparent keeps it: a dead-letter copy and a redriven message stay in
// their original trace. When ctx has no span, the span continues the trace of the first
// message's traceparent (the redrive's publish joins the original trace).
func (o *Observer) PublishStart(ctx context.Context, p transport.PublishInfo, msgs []*message.Message) context.Context {
	parent := ctx
	if !trace.SpanContextFromContext(ctx).IsValid() && msgs[0] != nil && msgs[0].Header(TraceParentHeader) != "" {
		parent = o.prop.Extract(ctx, propagation.MapCarrier(msgs[0].Headers))
	}
	attrs := make([]attribute.KeyValue, 0, 7)
	attrs = append(attrs,
		semconv.MessagingSystemKey.String(System(p.Broker)),
		semconv.MessagingDestinationName(p.Topic),
		semconv.MessagingOperationName(opSend),
		semconv.MessagingOperationTypeSend)
	if len(msgs) > 1 {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(len(msgs)))
	} else if m := msgs[0]; m != nil {
		attrs = append(attrs, semconv.MessagingMessageID(m.ID), semconv.MessagingMessageBodySize(len(m.Payload)))
		if m.Key != "" && System(p.Broker) == "kafka" {
			attrs = append(attrs, semconv.MessagingKafkaMessageKey(m.Key))
		}
	}
	ctx, span := o.tracer.Start(parent, opSend+" "+p.Topic, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	for _, m := range msgs {
		if m != nil && m.Header(TraceParentHeader) == "" {
			o.inject(ctx, m)
		}
	}
	return context.WithValue(ctx, publishKey{}, &publishState{span: span, start: time.Now()})
}

// inject writes ctx's trace context into a copy of m's headers: callers may share one header
// map between messages or calls.
func (o *Observer) inject(ctx context.Context, m *message.Message) {
	h := make(message.Headers, len(m.Headers)+3)
	for k, v := range m.Headers {
		h[k] = v
	}
	o.prop.Inject(ctx, propagation.MapCarrier(h))
	m.Headers = h
}

// PublishEnd implements transport.Observer: it ends the span (status Error when err is set)
// and records the operation's duration, the messages sent and the batch size.
func (o *Observer) PublishEnd(ctx context.Context, p transport.PublishInfo, msgs []*message.Message, err error) {
	st, _ := ctx.Value(publishKey{}).(*publishState)
	if st == nil {
		return
	}
	set := o.set(p.Broker, p.Topic, "", opSend)
	attrs := metric.WithAttributeSet(set)
	failed := 0
	if err != nil {
		st.span.RecordError(err)
		st.span.SetStatus(codes.Error, err.Error())
		failed = len(msgs)
		var pe *transport.PublishError
		if errors.As(err, &pe) {
			failed = len(pe.Failed)
		}
		errAttrs := metric.WithAttributes(append(set.ToSlice(), semconv.ErrorTypeKey.String(errorType(err)))...)
		o.inst.opDuration.Record(ctx, time.Since(st.start).Seconds(), errAttrs)
		o.inst.sent.Add(ctx, int64(failed), errAttrs)
	} else {
		o.inst.opDuration.Record(ctx, time.Since(st.start).Seconds(), attrs)
	}
	if ok := len(msgs) - failed; ok > 0 {
		o.inst.sent.Add(ctx, int64(ok), attrs)
	}
	o.inst.batchSize.Record(ctx, int64(len(msgs)), attrs)
	st.span.End()
}
