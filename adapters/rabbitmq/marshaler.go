package rabbitmq

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/message"
)

// Mapping between a Courier message and an AMQP message (basic.publish / basic.deliver):
//
//	Message.ID           properties.message-id; header courier-id if longer than 255 bytes;
//	                     on receive without either, derivedID (stable across redeliveries)
//	Message.Key          header courier-key, and the routing key (SHA-256 hex if the key
//	                     is longer than 255 bytes); on receive without courier-key, the
//	                     routing key (unless published to the default exchange)
//	Message.Payload      body
//	Message.Headers      headers (string values); on receive other scalar values are
//	                     formatted as text, tables and arrays are left out
//	Message.PublishTime  properties.timestamp (whole seconds, as AMQP defines it); with
//	                     Config.PrecisePublishTime also header courier-published, an AMQP
//	                     long-long of nanoseconds since the Unix epoch (a third of the
//	                     bytes of RFC 3339 text, which is read too)
//	Message.Attempt      see attemptOf
//	every message        delivery-mode 2 (persistent)
//
// Headers RabbitMQ itself adds (x-death, x-first-death-*, x-last-death-*,
// x-delivery-count) are not copied into Message.Headers; Message.As gives the whole
// amqp091.Delivery.

// brokerHeaders are headers RabbitMQ sets; they stay out of Message.Headers and are not
// copied when a message is republished for a delayed retry.
var brokerHeaders = []string{"x-death", "x-delivery-count", "x-first-death-exchange", "x-first-death-queue",
	"x-first-death-reason", "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason"}

func isBrokerHeader(k string) bool {
	if !strings.HasPrefix(k, "x-") {
		return false
	}
	for _, b := range brokerHeaders {
		if k == b {
			return true
		}
	}
	return false
}

// routingKey returns the routing key for a message key: the key itself when it fits an AMQP
// short string, else its SHA-256 in hex (stable, so consistent-hash routing still works).
func routingKey(key string) string {
	if len(key) <= maxShortString {
		return key
	}
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// toPublishing maps a message onto an AMQP publishing, putting its headers into h (an
// empty table the caller provides and may reuse once the publishing is sent).
func toPublishing(m *message.Message, h amqp.Table, precise bool) amqp.Publishing {
	for k, v := range m.Headers {
		h[k] = v
	}
	p := amqp.Publishing{
		DeliveryMode: amqp.Persistent,
		Body:         m.Payload,
	}
	if len(m.ID) <= maxShortString {
		p.MessageId = m.ID
	} else {
		h[message.HeaderID] = m.ID
	}
	if m.Key != "" {
		h[message.HeaderKey] = m.Key
	}
	if !m.PublishTime.IsZero() {
		p.Timestamp = m.PublishTime
		if precise {
			h[message.HeaderPublishTime] = m.PublishTime.UnixNano()
		}
	}
	if len(h) > 0 {
		p.Headers = h
	}
	return p
}

// headerBytes estimates the size of the AMQP content header frame of m: the property flags
// and fixed fields, the short strings, and the header table.
func headerBytes(m *message.Message) int {
	n := 96 + len(m.ID) + len(message.HeaderKey) + 6 + len(m.Key) + len(message.HeaderPublishTime) + 10
	if len(m.ID) > maxShortString {
		n += len(message.HeaderID) + 6 + len(m.ID)
	}
	for k, v := range m.Headers {
		n += 1 + len(k) + 5 + len(v)
	}
	return n
}

// publishedID returns the Courier message ID of a publishing or a returned message.
func publishedID(messageID string, h amqp.Table) string {
	if id, ok := h[message.HeaderID].(string); ok {
		return id
	}
	return messageID
}

// fromDelivery fills m from d. Reserved transport headers (ID, key, publish time, the retry
// attempt) become fields; the rest become Headers. A message from a plain AMQP producer gets
// its key from the routing key when it has no courier-key header (not when it was published
// to the default exchange, whose routing key is a queue name), and an ID from derivedID when
// it has no message-id.
func fromDelivery(m *message.Message, d *amqp.Delivery) {
	fillFields(m, d)
	if m.Key == "" && d.Exchange != "" {
		if _, ok := d.Headers[message.HeaderKey]; !ok {
			m.Key = d.RoutingKey
		}
	}
	if m.ID == "" {
		m.ID = derivedID(d)
	}
}

// derivedID is the ID of a delivery that carries none: "amqp-" and 32 hex digits of the
// SHA-256 of what a redelivery leaves unchanged — the body, the properties a producer sets
// (content type and encoding, correlation ID, reply-to, type, app ID, timestamp)
// and its headers other than the ones RabbitMQ and Courier's retries add. So the broker's
// redeliveries, Courier's delayed retries (whose copy carries the ID as message-id) and
// dead-letter copies keep the ID, and idempotency works for plain producers. Two messages a
// producer sends with identical contents and properties share it: a producer that may send the
// same bytes twice as distinct messages must set message-id (or a timestamp).
func derivedID(d *amqp.Delivery) string {
	h := sha256.New()
	for _, f := range []string{d.ContentType, d.ContentEncoding, d.CorrelationId, d.ReplyTo, d.Type, d.AppId,
		strconv.FormatInt(d.Timestamp.Unix(), 10)} {
		fmt.Fprintf(h, "%d:%s;", len(f), f)
	}
	keys := make([]string, 0, len(d.Headers))
	for k := range d.Headers {
		if !isBrokerHeader(k) && k != message.HeaderAttempt {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, _ := headerString(d.Headers[k])
		fmt.Fprintf(h, "%d:%s=%d:%s;", len(k), k, len(v), v)
	}
	h.Write(d.Body)
	return "amqp-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// fillFields is fromDelivery for what the message carries itself.
func fillFields(m *message.Message, d *amqp.Delivery) {
	m.ID = d.MessageId
	m.Payload = d.Body
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	if !d.Timestamp.IsZero() {
		m.PublishTime = d.Timestamp
	}
	if len(d.Headers) == 0 {
		return
	}
	var hs message.Headers
	for k, v := range d.Headers {
		switch k {
		case message.HeaderID:
			if s, ok := v.(string); ok {
				m.ID = s
				continue
			}
		case message.HeaderKey:
			if s, ok := v.(string); ok {
				m.Key = s
				continue
			}
		case message.HeaderPublishTime:
			switch x := v.(type) {
			case int64:
				m.PublishTime = time.Unix(0, x)
				continue
			case string:
				if t, err := time.Parse(time.RFC3339Nano, x); err == nil {
					m.PublishTime = t
					continue
				}
			}
		}
		if isBrokerHeader(k) {
			continue
		}
		s, ok := headerString(v)
		if !ok {
			continue
		}
		if hs == nil {
			hs = make(message.Headers, len(d.Headers))
		}
		hs[k] = s
	}
	m.Headers = hs
}

// headerString formats a scalar AMQP table value; tables and arrays are not headers.
func headerString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		return string(x), true
	case bool:
		return strconv.FormatBool(x), true
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, float32, float64:
		return fmt.Sprint(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339), true
	case amqp.Decimal:
		return fmt.Sprintf("%de-%d", x.Value, x.Scale), true
	}
	return "", false
}

// attemptOf computes a delivery's attempt number (1 for a first delivery):
//
//   - a message that came back from this subscription's delay queue (its most recent
//     x-death entry: reason "expired", queue with delayPrefix) starts from its
//     courier-attempt header, which Nack set on the copy; anywhere else that header is
//     ignored (a dead-letter copy carries it as information only);
//   - then quorum queues add x-delivery-count (requeues of this copy, counted by the
//     broker); classic queues add one if the broker flags the delivery as redelivered
//     (classic queues do not count requeues, so several requeues count as one).
func attemptOf(d *amqp.Delivery, delayPrefix string, quorum bool) (attempt int, fromRetry bool) {
	attempt = 1
	if v, ok := d.Headers[message.HeaderAttempt].(string); ok && cameFromDelay(d.Headers, delayPrefix) {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			attempt, fromRetry = n, true
		}
	}
	if quorum {
		if n, ok := toInt(d.Headers["x-delivery-count"]); ok && n > 0 {
			attempt += n
		}
	} else if d.Redelivered {
		attempt++
	}
	return attempt, fromRetry
}

