package otelcourier_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/internal/benchkit"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

// sdkObserver is an Observer on the real SDK: every span sampled and handed to a batch
// processor with a discarding exporter, metrics aggregated for a manual reader.
func sdkObserver(b *testing.B) *otelcourier.Observer {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	b.Cleanup(func() {
		_ = tp.Shutdown(context.Background())
		_ = mp.Shutdown(context.Background())
	})
	obs, err := otelcourier.New(otelcourier.Config{TracerProvider: tp, MeterProvider: mp,
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})})
	if err != nil {
		b.Fatal(err)
	}
	return obs
}

// BenchmarkEndToEnd is memory's BenchmarkEndToEnd (publish in batches of 100, handle, ack;
// 256-byte payloads) without an Observer and with the SDK installed: the difference is the
// cost per message of tracing and metrics, both sides.
func BenchmarkEndToEnd(b *testing.B) {
	for _, mode := range []string{"none", "sdk"} {
		for _, conc := range []int{1, 8} {
			b.Run(fmt.Sprintf("observer=%s/concurrency=%d", mode, conc), func(b *testing.B) {
				var obs transport.Observer
				if mode == "sdk" {
					obs = sdkObserver(b)
				}
				benchEndToEnd(b, obs, conc)
			})
		}
	}
}

func benchEndToEnd(b *testing.B, obs transport.Observer, conc int) {
	ctx := context.Background()
	conn, err := memory.Open(memory.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	sub, err := conn.Subscribe(ctx, "bench", "s", transport.SubscriberConfig{Concurrency: conc, Observer: obs})
	if err != nil {
		b.Fatal(err)
	}
	count, done := benchkit.CountTo(b.N)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { _ = sub.Run(rctx, count) }()
	pub := conn.Publisher(transport.PublisherConfig{Observer: obs})
	b.ReportAllocs()
	b.SetBytes(256)
	b.ResetTimer()
	benchkit.PublishN(b, b.N, 256, func(msgs ...*message.Message) error { return pub.Publish(ctx, "bench", msgs...) })
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkObserver measures the Observer's calls alone, on the SDK: one single-message
// Publish (start and end), and one handler call (start, ack event, end).
func BenchmarkObserver(b *testing.B) {
	obs := sdkObserver(b)
	ctx := context.Background()
	b.Run("publish", func(b *testing.B) {
		info := transport.PublishInfo{Broker: "kafka", Topic: "orders"}
		b.ReportAllocs()
		for b.Loop() {
			msgs := []*message.Message{{ID: "id", Payload: []byte("x")}}
			pctx := obs.PublishStart(ctx, info, msgs)
			obs.PublishEnd(pctx, info, msgs, nil)
		}
	})
	b.Run("process", func(b *testing.B) {
		m := &message.Message{ID: "id", Payload: []byte("x"), Attempt: 1, PublishTime: time.Now(),
			Headers: message.Headers{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}}
		d := transport.Delivery{SubscriptionInfo: transport.SubscriptionInfo{Broker: "kafka", Topic: "orders", Subscription: "billing"}, Message: m}
		b.ReportAllocs()
		for b.Loop() {
			pctx := obs.ProcessStart(ctx, d)
			obs.Event(pctx, d, transport.Event{Kind: transport.EventAck})
			obs.ProcessEnd(pctx, d.SubscriptionInfo, nil, time.Millisecond)
		}
	})
}
