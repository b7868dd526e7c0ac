// Package schema validates message payloads against schemas, on both sides of the broker,
// from one Validator value so that producers and consumers cannot drift apart:
//
//	reg := schema.NewRegistry()
//	order, _ := schema.JSON("order.v1", orderSchemaJSON) // JSON Schema, draft 2020-12
//	_ = reg.Bind("orders", order)                          // topic "orders" carries order.v1
//	v, _ := schema.New(schema.Config{Registry: reg})
//	pub := conn.Publisher(transport.PublisherConfig{Middleware: []message.PublishMiddleware{v.Publish()}})
//	sub, _ := conn.Subscribe(ctx, "orders", "billing", transport.SubscriberConfig{
//		Middleware: []message.Middleware{v.Consume()}})
//
// # Which schema
//
// A message naming a schema in its message.HeaderSchema header is checked against the schema
// registered under that name (an unregistered name is a violation: the producer claims a
// contract this consumer cannot check). Otherwise the schema bound to the topic applies. A
// message with neither passes unchecked, unless Config.Require is set.
//
// Two kinds of schema are built in: JSON Schema (draft 2020-12 by default, any draft named by
// "$schema"; github.com/santhosh-tekuri/jsonschema/v6) and Protobuf, checked against a message
// descriptor on the wire format itself (field types, nested messages, UTF-8 of proto3 strings,
// required fields of proto2, optionally unknown fields) without decoding into Go values.
// protovalidate rules are not supported. Anything else implements Schema.
//
// # Publish half
//
// Validator.Publish checks every message of a batch before anything reaches the broker. By
// default one invalid message fails the whole batch and nothing of it is sent: the error is a
// *transport.PublishError listing each invalid message by index and ID with the rule it broke
// (instance location and keyword), and errors.Is(err, transport.ErrInvalidMessage) and
// errors.Is(err, ErrInvalid) hold — the same shape as Publish's own checks, so callers handle
// one error type. With Config.PartialSends the valid messages are published and the invalid
// ones are reported in the *transport.PublishError (wrapping ErrInvalid, not
// transport.ErrInvalidMessage, which means "nothing sent"); the middleware inside this one sees
// only the valid messages, and the indexes of any failure it reports are mapped back to the
// caller's batch. This is why the package imports transport: the error users already branch
// on is transport's.
//
// # Consume half
//
// Validator.Consume checks each delivered message before the handler. An invalid message is
// a permanent failure (message.Permanent wrapping a *ValidationError): the engine dead-letters
// it at once, without retries. The dead-letter copy carries the violation twice: in the
// reason header (courier-dlq-reason, the error text) and, because *ValidationError implements
// transport.DeadLetterHeaderer, in message.HeaderSchemaViolation (the violations alone, cut to
// 512 bytes). The copy's payload is the message as received.
//
// Violation messages quote the offending values ("minimum: got -5, want 0") and instance
// locations name the payload's own map keys and array indexes. When payloads are confidential
// — behind decryption — set Config.Redact: violations then name the keyword only, and their
// instance locations keep only words of the schema (declared property names, Protobuf field
// names) with every map key and array index of the payload shown as "*" ("/meta/*",
// "/lines/*/qty"), so nothing derived from the payload reaches errors, logs or dead-letter
// headers (package chain refuses encryption with a validator that does not redact).
//
// Put the validator after decryption on the consume side (a validator cannot read ciphertext)
// and before encryption on the publish side; see package chain for the whole order.
//
// # Cost
//
// Validating JSON decodes the payload into Go values (maps, slices, json.Number): for a 1 KiB
// document this dominates the middleware chain (see the benchmarks). The Protobuf check walks
// the wire format and allocates nothing. A message that passes is handed on unchanged: the
// validator never copies or rewrites payloads or headers.
package schema
