// Package conformance is the test suite every Courier adapter passes. An adapter's test calls
// Run with a Harness that opens connections to the broker under test; the suite then checks
// the behaviour Courier promises on every broker (see DESIGN.md, "Guarantees").
//
// Each test names the Feature it needs. An adapter whose broker cannot do something lists the
// feature in Harness.Unsupported with the reason, the test is skipped with that reason, and the
// adapter's package documentation says the same.
//
// Usage, in an adapter's _test.go:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			Open: func(ctx context.Context, t testing.TB) *transport.Conn { … },
//		})
//	}
package conformance

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/courierhq/courier/transport"
)

// Feature names a capability some brokers lack.
type Feature string

// Features the suite knows.
const (
	// FanOut: several subscriptions on one topic each receive every message.
	FanOut Feature = "fan-out"
	// Reconnect: messages published before a connection closed are delivered to a new
	// connection (the broker persists them). memory:// lacks it by design.
	Reconnect Feature = "reconnect"
	// NativeDeadLetter: SubscriberConfig.NativeDeadLetter works.
	NativeDeadLetter Feature = "native-dead-letter"
	// DeliveryOrder: the broker delivers one subscription's messages in the order they were
	// published (per key at least), so the engine's per-key lanes can keep that order. SQS
	// standard queues lack it; KeyOrderUnderConcurrency then checks only that one key's
	// messages never run concurrently.
	DeliveryOrder Feature = "delivery-order"
	// CompetingConsumers: two subscribers on one subscription share its messages (Kafka
	// shares by partition, so a one-partition topic cannot).
	CompetingConsumers Feature = "competing-consumers"
)

// Harness tells the suite how to reach the broker under test.
type Harness struct {
	// Open returns a new connection to the broker under test. It is called several times per
	// test; the suite closes every connection it opens. Required.
	Open func(ctx context.Context, t testing.TB) *transport.Conn

	// NewTopic returns a topic name no other test uses. Default: "c" followed by the test's
	// name and a random suffix, using letters, digits and '-' only (valid on every broker).
	NewTopic func(t testing.TB) string

	// Unsupported lists the features the broker lacks, each with the reason the adapter's
	// documentation gives.
	Unsupported map[Feature]string

	// Timeout bounds each wait for deliveries. Default 15s; raise it for slow brokers.
	Timeout time.Duration

	// Scale multiplies message counts (default 1). Slow brokers (pstest) use less than 1.
	Scale float64
}

func (h *Harness) fill() {
	if h.Timeout == 0 {
		h.Timeout = 15 * time.Second
	}
	if h.Scale == 0 {
		h.Scale = 1
	}
	if h.NewTopic == nil {
		h.NewTopic = DefaultTopicName
	}
}

// n scales a message count, keeping at least min(n, 10).
func (h *Harness) n(count int) int {
	return max(min(count, 10), int(float64(count)*h.Scale))
}

func (h *Harness) supports(f Feature) bool {
	_, lacks := h.Unsupported[f]
	return !lacks
}

func (h *Harness) require(t *testing.T, f Feature) {
	t.Helper()
	if why, ok := h.Unsupported[f]; ok {
		t.Skipf("broker lacks feature %q: %s", f, why)
	}
}

var nameSeq atomic.Int64

// DefaultTopicName returns "c-<test>-<seq>-<random>" with only letters, digits and '-',
// at most 60 bytes: a name every supported broker accepts.
func DefaultTopicName(t testing.TB) string {
	var b strings.Builder
	b.WriteString("c-")
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	for _, r := range strings.ToLower(name) {
		if b.Len() >= 36 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	fmt.Fprintf(&b, "-%d-%06x", nameSeq.Add(1), rand.Uint32()&0xffffff)
	return b.String()
}

// fastRetry keeps the suite quick: retries 20–100 ms apart.
var fastRetry = transport.RetryPolicy{MaxAttempts: 5, InitialDelay: 20 * time.Millisecond, MaxDelay: 100 * time.Millisecond}
