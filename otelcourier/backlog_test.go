package otelcourier_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

// gaugeValues collects once and returns each gauge's points by metric name and
// consumer group.
func gaugeValues(t *testing.T, r *sdkmetric.ManualReader) map[string]map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				continue
			}
			for _, p := range g.DataPoints {
				sub, _ := p.Attributes.Value(attribute.Key("messaging.consumer.group.name"))
				if out[m.Name] == nil {
					out[m.Name] = map[string]int64{}
				}
				out[m.Name][sub.AsString()] = p.Value
			}
		}
	}
	return out
}

// TestObserveBacklog: the gauges read Conn.Backlog at each collection (500 waiting, then 0
// after consuming); a subscription whose reading fails is left out, not reported as 0.
func TestObserveBacklog(t *testing.T) {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.EnsureSubscription(ctx, "orders", "billing"); err != nil {
		t.Fatal(err)
	}
	msgs := make([]*message.Message, 500)
	for i := range msgs {
		msgs[i] = message.New([]byte("x"))
	}
	if err := conn.Publish(ctx, "orders", msgs...); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	subs := []otelcourier.Subscription{{Topic: "orders", Subscription: "billing"}, {Topic: "orders", Subscription: "missing"}}
	reg, err := otelcourier.ObserveBacklog(conn, subs, otelcourier.BacklogConfig{MeterProvider: mp})
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Unregister()

	got := gaugeValues(t, reader)
	if v := got[otelcourier.MetricBacklogMessages]["billing"]; v != 500 {
		t.Errorf("%s = %d; want 500 (all: %v)", otelcourier.MetricBacklogMessages, v, got)
	}
	if _, ok := got[otelcourier.MetricBacklogMessages]["missing"]; ok {
		t.Errorf("a subscription whose reading fails was reported: %v", got)
	}

	sub, err := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var n atomic.Int64
	runCtx, stop := context.WithCancel(ctx)
	go func() {
		defer close(done)
		_ = sub.Run(runCtx, func(context.Context, *message.Message) error {
			if n.Add(1) == 500 {
				stop()
			}
			return nil
		})
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		stop()
		<-done
		t.Fatalf("handled %d of 500 in a minute", n.Load())
	}
	_ = sub.Close(ctx)
	if v, ok := gaugeValues(t, reader)[otelcourier.MetricBacklogMessages]["billing"]; !ok || v != 0 {
		t.Errorf("after consuming: %s = %d (reported %v); want 0", otelcourier.MetricBacklogMessages, v, ok)
	}
}

type noBacklog struct{}

func (noBacklog) Capabilities() transport.Capabilities { return transport.Capabilities{Name: "pubsub"} }
func (noBacklog) Backlog(context.Context, string, string) (transport.Backlog, error) {
	return transport.Backlog{}, transport.ErrUnsupported
}

func TestObserveBacklogUnsupported(t *testing.T) {
	_, err := otelcourier.ObserveBacklog(noBacklog{}, nil, otelcourier.BacklogConfig{})
	if !errors.Is(err, transport.ErrUnsupported) {
		t.Fatalf("err = %v; want ErrUnsupported", err)
	}
	if _, err := otelcourier.ObserveBacklog(noBacklog{}, nil, otelcourier.BacklogConfig{Timeout: -1}); err == nil {
		t.Fatal("a negative timeout was accepted")
	}
}
