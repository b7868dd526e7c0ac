package kafka

import (
	"testing"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
)

// FuzzFromRecord: whatever a plain producer puts in a record's key and headers (repeated
// names, invalid UTF-8, an empty or forged courier-id), decoding never panics and gives a
// non-empty ID.
func FuzzFromRecord(f *testing.F) {
	f.Add([]byte("k"), "courier-id", []byte("id-1"), "x", []byte("v"), []byte("payload"), int64(7))
	f.Add([]byte(nil), "courier-id", []byte(""), "", []byte("\xff"), []byte(nil), int64(-1))
	f.Add([]byte("\xfe"), "courier-published", []byte("garbage"), "courier-id", []byte("dup"), []byte{0}, int64(1<<62))
	f.Fuzz(func(t *testing.T, key []byte, n1 string, v1 []byte, n2 string, v2 []byte, value []byte, offset int64) {
		r := &kafka.Message{Topic: "t", Partition: 1, Offset: offset, Key: key, Value: value,
			Headers: []kafka.Header{{Key: n1, Value: v1}, {Key: n2, Value: v2}}}
		var m message.Message
		fromRecord(&m, r, "s")
		if m.ID == "" {
			t.Fatalf("empty ID for %+v", r)
		}
		if m.Attempt != 1 {
			t.Fatalf("attempt %d", m.Attempt)
		}
	})
}
