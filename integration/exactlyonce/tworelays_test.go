//go:build integration

package exactlyonce

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/outbox"
)

// TestTwoRelayProcesses runs two relays in separate processes on one outbox while committed
// and rolled-back transactions are written, on each broker (brokers.CourierURLs; SQS on a FIFO
// queue, as the rows are keyed): with no crash, every committed row must reach the broker
// exactly once (a row sent by both relays would arrive twice), in key order, no rolled-back
// row may arrive, and what the relays report having sent must add up to the rows. Which relay
// sends what is not fixed: a relay's round takes every key no other relay holds, so where
// publishing is slow (the Pub/Sub emulator's ordered publishing) one relay can keep every key
// for the whole run; the split is logged.
func TestTwoRelayProcesses(t *testing.T) {
	urls := brokers.CourierURLs(t, "courier-eo-test")
	for _, name := range []string{"rabbitmq", "kafka", "sqs", "pubsub"} {
		t.Run(name, func(t *testing.T) { twoRelays(t, name, urls[name]) })
	}
}

func twoRelays(t *testing.T, name, brokerURL string) {
	n := messageCount(t)
	if name == "pubsub" {
		n = min(n, 2000) // the emulator delivers ordered subscriptions at ≈ 65 messages/s
	}
	pgURL, pool := schema(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if err := outbox.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	id := rand.IntN(1_000_000)
	topic, subName := fmt.Sprintf("two-relays-%s-%06d", name, id), fmt.Sprintf("two-relays-ledger-%06d", id)
	if name == "sqs" {
		topic += ".fifo"
	}
	l := &ledger{seen: map[string]int{}, high: map[string]int{}, bad: map[string]string{}}
	stopSub := consumeInto(t, ctx, brokerURL, topic, subName, l)
	defer stopSub()

	k := &kids{t: t, dir: t.TempDir(), env: []string{envChild + "=relay", envPG + "=" + pgURL,
		envURL + "=" + brokerURL, envTopic + "=" + topic}}
	relays := []*exec.Cmd{k.start(), k.start()}
	start := time.Now()
	if err := writeAll(ctx, pool, topic, keyedMessages("c", n), keyedMessages("rb", n/5)); err != nil {
		t.Fatal(err)
	}
	done := waitUntil(ctx, func() bool { return l.distinct("c-") >= n })
	elapsed := time.Since(start)
	time.Sleep(2 * time.Second) // duplicates and any rolled-back row would show
	for _, cmd := range relays {
		k.stop(cmd)
	}
	sent := make([]int, 2)
	for i := range sent {
		sent[i] = confirmedBy(t, filepath.Join(k.dir, fmt.Sprintf("child-%d.log", i+1)))
	}
	rb := l.distinct("rb-")
	l.mu.Lock()
	defer l.mu.Unlock()
	got, dups := 0, 0
	for id, c := range l.seen {
		if strings.HasPrefix(id, "c-") {
			got++
			dups += c - 1
		}
	}
	t.Logf("two relay processes, %s: %d committed rows, %d received, %d lost, %d duplicates; relay 1 sent %d, relay 2 sent %d; %v",
		name, n, l.received, n-got, dups, sent[0], sent[1], elapsed.Round(time.Millisecond))
	if !done || got != n {
		t.Errorf("%d of %d committed rows never reached the broker", n-got, n)
	}
	if dups != 0 {
		t.Errorf("%d rows arrived twice without any crash: two relays sent the same row", dups)
	}
	if rb != 0 {
		t.Errorf("%d rolled-back rows reached the broker", rb)
	}
	if len(l.bad) != 0 {
		t.Errorf("%d keys first received out of order: %v", len(l.bad), l.bad)
	}
	if sent[0]+sent[1] != n {
		t.Errorf("relays sent %d and %d rows, want %d in all", sent[0], sent[1], n)
	}
}

var confirmedLine = regexp.MustCompile(`relay confirmed (\d+)`)

// confirmedBy reads the count a relay child printed when it stopped.
func confirmedBy(t *testing.T, log string) int {
	t.Helper()
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	m := confirmedLine.FindSubmatch(b)
	if m == nil {
		t.Fatalf("relay log %s has no count: %s", log, b)
	}
	c, _ := strconv.Atoi(string(m[1]))
	return c
}
