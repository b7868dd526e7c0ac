// Package otelcourier records OpenTelemetry traces and metrics for Courier. It implements
// transport.Observer, the hook the publishers and the consumer engine call; the core
// (package transport) does not depend on OpenTelemetry.
//
//	obs, err := otelcourier.New(otelcourier.Config{}) // global providers and propagator
//	conn, err := transport.OpenConfig(ctx, url, transport.ConnConfig{Observer: obs})
//
// # Trace context
//
// A Publish call starts a producer span "send <topic>" and writes its context into every
// message's headers with the propagator (W3C traceparent and tracestate, and baggage, with
// propagation.TraceContext and propagation.Baggage installed), so it travels on every broker
// as ordinary headers. A message that already carries a traceparent keeps it: a dead-letter
// copy (which keeps the original's headers) and a redriven message stay in their original
// trace; and when the publishing context has no span, the send span continues the trace of
// the first message's traceparent.
//
// Each handler call is a consumer span "process <topic>". It is the child of the producer's
// span, extracted from the headers, and also links to it. The messaging semantic
// conventions recommend a link from a process span to the message's creation context and
// allow the parent-child relation when the span processes a single message and there is no
// ambient context — always the case for a Courier handler call, which gets no other context.
// Being a child keeps the handler in the publisher's trace, which is what "where did my
// message go" needs; the link is there for backends that follow links. The handler's context
// carries the span and the extracted baggage.
//
// The engine's decisions are span events on the process span: courier.ack, courier.retry,
// courier.nack, courier.defer, courier.park, courier.release, courier.dead_letter,
// courier.dead_letter_failed, with courier.attempt, courier.delay (seconds) and
// courier.error. A handler error sets the span's status to Error (a deferral does not).
//
// # Attributes
//
// messaging.system (kafka, rabbitmq, aws_sqs, gcp_pubsub, else the adapter's name, see
// System), messaging.destination.name (the topic), messaging.consumer.group.name (the
// subscription), messaging.operation.name and messaging.operation.type (send, process),
// messaging.message.id and messaging.message.body.size (single-message publishes and every
// process span), messaging.batch.message_count (publishes of more than one message),
// courier.attempt; on Kafka messaging.kafka.message.key, and on process spans
// messaging.destination.partition.id and messaging.kafka.offset (read through
// driver.LogPosition). Metrics carry messaging.system, messaging.destination.name,
// messaging.operation.name, messaging.consumer.group.name (consumers) and error.type
// (failures).
//
// # Metrics
//
//   - messaging.client.operation.duration (s): publish calls.
//   - messaging.client.sent.messages: messages published; failures with error.type.
//   - messaging.client.consumed.messages: handler calls (a retry counts again).
//   - courier.handler.duration (s): the handler's own duration.
//   - courier.retries, courier.deferrals, courier.dead_lettered: the engine's decisions.
//   - courier.in_flight: handler calls running.
//   - courier.prefetch.held, courier.prefetch.occupancy: messages a subscriber holds
//     (received, not yet acknowledged), and that as a fraction of its prefetch (gauges).
//   - courier.end_to_end.latency (s): from the message's publish time to the start of each
//     handler call (clocks of two machines: mind their skew).
//   - courier.publish.batch_size: messages per Publish call.
//
// # Cost
//
// See the README's Observability section for the measured cost per message with the SDK
// installed. With no Observer set, Courier calls nothing and allocates nothing for it.
package otelcourier
