package gcppubsub

import (
	"testing"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/message"
)

// FuzzUnmarshal: whatever attributes a plain publisher sets (a forged courier-id or
// courier-published, goog… names), decoding never panics, and a message keeps an ID.
func FuzzUnmarshal(f *testing.F) {
	f.Add("pubsub-id", "courier-id", "id-1", "courier-published", "2026-12-02T10:00:00Z", "k", []byte("data"))
	f.Add("pubsub-id", "courier-id", "", "courier-published", "not a time", "", []byte(nil))
	f.Add("x", "googclient_x", "v", "", "", "\u00e9", []byte{0xff})
	f.Fuzz(func(t *testing.T, brokerID, n1, v1, n2, v2, key string, data []byte) {
		pm := &pubsub.Message{ID: brokerID, Data: data, OrderingKey: key, Attributes: map[string]string{n1: v1, n2: v2}}
		var m message.Message
		unmarshal(&m, pm)
		if m.ID == "" && brokerID != "" {
			t.Fatalf("empty ID for %+v", pm)
		}
	})
}
