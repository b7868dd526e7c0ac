// Package codec turns values into message payloads and back, and records the payload's media
// type in the courier-content-type header so consumers can check what they were sent.
//
// Typed helpers built on generics keep handlers free of decoding boilerplate:
//
//	pub.Publish(ctx, "orders", codec.MustEncode(codec.JSON, Order{ID: 42}))
//	sub.Run(ctx, codec.Handle(codec.JSON, func(ctx context.Context, o Order, m *message.Message) error { … }))
//
// A payload that does not decode is a permanent failure: retrying cannot fix it, so the
// message goes straight to the dead-letter topic.
package codec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/courierhq/courier/message"
)

// Codec encodes values to payloads and decodes them back.
type Codec interface {
	// ContentType is the media type written to message.HeaderContentType.
	ContentType() string
	// Marshal encodes v.
	Marshal(v any) ([]byte, error)
	// Unmarshal decodes data into v, a pointer.
	Unmarshal(data []byte, v any) error
}

// ErrContentType is returned (wrapped, and marked permanent) when a message's content type
// header names another codec.
var ErrContentType = errors.New("codec: content type mismatch")

// The built-in codecs.
var (
	// JSON uses encoding/json; content type application/json.
	JSON Codec = jsonCodec{}
	// Raw passes []byte through (and accepts *[]byte to decode); content type
	// application/octet-stream.
	Raw Codec = rawCodec{}
	// Proto uses google.golang.org/protobuf for proto.Message values; content type
	// application/x-protobuf.
	Proto Codec = protoCodec{}
)

type jsonCodec struct{}

func (jsonCodec) ContentType() string                { return "application/json" }
func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }

type rawCodec struct{}

func (rawCodec) ContentType() string { return "application/octet-stream" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case string:
		return []byte(b), nil
	default:
		return nil, fmt.Errorf("codec: raw encodes []byte or string, not %T", v)
	}
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	switch p := v.(type) {
	case *[]byte:
		*p = append((*p)[:0], data...)
		return nil
	case *string:
		*p = string(data)
		return nil
	default:
		return fmt.Errorf("codec: raw decodes into *[]byte or *string, not %T", v)
	}
}

type protoCodec struct{}

func (protoCodec) ContentType() string { return "application/x-protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	pm, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec: proto encodes proto.Message, not %T", v)
	}
	return proto.Marshal(pm)
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	pm, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec: proto decodes into a proto.Message, not %T", v)
	}
	return proto.Unmarshal(data, pm)
}

// Encode returns a message whose payload is v encoded with c, with the content type header set.
func Encode[T any](c Codec, v T) (*message.Message, error) {
	b, err := c.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: encode %T as %s: %w", v, c.ContentType(), err)
	}
	m := &message.Message{Payload: b}
	m.SetHeader(message.HeaderContentType, c.ContentType())
	return m, nil
}

// MustEncode is Encode for values that always encode (panics otherwise); for examples and
// tests.
func MustEncode[T any](c Codec, v T) *message.Message {
	m, err := Encode(c, v)
	if err != nil {
		panic(err)
	}
	return m
}

// Decode decodes m's payload with c. A content type header naming another codec, or a
// payload that does not decode, gives a permanent error (see message.Permanent). A message
// without the header is decoded as is.
func Decode[T any](c Codec, m *message.Message) (T, error) {
	var v T
	if ct := m.Header(message.HeaderContentType); ct != "" && ct != c.ContentType() {
		return v, message.Permanent(fmt.Errorf("%w: message %s is %q, want %q", ErrContentType, m.ID, ct, c.ContentType()))
	}
	target := any(&v)
	if c == Proto {
		// proto.Message values are pointers: T is *MyProto; allocate the message itself.
		if pm, ok := any(v).(proto.Message); ok {
			nv := pm.ProtoReflect().New().Interface()
			if err := c.Unmarshal(m.Payload, nv); err != nil {
				return v, message.Permanent(fmt.Errorf("codec: decode message %s as %T: %w", m.ID, v, err))
			}
			return nv.(T), nil
		}
	}
	if err := c.Unmarshal(m.Payload, target); err != nil {
		return v, message.Permanent(fmt.Errorf("codec: decode message %s as %T: %w", m.ID, v, err))
	}
	return v, nil
}

// Handle adapts a typed function to a message.Handler: the payload is decoded with c before fn
// is called; a payload that does not decode is dead-lettered without calling fn.
func Handle[T any](c Codec, fn func(ctx context.Context, v T, m *message.Message) error) message.Handler {
	return func(ctx context.Context, m *message.Message) error {
		v, err := Decode[T](c, m)
		if err != nil {
			return err
		}
		return fn(ctx, v, m)
	}
}
