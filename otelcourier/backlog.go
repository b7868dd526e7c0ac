package otelcourier

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"

	"github.com/courierhq/courier/transport"
)

// Backlog metric names: observable gauges read from Conn.Backlog at each collection.
const (
	MetricBacklogMessages  = "courier.backlog.messages"  // ready (SQS: visible; Kafka: the summed lag)
	MetricBacklogInFlight  = "courier.backlog.in_flight" // delivered, not acknowledged (where the broker tells)
	MetricBacklogDelayed   = "courier.backlog.delayed"   // delayed (where the broker tells)
	MetricBacklogConsumers = "courier.backlog.consumers" // consumers attached (where the broker tells)
	MetricPartitionLag     = "courier.backlog.partition_lag"
)

// BacklogSource is what ObserveBacklog reads; *transport.Conn is one.
type BacklogSource interface {
	Capabilities() transport.Capabilities
	Backlog(ctx context.Context, topic, subscription string) (transport.Backlog, error)
}

// Subscription names one subscription of a topic, for ObserveBacklog.
type Subscription struct {
	Topic, Subscription string
}

// BacklogConfig configures ObserveBacklog. The zero value is valid.
type BacklogConfig struct {
	// MeterProvider creates the meter. Default otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// Timeout bounds one subscription's reading. Default 5s.
	Timeout time.Duration
	// Logger receives a warning for each failed reading (the gauges then skip that
	// subscription for that collection). Default slog.Default().
	Logger *slog.Logger
}

// Validate reports whether the configuration can be used.
func (c BacklogConfig) Validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("otelcourier: BacklogConfig.Timeout is negative (%s)", c.Timeout)
	}
	return nil
}

// ObserveBacklog registers observable gauges that read the backlog of subs from src at
// each metrics collection: courier.backlog.messages, .in_flight, .delayed, .consumers (a
// count the broker does not report is left out, never reported as 0) and, on Kafka,
// courier.backlog.partition_lag per partition (attribute messaging.destination.partition.id).
// Attributes: messaging.system, messaging.destination.name, messaging.consumer.group.name,
// and courier.backlog.approximate on brokers whose counts are estimates (SQS).
//
// It fails, wrapping transport.ErrUnsupported, when the broker cannot report a backlog
// (Capabilities.Backlog false: Pub/Sub, whose backlog lives in Cloud Monitoring). Each
// reading costs a few broker requests (see Conn.Backlog), one subscription after another;
// a failed reading is logged and skipped. Unregister the returned Registration to stop.
func ObserveBacklog(src BacklogSource, subs []Subscription, cfg BacklogConfig) (metric.Registration, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	caps := src.Capabilities()
	if !caps.Backlog {
		return nil, fmt.Errorf("otelcourier: backlog gauges: %w: %s does not report a subscription's backlog", transport.ErrUnsupported, caps.Name)
	}
	mp := cfg.MeterProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	b := &backlogGauges{src: src, subs: subs, timeout: cfg.Timeout, log: cfg.Logger, system: System(caps.Name)}
	if b.timeout == 0 {
		b.timeout = 5 * time.Second
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	meter := mp.Meter(ScopeName, metric.WithSchemaURL(semconv.SchemaURL))
	if err := b.init(meter); err != nil {
		return nil, fmt.Errorf("otelcourier: backlog gauges: %w", err)
	}
	reg, err := meter.RegisterCallback(b.observe, b.messages, b.inFlight, b.delayed, b.consumers, b.lag)
	if err != nil {
		return nil, fmt.Errorf("otelcourier: register the backlog callback: %w", err)
	}
	return reg, nil
}

type backlogGauges struct {
	src     BacklogSource
	subs    []Subscription
	timeout time.Duration
	log     *slog.Logger
	system  string

	messages, inFlight, delayed, consumers, lag metric.Int64ObservableGauge
}

func (b *backlogGauges) init(m metric.Meter) error {
	var errs [5]error
	b.messages, errs[0] = m.Int64ObservableGauge(MetricBacklogMessages, metric.WithUnit("{message}"),
		metric.WithDescription("Messages ready for a subscription (Kafka: the consumer group's summed lag)."))
	b.inFlight, errs[1] = m.Int64ObservableGauge(MetricBacklogInFlight, metric.WithUnit("{message}"),
		metric.WithDescription("Messages delivered to a subscription's consumers and not yet acknowledged."))
	b.delayed, errs[2] = m.Int64ObservableGauge(MetricBacklogDelayed, metric.WithUnit("{message}"),
		metric.WithDescription("Messages of a subscription waiting out a delay."))
	b.consumers, errs[3] = m.Int64ObservableGauge(MetricBacklogConsumers, metric.WithUnit("{consumer}"),
		metric.WithDescription("Consumers attached to a subscription."))
	b.lag, errs[4] = m.Int64ObservableGauge(MetricPartitionLag, metric.WithUnit("{message}"),
		metric.WithDescription("A Kafka consumer group's lag on one partition."))
	return errors.Join(errs[:]...)
}

func (b *backlogGauges) observe(ctx context.Context, obs metric.Observer) error {
	for _, s := range b.subs {
		rctx, cancel := context.WithTimeout(ctx, b.timeout)
		bl, err := b.src.Backlog(rctx, s.Topic, s.Subscription)
		cancel()
		if err != nil {
			b.log.LogAttrs(ctx, slog.LevelWarn, "backlog reading failed",
				slog.String("topic", s.Topic), slog.String("subscription", s.Subscription), slog.Any("error", err))
			continue
		}
		b.record(obs, s, bl)
	}
	return nil
}

// record reports one reading; counts the broker does not report are left out.
func (b *backlogGauges) record(obs metric.Observer, s Subscription, bl transport.Backlog) {
	kv := []attribute.KeyValue{
		semconv.MessagingSystemKey.String(b.system),
		semconv.MessagingDestinationName(s.Topic),
		semconv.MessagingConsumerGroupName(s.Subscription),
	}
	if bl.Approximate {
		kv = append(kv, attribute.Bool("courier.backlog.approximate", true))
	}
	set := metric.WithAttributeSet(attribute.NewSet(kv...))
	for _, g := range []struct {
		inst metric.Int64ObservableGauge
		v    int64
	}{{b.messages, bl.Messages}, {b.inFlight, bl.InFlight}, {b.delayed, bl.Delayed}, {b.consumers, int64(bl.Consumers)}} {
		if g.v != transport.BacklogUnknown {
			obs.ObserveInt64(g.inst, g.v, set)
		}
	}
	for _, p := range bl.Partitions {
		pkv := append(kv[:len(kv):len(kv)], semconv.MessagingDestinationPartitionID(strconv.Itoa(p.Partition)))
		obs.ObserveInt64(b.lag, p.Lag, metric.WithAttributeSet(attribute.NewSet(pkv...)))
	}
}
