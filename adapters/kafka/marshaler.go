package kafka

import (
	"strconv"

	"github.com/segmentio/kafka-go"

	"github.com/courierhq/courier/message"
)

// The mapping between a Courier message and a Kafka record, both ways:
//
//	Message.Key         ↔ record key (UTF-8 bytes; an empty Key is a null key)
//	Message.Payload     ↔ record value (nil ↔ null value; empty stays empty)
//	Message.ID          ↔ header courier-id (message.HeaderID)
//	Message.Headers     ↔ record headers, one per entry, values as UTF-8 bytes
//	Message.PublishTime ↔ record timestamp (Kafka keeps milliseconds)
//
// On receive, a record without a courier-id header (written by another client) gets the ID
// "<topic>/<partition>/<offset>", stable across redeliveries; a record with several headers of
// one name keeps the last; the courier-id header is not repeated in Message.Headers.
// Message.Attempt is 1 (see the package documentation on delivery attempts) and BrokerTime
// stays zero: kafka-go does not say whether the timestamp is the producer's or the broker's.

// toRecord maps a message to the record the writer sends.
func toRecord(topic string, m *message.Message) kafka.Message {
	r := kafka.Message{Topic: topic, Value: m.Payload, Time: m.PublishTime}
	if m.Key != "" {
		r.Key = []byte(m.Key)
	}
	r.Headers = make([]kafka.Header, 0, len(m.Headers)+1)
	r.Headers = append(r.Headers, kafka.Header{Key: message.HeaderID, Value: []byte(m.ID)})
	for k, v := range m.Headers {
		if k == message.HeaderID {
			continue // the ID travels in its own header; a stale copy must not override it
		}
		r.Headers = append(r.Headers, kafka.Header{Key: k, Value: []byte(v)})
	}
	return r
}

// fromRecord fills m from a fetched record.
func fromRecord(m *message.Message, r *kafka.Message, subscription string) {
	m.Topic, m.Subscription, m.Attempt = r.Topic, subscription, 1
	m.Payload = r.Value
	if len(r.Key) > 0 {
		m.Key = string(r.Key)
	}
	m.PublishTime = r.Time
	for i := range r.Headers {
		h := &r.Headers[i]
		if h.Key == message.HeaderID {
			m.ID = string(h.Value)
			continue
		}
		if m.Headers == nil {
			m.Headers = make(message.Headers, len(r.Headers))
		}
		m.Headers[h.Key] = string(h.Value)
	}
	if m.ID == "" {
		m.ID = recordID(r)
	}
}

// recordID names a record that carries no courier-id header.
func recordID(r *kafka.Message) string {
	b := make([]byte, 0, len(r.Topic)+24)
	b = append(b, r.Topic...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(r.Partition), 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, r.Offset, 10)
	return string(b)
}

// recordSize is the size kafka-go's writer computes for a record (its legacy message-set
// estimate: the writer refuses a whole call when one record exceeds the batch limit, so
// Publish checks each record against it first and fails only the offenders).
func recordSize(r *kafka.Message) int64 {
	n := int64(4 + 1 + 1 + 8) // CRC, magic, attributes, timestamp
	n += 4 + int64(len(r.Key)) + 4 + int64(len(r.Value))
	n += varintLen(int64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		n += varintLen(int64(len(h.Key))) + int64(len(h.Key))
		n += varintLen(int64(len(h.Value))) + int64(len(h.Value))
	}
	return n
}

func varintLen(v int64) int64 {
	u := uint64(v<<1) ^ uint64(v>>63) // zig-zag, as Kafka encodes
	n := int64(1)
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}
