package chain_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/middleware/store/memstore"
)

// benchJSON is a 1 KiB order document and its schema.
func benchJSON() (doc []byte, sch *schema.JSONSchema) {
	var b strings.Builder
	b.WriteString(`{"id":"ord-123456","customer":{"id":"c-42","email":"a@example.com","tier":"gold"},"currency":"EUR","total":1234.5,"items":[`)
	for i := 0; b.Len() < 1000; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"sku":"SKU-%06d","name":"Widget number %d","qty":%d,"price":%d.99}`, i, i, i+1, 10+i)
	}
	b.WriteString(`]}`)
	sch = schema.MustJSON("order", []byte(`{"type":"object","required":["id","items","total"],"properties":{
		"id":{"type":"string","minLength":1},"total":{"type":"number","minimum":0},"currency":{"enum":["EUR","USD"]},
		"customer":{"type":"object","properties":{"email":{"type":"string"}}},
		"items":{"type":"array","minItems":1,"items":{"type":"object","required":["sku","qty","price"],"properties":{
			"sku":{"type":"string","pattern":"^SKU-[0-9]+$"},"qty":{"type":"integer","minimum":1},"price":{"type":"number","minimum":0}}}}}}`))
	return []byte(b.String()), sch
}

// benchProto is a ~1 KiB google.protobuf.Struct and its descriptor-based schema.
func benchProto(b *testing.B) ([]byte, *schema.ProtoSchema) {
	fields := map[string]any{}
	for i := 0; i < 24; i++ {
		fields[fmt.Sprintf("field_%02d", i)] = fmt.Sprintf("value number %d of the document", i)
	}
	s, err := structpb.NewStruct(fields)
	if err != nil {
		b.Fatal(err)
	}
	p, err := proto.MarshalOptions{Deterministic: true}.Marshal(s)
	if err != nil {
		b.Fatal(err)
	}
	return p, schema.Protobuf(s.ProtoReflect().Descriptor())
}

// BenchmarkChain measures the recommended chain's cost per message (1 KiB payload), without
// the broker: the consume half on a delivered message (ordering and idempotency on the
// in-process store, every message new and next in its key), the publish half on a batch of
// one. Variants: which schema kind, with or without encryption, and only this package's
// features (no ordering/idempotency).
func BenchmarkChain(b *testing.B) {
	jsonDoc, jsonSchema := benchJSON()
	protoDoc, protoSchema := benchProto(b)
	kr, err := encryption.NewKeyring("k1", map[string][]byte{"k1": make([]byte, 32)})
	if err != nil {
		b.Fatal(err)
	}
	enc, _ := encryption.New(encryption.Config{Keyring: kr})
	cls, _ := retry.New(retry.Config{Rules: []retry.Rule{retry.PermanentIs(context.Canceled)}})

	type variant struct {
		name       string
		payload    []byte
		sch        schema.Schema
		encrypt    bool
		withStores bool
	}
	variants := []variant{
		{"full/json", jsonDoc, jsonSchema, false, true},
		{"full/proto", protoDoc, protoSchema, false, true},
		{"full/no-schema", protoDoc, nil, false, true},
		{"full/proto+encryption", protoDoc, protoSchema, true, true},
		{"full/json+encryption", jsonDoc, jsonSchema, true, true},
		{"no-stores/proto", protoDoc, protoSchema, false, false},
		{"no-stores/json", jsonDoc, jsonSchema, false, false},
	}
	// build makes the variant's chain with a fresh store, so that no run sees the IDs and
	// sequence numbers of an earlier one as duplicates.
	build := func(v variant) *chain.Chain {
		var steps []chain.Step
		if v.withStores {
			st := memstore.New(memstore.Options{})
			ord, _ := ordering.New(ordering.Config{Store: st})
			idem, _ := idempotency.New(idempotency.Config{Store: st})
			steps = append(steps, chain.Ordering(ord), chain.Idempotency(idem))
		}
		if v.encrypt {
			steps = append(steps, chain.Encryption(enc))
		}
		if v.sch != nil {
			reg := schema.NewRegistry()
			_ = reg.Bind("orders", v.sch)
			val, _ := schema.New(schema.Config{Registry: reg, Redact: v.encrypt})
			steps = append(steps, chain.Schema(val))
		}
		steps = append(steps, chain.Retry(cls))
		return chain.MustNew(steps...)
	}
	for _, v := range variants {
		b.Run("consume/"+v.name, func(b *testing.B) {
			c := build(v)
			// Prepare b.N deliveries: published through the chain (stamped, encrypted), then
			// given the receive-side fields.
			pub := message.ChainPublish(c.Publish()...)
			var sent []*message.Message
			keep := pub(func(_ context.Context, _ string, msgs []*message.Message) error {
				sent = append(sent, msgs...)
				return nil
			})
			ctx := context.Background()
			batch := make([]*message.Message, 0, 100)
			for i := 0; i < b.N; i += len(batch) {
				batch = batch[:0]
				for j := i; j < min(i+100, b.N); j++ {
					batch = append(batch, &message.Message{ID: fmt.Sprintf("id-%d", j), Key: fmt.Sprintf("key-%d", j%100), Payload: v.payload})
				}
				if err := keep(ctx, "orders", batch); err != nil {
					b.Fatal(err)
				}
			}
			for _, m := range sent {
				m.Topic, m.Subscription, m.Attempt = "orders", "billing", 1
			}
			handled := 0
			h := c.Handler(func(context.Context, *message.Message) error { handled++; return nil })
			b.SetBytes(int64(len(v.payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := h(ctx, sent[i]); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if handled != b.N {
				b.Fatalf("the handler ran %d times for %d new messages", handled, b.N)
			}
		})
		b.Run("publish/"+v.name, func(b *testing.B) {
			c := build(v)
			pub := message.ChainPublish(c.Publish()...)(func(context.Context, string, []*message.Message) error { return nil })
			ctx := context.Background()
			msgs := make([]*message.Message, b.N)
			for i := range msgs {
				msgs[i] = &message.Message{ID: fmt.Sprintf("id-%d", i), Key: fmt.Sprintf("key-%d", i%100), Payload: v.payload}
			}
			one := make([]*message.Message, 1)
			b.SetBytes(int64(len(v.payload)))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				one[0] = msgs[i]
				if err := pub(ctx, "orders", one); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
