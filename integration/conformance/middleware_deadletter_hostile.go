package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func init() {
	middlewareTests = append(middlewareTests,
		namedTest{"Middleware/DeadLetter/HostileInput", testDeadLetterHostile},
	)
}

// hostileCase is a message a plain producer can publish and Courier's own Publish refuses
// or cannot dead-letter as it is.
type hostileCase struct {
	name string
	m    *message.Message
}

// hostileCases returns the messages for a broker with capabilities caps: invalid UTF-8 in a
// header name, a header value, the ID and the key; an empty header name; a header value
// over the broker's limit; more headers than the broker allows with the dead-letter
// annotations; and a payload just under the broker's size limit.
func hostileCases(caps transport.Capabilities) []hostileCase {
	long := 100 << 10
	if v := caps.MaxHeaderValueBytes; v > 0 && v < 4<<10 {
		long = 2000
	}
	many := message.Headers{}
	for i := range cmpOr(caps.MaxHeaders, 200) {
		many[fmt.Sprintf("h%03d", i)] = "v"
	}
	cases := []hostileCase{
		{"invalid-name", &message.Message{ID: "hx-name", Payload: []byte("p"), Headers: message.Headers{"bad\xffname": "v", "app": "kept"}}},
		{"invalid-value", &message.Message{ID: "hx-value", Payload: []byte("p"), Headers: message.Headers{"k": "v\xfe"}}},
		{"invalid-id", &message.Message{ID: "hx-id-\xff", Payload: []byte("p")}},
		{"invalid-key", &message.Message{ID: "hx-key", Key: "key-\xfe", Payload: []byte("p")}},
		{"empty-name", &message.Message{ID: "hx-empty", Payload: []byte("p"), Headers: message.Headers{"": "v", "app": "kept"}}},
		{"long-value", &message.Message{ID: "hx-long", Payload: []byte("p"), Headers: message.Headers{"big": strings.Repeat("x", long), "app": "kept"}}},
		{"many-headers", &message.Message{ID: "hx-many", Payload: []byte("p"), Headers: many}},
	}
	if n := caps.MaxMessageBytes; n > 0 {
		cases = append(cases, hostileCase{"payload-near-limit", &message.Message{ID: "hx-big", Key: "k", Payload: bytes.Repeat([]byte("b"), n-512)}})
	}
	return cases
}

func cmpOr(a, b int) int {
	if a > 0 {
		return a
	}
	return b
}

// testDeadLetterHostile: messages from a plain producer with hostile headers, IDs, keys and
// sizes whose handling fails permanently are each dead-lettered once — the copy stored, fitted
// to the broker (escaped, cut, listed), the original acknowledged and not handled again — and
// transport.UndoDeadLetterCopy restores each from its copy except what the copy lists as cut.
// The driver's own Publish stands in for the plain producer (it skips Courier's validation);
// a case the broker itself refuses from any producer is logged and left out.
func testDeadLetterHostile(t *testing.T, h *Harness) {
	c := h.open(t)
	topic := h.NewTopic(t)
	var mu sync.Mutex
	calls := map[string]int{}
	h.run(t, h.subscribe(t, c, topic, "s1", transport.SubscriberConfig{Retry: fastRetry}),
		func(_ context.Context, m *message.Message) error {
			mu.Lock()
			calls[m.ID]++
			mu.Unlock()
			return message.Permanent(errors.New("hostile input"))
		})
	dlq := h.dlqCollector(t, c, topic, "s1")

	sent := map[string]hostileCase{}
	for _, hc := range hostileCases(c.Capabilities()) {
		hc.m.PublishTime = time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), h.Timeout) // pstest takes no 10 MB request: it times out
		err := c.Driver().Publish(ctx, topic, []*message.Message{hc.m})
		cancel()
		if err != nil {
			t.Logf("%s: the broker refuses it from any producer, left out: %v", hc.name, err)
			continue
		}
		sent[hc.m.ID] = hc
	}
	if len(sent) < 3 { // empty-name, long-value and many-headers publish everywhere
		t.Fatalf("only %d hostile messages could be published", len(sent))
	}
	dlq.waitDistinct(t, len(sent), 2*h.Timeout)
	dlq.quiet(time.Second)
	checkHostileCopies(t, dlq.snapshot(), sent)
	mu.Lock()
	defer mu.Unlock()
	for id, hc := range sent {
		if calls[id] != 1 {
			t.Errorf("%s: handled %d times; want 1 (dead-lettered and acknowledged)", hc.name, calls[id])
		}
	}
}

// checkHostileCopies checks that each sent message has exactly one copy, and that the copy
// gives the original back but for what it lists as cut.
func checkHostileCopies(t *testing.T, copies []received, sent map[string]hostileCase) {
	t.Helper()
	seen := map[string]int{}
	for _, r := range copies {
		cm := &message.Message{ID: r.ID, Key: r.Key, Payload: r.Payload, Headers: r.Headers}
		u, err := transport.UndoDeadLetterCopy(cm)
		if err != nil {
			t.Errorf("copy %q: %v", r.ID, err)
			continue
		}
		hc, ok := sent[u.ID]
		if !ok {
			t.Errorf("copy %q restores to unknown ID %q", r.ID, u.ID)
			continue
		}
		seen[u.ID]++
		cut, _ := transport.ParseDeadLetterList(r.Headers[transport.HeaderDeadLetterCut])
		if u.Key != hc.m.Key || !bytes.Equal(u.Payload, hc.m.Payload) {
			t.Errorf("%s: copy restores key %q and %d payload bytes; want %q and %d", hc.name, u.Key, len(u.Payload), hc.m.Key, len(hc.m.Payload))
		}
		want := maps.Clone(hc.m.Headers)
		for _, it := range cut {
			if name, ok := strings.CutPrefix(it, "h:"); ok {
				delete(want, name)
			}
		}
		if len(cut) > 0 && strings.HasPrefix(cut[len(cut)-1], "+") {
			maps.DeleteFunc(u.Headers, func(k, _ string) bool { _, ok := want[k]; return !ok })
			maps.DeleteFunc(want, func(k, _ string) bool { _, ok := u.Headers[k]; return !ok })
		}
		if !maps.Equal(u.Headers, want) {
			t.Errorf("%s: copy restores %d headers; want %d (cut %q)", hc.name, len(u.Headers), len(want), cut)
		}
		if (hc.name == "long-value" || hc.name == "many-headers") && len(cut) == 0 {
			t.Logf("%s: nothing had to be cut on this broker", hc.name)
		}
	}
	for id, hc := range sent {
		if seen[id] != 1 {
			t.Errorf("%s: %d dead-letter copies; want 1", hc.name, seen[id])
		}
	}
}
