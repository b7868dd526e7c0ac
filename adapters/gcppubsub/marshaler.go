package gcppubsub

import (
	"fmt"
	"strings"
	"time"

	"github.com/courierhq/courier/transport/driver"

	"cloud.google.com/go/pubsub/v2"

	"github.com/courierhq/courier/message"
)

// The mapping between a Courier message and a Pub/Sub message:
//
//	Message.ID          attribute courier-id (Pub/Sub assigns its own message ID, which
//	                    becomes Message.ID only for messages published without Courier)
//	Message.Key         OrderingKey
//	Message.Payload     Data
//	Message.Headers     attributes, one each (received "goog…" attributes are left out)
//	Message.PublishTime attribute courier-published (RFC 3339, UTC); Pub/Sub's publish time
//	                    when absent
//	Message.BrokerTime  Pub/Sub's publish time (receive side)
//	Message.Attempt     DeliveryAttempt when the subscription has a dead-letter policy,
//	                    else counted by the adapter (receive side)

// timeFormatter formats publish times, reusing the last result: the messages of one batch
// usually share their PublishTime.
type timeFormatter struct {
	t time.Time
	s string
}

func (f *timeFormatter) format(t time.Time) string {
	if f.s == "" || !t.Equal(f.t) {
		f.t, f.s = t, t.UTC().Format(time.RFC3339Nano)
	}
	return f.s
}

// marshal builds the Pub/Sub message for m, or says why Pub/Sub would refuse it. The error
// wraps driver.ErrInvalidMessage.
func marshal(m *message.Message, tf *timeFormatter) (*pubsub.Message, error) {
	if len(m.Key) > MaxOrderingKeyBytes {
		return nil, fmt.Errorf("%w: key is %d bytes; Pub/Sub ordering keys are at most %d", driver.ErrInvalidMessage, len(m.Key), MaxOrderingKeyBytes)
	}
	if len(m.ID) > MaxAttributeValueBytes {
		return nil, fmt.Errorf("%w: ID is %d bytes; Pub/Sub carries it in an attribute of at most %d", driver.ErrInvalidMessage, len(m.ID), MaxAttributeValueBytes)
	}
	attrs := make(map[string]string, len(m.Headers)+2)
	for k, v := range m.Headers {
		if k == message.HeaderID || k == message.HeaderPublishTime {
			continue // Message.ID and PublishTime are authoritative
		}
		if strings.HasPrefix(k, "goog") {
			return nil, fmt.Errorf("%w: header %q: Pub/Sub reserves attribute names starting with \"goog\"", driver.ErrInvalidMessage, k)
		}
		attrs[k] = v
	}
	if len(attrs) > MaxAttributes-2 {
		return nil, fmt.Errorf("%w: %d headers; Pub/Sub allows %d attributes, of which Courier uses 2", driver.ErrInvalidMessage, len(attrs), MaxAttributes)
	}
	attrs[message.HeaderID] = m.ID
	if !m.PublishTime.IsZero() {
		attrs[message.HeaderPublishTime] = tf.format(m.PublishTime)
	}
	return &pubsub.Message{Data: m.Payload, Attributes: attrs, OrderingKey: m.Key}, nil
}

// unmarshal fills dst from a received Pub/Sub message. Topic, Subscription and Attempt are the
// caller's.
func unmarshal(dst *message.Message, pm *pubsub.Message) {
	dst.ID = pm.ID
	dst.Key = pm.OrderingKey
	dst.Payload = pm.Data
	dst.BrokerTime = pm.PublishTime
	dst.PublishTime = pm.PublishTime
	n := len(pm.Attributes)
	if id, ok := pm.Attributes[message.HeaderID]; ok {
		if id != "" { // an empty one (a plain publisher's) must not hide Pub/Sub's own ID
			dst.ID = id
		}
		n--
	}
	if s, ok := pm.Attributes[message.HeaderPublishTime]; ok {
		n--
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			dst.PublishTime = t
		}
	}
	if n > 0 {
		h := make(message.Headers, n)
		for k, v := range pm.Attributes {
			// "goog…" attributes are the client's own (trace propagation); they could not
			// be published again (a dead-letter copy, say), so they stay on the native
			// message, reachable through Message.As.
			if k != message.HeaderID && k != message.HeaderPublishTime && !strings.HasPrefix(k, "goog") {
				h[k] = v
			}
		}
		if len(h) > 0 {
			dst.Headers = h
		}
	}
}
