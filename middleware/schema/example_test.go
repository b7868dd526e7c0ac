package schema_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/transport"
)

func ExampleValidator() {
	ctx := context.Background()
	conn, _ := memory.Open(memory.Config{})
	defer conn.Close(ctx)

	reg := schema.NewRegistry()
	_ = reg.Bind("orders", schema.MustJSON("order.v1", []byte(`{
		"type": "object", "required": ["id"],
		"properties": {"id": {"type": "string"}, "total": {"type": "number", "minimum": 0}}}`)))
	v, _ := schema.New(schema.Config{Registry: reg})

	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})
	err := pub.Publish(ctx, "orders",
		&message.Message{ID: "a", Payload: []byte(`{"id":"a","total":5}`)},
		&message.Message{ID: "b", Payload: []byte(`{"id":"b","total":-5}`)})

	var pe *transport.PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			fmt.Printf("message %d (%s): %v\n", f.Index, f.ID, f.Err)
		}
	}
	var ve *schema.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.Violations[0].InstanceLocation, ve.Violations[0].KeywordLocation)
	}
	// Output:
	// message 1 (b): courier: invalid message: schema "order.v1": at "/total": minimum: got -5, want 0 (#/properties/total/minimum)
	// /total #/properties/total/minimum
}
