package gcppubsub

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/courierhq/courier/transport/driver"
)

// maxIDLen is the longest topic or subscription ID Pub/Sub accepts.
const maxIDLen = 255

// subscriptionSep joins the topic and the subscription name in a subscription ID. Courier
// names rarely contain "~" (Pub/Sub allows it), so the joined ID reads back unambiguously.
const subscriptionSep = "~"

// subscriptionIDFor returns the Pub/Sub subscription ID of Courier subscription sub on topic:
// "<prefix><topic>~<sub>". Pub/Sub subscription IDs are project-wide while Courier's
// subscription names are per topic (as on Kafka, RabbitMQ with its per-topic queues, and SQS),
// so the ID names the topic too: one group name ("billing") on two topics is two
// subscriptions, and so are their ".dlq" keepers. An ID longer than Pub/Sub's 255 characters
// keeps its first 238 characters and ends in "~" and 16 hex digits of the SHA-256 of the whole ID, so it stays
// stable and distinct.
func subscriptionIDFor(prefix, topic, sub string) (string, error) {
	id := prefix + topic + subscriptionSep + sub
	if len(id) > maxIDLen {
		sum := sha256.Sum256([]byte(id))
		h := hex.EncodeToString(sum[:8])
		id = id[:maxIDLen-len(subscriptionSep)-len(h)] + subscriptionSep + h
	}
	if err := checkID("subscription", id); err != nil {
		return "", fmt.Errorf("%w: %v", driver.ErrInvalidTopic, err)
	}
	return id, nil
}
