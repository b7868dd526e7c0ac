package kafka

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func TestRecordRoundTrip(t *testing.T) {
	pt := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	tests := []struct {
		name string
		in   message.Message
	}{
		{"full", message.Message{ID: "id-1", Key: "ключ", Payload: []byte{0, 1, 2, 255},
			Headers: message.Headers{"a": "1", "emoji-🚀": "x", "empty": ""}, PublishTime: pt}},
		{"no key, nil payload", message.Message{ID: "id-2", PublishTime: pt}},
		{"empty payload", message.Message{ID: "id-3", Payload: []byte{}, PublishTime: pt}},
		{"stale courier-id header", message.Message{ID: "real", Headers: message.Headers{message.HeaderID: "stale"}, PublishTime: pt}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := toRecord("orders", &tc.in)
			if rec.Topic != "orders" || !rec.Time.Equal(pt) {
				t.Fatalf("record topic=%q time=%v", rec.Topic, rec.Time)
			}
			if (tc.in.Key == "") != (rec.Key == nil) {
				t.Fatalf("key %q mapped to %v; an empty key must be a null key", tc.in.Key, rec.Key)
			}
			ids := 0
			for _, h := range rec.Headers {
				if h.Key == message.HeaderID {
					ids++
				}
			}
			if ids != 1 {
				t.Fatalf("%d courier-id headers; want exactly 1", ids)
			}
			rec.Partition, rec.Offset = 2, 40
			var out message.Message
			fromRecord(&out, &rec, "sub")
			if out.ID != tc.in.ID || out.Key != tc.in.Key || !bytes.Equal(out.Payload, tc.in.Payload) || !out.PublishTime.Equal(pt) {
				t.Errorf("got id=%q key=%q payload=%v time=%v", out.ID, out.Key, out.Payload, out.PublishTime)
			}
			if out.Topic != "orders" || out.Subscription != "sub" || out.Attempt != 1 {
				t.Errorf("receive side topic=%q sub=%q attempt=%d", out.Topic, out.Subscription, out.Attempt)
			}
			want := len(tc.in.Headers)
			if _, ok := tc.in.Headers[message.HeaderID]; ok {
				want--
			}
			if len(out.Headers) != want {
				t.Errorf("headers %v; want %d entries (courier-id is not repeated)", out.Headers, want)
			}
			for k, v := range tc.in.Headers {
				if k != message.HeaderID && out.Headers[k] != v {
					t.Errorf("header %q = %q; want %q", k, out.Headers[k], v)
				}
			}
		})
	}
}

func TestForeignRecordID(t *testing.T) {
	rec := kafka.Message{Topic: "t", Partition: 3, Offset: 1234, Value: []byte("v"),
		Headers: []kafka.Header{{Key: "h", Value: []byte("1")}, {Key: "h", Value: []byte("2")}}}
	var m message.Message
	fromRecord(&m, &rec, "s")
	if m.ID != "t/3/1234" {
		t.Errorf("ID %q; want t/3/1234", m.ID)
	}
	if m.Headers["h"] != "2" {
		t.Errorf("repeated header: %q; want the last value", m.Headers["h"])
	}
}

// TestRecordSize pins recordSize to what kafka-go's writer refuses: a record one byte over
// the batch limit is rejected by WriteMessages itself, one at the limit is not.
func TestRecordSize(t *testing.T) {
	m := &message.Message{ID: "x", Key: "k", Payload: bytes.Repeat([]byte("p"), 1000),
		Headers: message.Headers{"a": strings.Repeat("v", 300)}}
	rec := toRecord("t", m)
	size := recordSize(&rec)
	w := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:1"), BatchBytes: size - 1}
	defer w.Close()
	err := w.WriteMessages(t.Context(), rec)
	var tooLarge kafka.MessageTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("writer with limit size-1: err = %v; want MessageTooLargeError (recordSize must match kafka-go)", err)
	}
	if !errors.Is(kindOf(err), transport.ErrMessageTooLarge) {
		t.Errorf("kindOf(%v) = %v", err, kindOf(err))
	}
	w2 := &kafka.Writer{Addr: kafka.TCP("127.0.0.1:1"), BatchBytes: size, Transport: &kafka.Transport{DialTimeout: 100 * time.Millisecond}}
	defer w2.Close()
	err = w2.WriteMessages(t.Context(), rec)
	if errors.As(err, &tooLarge) {
		t.Fatalf("writer with limit size: refused as too large; recordSize overestimates")
	}
	w2.Transport.(*kafka.Transport).CloseIdleConnections()
}

func TestKindOf(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{kafka.UnknownTopicOrPartition, transport.ErrTopicNotFound},
		{kafka.MessageSizeTooLarge, transport.ErrMessageTooLarge},
		{kafka.TopicAuthorizationFailed, transport.ErrAccessDenied},
		{kafka.SASLAuthenticationFailed, transport.ErrAccessDenied},
		{kafka.NotEnoughReplicas, transport.ErrUnavailable},
		{kafka.LeaderNotAvailable, transport.ErrUnavailable},
		{kafka.InvalidTopic, transport.ErrInvalidTopic},
		{kafka.PolicyViolation, transport.ErrNacked},
		{io.ErrUnexpectedEOF, transport.ErrUnavailable},
		{io.ErrClosedPipe, transport.ErrClosed},
		{fmt.Errorf("x: %w", kafka.WriteErrors{kafka.NotEnoughReplicas}), nil},
		{errors.New("something else"), nil},
	}
	for _, tc := range tests {
		if got := kindOf(tc.err); got != tc.want {
			t.Errorf("kindOf(%v) = %v; want %v", tc.err, got, tc.want)
		}
	}
	err := wrap("write", kafka.NotEnoughReplicas)
	if !errors.Is(err, transport.ErrUnavailable) || !errors.Is(err, kafka.NotEnoughReplicas) {
		t.Errorf("wrap lost a kind: %v", err)
	}
}