// cameFromDelay reports whether the most recent dead-lettering of a message was its expiry
// in a delay queue whose name starts with prefix. RabbitMQ puts the most recent event first
// in x-death.
func cameFromDelay(h amqp.Table, prefix string) bool {
	deaths, ok := h["x-death"].([]any)
	if !ok || len(deaths) == 0 {
		return false
	}
	last, ok := deaths[0].(amqp.Table)
	if !ok {
		return false
	}
	q, _ := last["queue"].(string)
	r, _ := last["reason"].(string)
	return r == "expired" && strings.HasPrefix(q, prefix)
}

func toInt(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		return int(x), true
	case int32:
		return int(x), true
	case int16:
		return int(x), true
	case int8:
		return int(x), true
	case int:
		return x, true
	case uint8:
		return int(x), true
	case uint16:
		return int(x), true
	case uint32:
		return int(x), true
	}
	return 0, false
}

// retryPublishing is the copy of a delivery that Nack sends to a delay queue: same body,
// properties and headers (without the broker's x-death bookkeeping), with courier-attempt
// set to the attempt the copy will be. The user-id property is dropped (RabbitMQ checks it
// against the publishing connection's user) and so is a per-message expiration. m is the
// message received from d: a key taken from the routing key goes into courier-key and a
// derived ID into message-id, since the copy travels with the delay queue's routing key.
func retryPublishing(d *amqp.Delivery, m *message.Message, nextAttempt int) amqp.Publishing {
	h := make(amqp.Table, len(d.Headers)+2)
	for k, v := range d.Headers {
		if !isBrokerHeader(k) {
			h[k] = v
		}
	}
	h[message.HeaderAttempt] = strconv.Itoa(nextAttempt)
	if _, ok := h[message.HeaderKey]; !ok && m.Key != "" {
		h[message.HeaderKey] = m.Key
	}
	msgID := d.MessageId
	if _, ok := h[message.HeaderID]; !ok && msgID == "" {
		msgID = m.ID
	}
	return amqp.Publishing{
		Headers:         h,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		Priority:        d.Priority,
		CorrelationId:   d.CorrelationId,
		ReplyTo:         d.ReplyTo,
		MessageId:       msgID,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	}
}
