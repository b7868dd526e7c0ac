package otelcourier_test

import (
	"context"
	"fmt"
	"log"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/otelcourier"
	"github.com/courierhq/courier/transport"
)

// Install the SDK's providers globally (sdktrace.NewTracerProvider, sdkmetric.NewMeterProvider
// with the exporters of your choice), W3C propagation, and set the Observer on the connection:
// every publisher and subscriber of the connection is traced and measured.
func Example() {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	obs, err := otelcourier.New(otelcourier.Config{}) // the global providers and propagator
	if err != nil {
		log.Fatal(err)
	}
	defer obs.Close()
	ctx := context.Background()
	conn, err := transport.OpenConfig(ctx, "memory://", transport.ConnConfig{Observer: obs})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close(ctx)
	// A publish in a traced request carries its trace context in the message's headers; the
	// handler's ctx continues that trace.
	err = conn.Publish(ctx, "orders", &message.Message{Payload: []byte(`{"order":42}`)})
	fmt.Println(err)
	// Output: <nil>
}

// The messaging.system attribute for Courier's adapters.
func ExampleSystem() {
	for _, b := range []string{"kafka", "rabbitmq", "sqs", "pubsub", "memory"} {
		fmt.Println(b, "→", otelcourier.System(b))
	}
	// Output:
	// kafka → kafka
	// rabbitmq → rabbitmq
	// sqs → aws_sqs
	// pubsub → gcp_pubsub
	// memory → memory
}
