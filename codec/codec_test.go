package codec_test

import (
	"context"
	"errors"
	"testing"

	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/courierhq/courier/codec"
	"github.com/courierhq/courier/message"
)

type order struct {
	ID    int     `json:"id"`
	Total float64 `json:"total"`
}

func TestJSONRoundTrip(t *testing.T) {
	m, err := codec.Encode(codec.JSON, order{ID: 7, Total: 9.5})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header(message.HeaderContentType); got != "application/json" {
		t.Errorf("content type %q", got)
	}
	o, err := codec.Decode[order](codec.JSON, m)
	if err != nil || o != (order{7, 9.5}) {
		t.Fatalf("decode = %+v, %v", o, err)
	}
}

func TestProtoRoundTrip(t *testing.T) {
	m := codec.MustEncode(codec.Proto, wrapperspb.String("hello"))
	v, err := codec.Decode[*wrapperspb.StringValue](codec.Proto, m)
	if err != nil || v.GetValue() != "hello" {
		t.Fatalf("decode = %v, %v", v, err)
	}
}

func TestRaw(t *testing.T) {
	m := codec.MustEncode(codec.Raw, []byte{0, 1, 2})
	b, err := codec.Decode[[]byte](codec.Raw, m)
	if err != nil || len(b) != 3 || b[2] != 2 {
		t.Fatalf("decode = %v, %v", b, err)
	}
	if _, err := codec.Encode(codec.Raw, 42); err == nil {
		t.Error("raw encoded an int")
	}
}

func TestDecodeFailuresArePermanent(t *testing.T) {
	tests := []struct {
		name string
		m    *message.Message
		want error
	}{
		{"bad JSON", &message.Message{ID: "1", Payload: []byte("{not json")}, nil},
		{"wrong content type", &message.Message{ID: "2", Payload: []byte(`{}`), Headers: message.Headers{message.HeaderContentType: "application/x-protobuf"}}, codec.ErrContentType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := codec.Decode[order](codec.JSON, tc.m)
			if !message.IsPermanent(err) {
				t.Errorf("err = %v; want permanent", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err = %v; want %v", err, tc.want)
			}
		})
	}
}

func TestHandleSkipsFnOnBadPayload(t *testing.T) {
	called := false
	h := codec.Handle(codec.JSON, func(context.Context, order, *message.Message) error { called = true; return nil })
	if err := h(context.Background(), &message.Message{Payload: []byte("nope")}); !message.IsPermanent(err) {
		t.Errorf("err = %v; want permanent", err)
	}
	if called {
		t.Error("fn called with an undecodable payload")
	}
	var got order
	h = codec.Handle(codec.JSON, func(_ context.Context, o order, _ *message.Message) error { got = o; return nil })
	if err := h(context.Background(), codec.MustEncode(codec.JSON, order{ID: 3})); err != nil || got.ID != 3 {
		t.Errorf("got %+v, %v", got, err)
	}
}
