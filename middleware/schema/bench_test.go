package schema_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/schema"
)

// benchOrder is a 1 KiB JSON order.
func benchOrder() []byte {
	var b strings.Builder
	b.WriteString(`{"id":"o-123456","total":1234.5,"items":[`)
	for i := 0; b.Len() < 1000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","qty":%d,"name":"Widget number %d with a name"}`, i, i+1, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkValidate: one 1 KiB payload checked against each schema kind.
func BenchmarkValidate(b *testing.B) {
	doc := benchOrder()
	js := schema.MustJSON("order.v1", []byte(orderSchema))
	orderDesc, _ := testDescriptors(b)
	pb := validOrder(b, orderDesc)
	for len(pb) < 1024 { // pad with more items (field 2) up to 1 KiB
		pb = append(pb, validOrder(b, orderDesc)...)
	}
	ps := schema.Protobuf(orderDesc)
	for _, tc := range []struct {
		name    string
		s       schema.Schema
		payload []byte
	}{{"json", js, doc}, {"protobuf", ps, pb}} {
		b.Run(tc.name, func(b *testing.B) {
			if err := tc.s.Validate(tc.payload); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(tc.payload)))
			b.ReportAllocs()
			for b.Loop() {
				_ = tc.s.Validate(tc.payload)
			}
		})
	}
}

// BenchmarkMiddleware: each half of the validator per message (1 KiB JSON).
func BenchmarkMiddleware(b *testing.B) {
	v := newValidator(b, schema.Config{})
	doc := benchOrder()
	ctx := context.Background()
	b.Run("consume", func(b *testing.B) {
		h := v.Consume()(func(context.Context, *message.Message) error { return nil })
		m := &message.Message{ID: "x", Topic: "orders", Payload: doc}
		b.ReportAllocs()
		for b.Loop() {
			if err := h(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("publish", func(b *testing.B) {
		p := v.Publish()(func(context.Context, string, []*message.Message) error { return nil })
		msgs := []*message.Message{{ID: "x", Payload: doc}}
		b.ReportAllocs()
		for b.Loop() {
			if err := p(ctx, "orders", msgs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
