package otelcourier

import (
	"errors"

	"go.opentelemetry.io/otel/metric"
)

// Metric names. The messaging.* ones follow OpenTelemetry's messaging semantic conventions;
// the courier.* ones are what the consumer engine knows that a client does not.
const (
	MetricOperationDuration = "messaging.client.operation.duration"
	MetricSentMessages      = "messaging.client.sent.messages"
	MetricConsumedMessages  = "messaging.client.consumed.messages"
	MetricHandlerDuration   = "courier.handler.duration"
	MetricRetries           = "courier.retries"
	MetricDeferrals         = "courier.deferrals"
	MetricDeadLettered      = "courier.dead_lettered"
	MetricInFlight          = "courier.in_flight"
	MetricPrefetchOccupancy = "courier.prefetch.occupancy"
	MetricPrefetchHeld      = "courier.prefetch.held"
	MetricEndToEndLatency   = "courier.end_to_end.latency"
	MetricPublishBatchSize  = "courier.publish.batch_size"
)

// Bucket boundaries: the semantic conventions' for durations (seconds), and powers of two
// for batch sizes.
var (
	durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
	batchBuckets    = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}
)

type instruments struct {
	opDuration, handlerDuration, e2e metric.Float64Histogram
	batchSize                        metric.Int64Histogram
	sent, consumed                   metric.Int64Counter
	retries, deferrals, deadLettered metric.Int64Counter
	inFlight                         metric.Int64UpDownCounter
	occupancy                        metric.Float64ObservableGauge
	held                             metric.Int64ObservableGauge
}

func (in *instruments) init(m metric.Meter) error {
	var errs [12]error
	in.opDuration, errs[0] = m.Float64Histogram(MetricOperationDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of publish (send) operations."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	in.sent, errs[1] = m.Int64Counter(MetricSentMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Messages a producer attempted to send; failures carry error.type."))
	in.consumed, errs[2] = m.Int64Counter(MetricConsumedMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to the handler, every attempt counted."))
	in.handlerDuration, errs[3] = m.Float64Histogram(MetricHandlerDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of handler calls."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	in.retries, errs[4] = m.Int64Counter(MetricRetries, metric.WithUnit("{message}"),
		metric.WithDescription("Failed handler calls to be retried, in place or by redelivery."))
	in.deferrals, errs[5] = m.Int64Counter(MetricDeferrals, metric.WithUnit("{message}"),
		metric.WithDescription("Handler calls that deferred their message, and messages parked."))
	in.deadLettered, errs[6] = m.Int64Counter(MetricDeadLettered, metric.WithUnit("{message}"),
		metric.WithDescription("Messages dead-lettered (copy stored, or handed to the broker's dead-lettering)."))
	in.inFlight, errs[7] = m.Int64UpDownCounter(MetricInFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Handler calls running."))
	in.occupancy, errs[8] = m.Float64ObservableGauge(MetricPrefetchOccupancy, metric.WithUnit("1"),
		metric.WithDescription("Messages held by a subscriber as a fraction of its prefetch."))
	in.held, errs[9] = m.Int64ObservableGauge(MetricPrefetchHeld, metric.WithUnit("{message}"),
		metric.WithDescription("Messages received by a subscriber and not yet acknowledged or given back."))
	in.e2e, errs[10] = m.Float64Histogram(MetricEndToEndLatency, metric.WithUnit("s"),
		metric.WithDescription("Time from publish (the message's publish time) to the start of each handler call."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	in.batchSize, errs[11] = m.Int64Histogram(MetricPublishBatchSize, metric.WithUnit("{message}"),
		metric.WithDescription("Messages per Publish call."), metric.WithExplicitBucketBoundaries(batchBuckets...))
	return errors.Join(errs[:]...)
}
