package transport

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// copyCaps are the destinations the copy is fitted to in these tests: the adapters' limits
// as they declare them (kept in step by hand: transport cannot import the adapters) and a
// tight one that makes every budget bite.
var copyCaps = map[string]Capabilities{
	"none":     {Name: "none"},
	"memory":   {Name: "memory", MaxMessageBytes: 10 << 20, MaxHeaderValueBytes: 64 << 10},
	"rabbitmq": {Name: "rabbitmq", MaxMessageBytes: 16 << 20, MaxHeaderValueBytes: 64 << 10, MaxHeaderNameBytes: 255, MaxHeaderBytes: 120 << 10},
	"kafka":    {Name: "kafka", MaxMessageBytes: 1_000_000},
	"sqs":      {Name: "sqs", MaxMessageBytes: 1 << 20},
	"pubsub": {Name: "pubsub", MaxMessageBytes: 10_000_000 - 8<<10, MaxHeaderValueBytes: 1024, MaxHeaderNameBytes: 256,
		MaxHeaders: 98, MaxKeyBytes: 1024, MaxIDBytes: 1024},
	"tight": {Name: "tight", MaxMessageBytes: 8 << 10, MaxHeaderValueBytes: 300, MaxHeaderNameBytes: 40,
		MaxHeaders: 16, MaxHeaderBytes: 4 << 10, MaxKeyBytes: 64, MaxIDBytes: 64},
}

var testFailure = Failure{Err: errors.New("boom"), Permanent: true, Attempts: 3, Topic: "orders", Subscription: "billing",
	FirstFailure: time.Unix(100, 0), LastFailure: time.Unix(200, 0)}

// checkCopy asserts what every dead-letter copy must hold: it passes Courier's publish
// validation, fits caps, carries the annotations, and UndoDeadLetterCopy gives back m minus
// what the report says was cut.
func checkCopy(t *testing.T, m *message.Message, f Failure, caps Capabilities, c *message.Message, rep copyReport) {
	t.Helper()
	if !utf8.ValidString(c.ID) || !utf8.ValidString(c.Key) {
		t.Fatalf("copy ID %q or key %q is not valid UTF-8", c.ID, c.Key)
	}
	if err := checkHeaders(c.Headers, &caps); err != nil {
		t.Fatalf("copy fails publish validation: %v", err)
	}
	hb := len(c.ID) + len(c.Key)
	for k, v := range c.Headers {
		hb += len(k) + len(v) + driver.HeaderOverheadBytes
	}
	switch {
	case caps.MaxHeaders > 0 && len(c.Headers) > caps.MaxHeaders:
		t.Fatalf("copy has %d headers; %s allows %d", len(c.Headers), caps.Name, caps.MaxHeaders)
	case caps.MaxHeaderBytes > 0 && hb > caps.MaxHeaderBytes:
		t.Fatalf("copy's headers take %d bytes; %s allows %d", hb, caps.Name, caps.MaxHeaderBytes)
	case caps.MaxMessageBytes > 0 && c.Size() > caps.MaxMessageBytes:
		t.Fatalf("copy is %d bytes; %s allows %d", c.Size(), caps.Name, caps.MaxMessageBytes)
	case caps.MaxKeyBytes > 0 && len(c.Key) > caps.MaxKeyBytes, caps.MaxIDBytes > 0 && len(c.ID) > caps.MaxIDBytes:
		t.Fatalf("copy's key (%d bytes) or ID (%d bytes) is over the limit", len(c.Key), len(c.ID))
	case c.Headers[message.HeaderDeadLetterTopic] != f.Topic:
		t.Fatalf("copy names topic %q, want %q", c.Headers[message.HeaderDeadLetterTopic], f.Topic)
	case rep.noBody != (c.Header(HeaderDeadLetterPayloadOmitted) != ""):
		t.Fatalf("payload omitted %v, marker %q", rep.noBody, c.Header(HeaderDeadLetterPayloadOmitted))
	case rep.noBody && (caps.MaxMessageBytes == 0 || len(m.Payload) <= caps.MaxMessageBytes-2048):
		t.Fatalf("payload of %d bytes omitted although it fits %d", len(m.Payload), caps.MaxMessageBytes)
	}
	u, err := UndoDeadLetterCopy(c)
	if err != nil {
		t.Fatalf("undo: %v", err)
	}
	if (!rep.idCut && u.ID != m.ID) || (!rep.keyCut && u.Key != m.Key) {
		t.Errorf("undo: ID %q key %q, want %q %q", u.ID, u.Key, m.ID, m.Key)
	}
	if !rep.noBody && !bytes.Equal(u.Payload, m.Payload) {
		t.Error("undo: payload changed")
	}
	want := message.Headers{}
	for k, v := range m.Headers {
		if !DeadLetterCopyStripped(k) && !slices.Contains(rep.cut, k) {
			want[k] = v
		}
	}
	if !maps.Equal(u.Headers, want) {
		t.Errorf("undo: headers\n got %q\nwant %q (cut %q)", u.Headers, want, rep.cut)
	}
}

func manyHeaders(n, size int) message.Headers {
	h := message.Headers{}
	for i := range n {
		h[fmt.Sprintf("h%03d", i)] = strings.Repeat("v", size)
	}
	return h
}

func TestDeadLetterCopy(t *testing.T) {
	tests := []struct {
		name    string
		caps    string
		m       message.Message
		escaped string // HeaderDeadLetterEscaped, "-" for absent
		cut     string // HeaderDeadLetterCut, "-" for absent; a prefix when it ends in "*"
		headers int    // copy's header count; 0: not checked
	}{
		{"plain", "kafka", message.Message{ID: "a", Key: "k", Payload: []byte("p"), Headers: message.Headers{"x": "1"}}, "-", "-", 9},
		{"invalid ID", "kafka", message.Message{ID: "a\xff"}, `"id"`, "-", 0},
		{"invalid key", "kafka", message.Message{ID: "a", Key: "\xfek"}, `"key"`, "-", 0},
		{"invalid header name", "rabbitmq", message.Message{Headers: message.Headers{"n\xff": "v"}}, `"n:\"n\\xff\""`, "-", 0},
		{"invalid header value", "pubsub", message.Message{Headers: message.Headers{"n": "\xc3"}}, `"v:n"`, "-", 0},
		{"invalid name and value", "memory", message.Message{Headers: message.Headers{"\xff": "\xff"}}, `"n:\"\\xff\"","v:\"\\xff\""`, "-", 0},
		{"empty header name", "sqs", message.Message{Headers: message.Headers{"": "v"}}, `"n:\"\""`, "-", 0},
		{"escaped name collides", "none", message.Message{Headers: message.Headers{"": "a", `""`: "b"}}, `"n:\"\""`, `"h:\"\""`, 0},
		{"100 KiB value on RabbitMQ", "rabbitmq", message.Message{Headers: message.Headers{"big": strings.Repeat("x", 100<<10), "s": "1"}}, "-", `"h:big"`, 0},
		{"2000-byte value on Pub/Sub", "pubsub", message.Message{Headers: message.Headers{"big": strings.Repeat("x", 2000)}}, "-", `"h:big"`, 0},
		{"98 attributes on Pub/Sub", "pubsub", message.Message{Headers: manyHeaders(98, 5)}, "-", `"h:h088",*`, 97},
		{"header name over 255 on RabbitMQ", "rabbitmq", message.Message{Headers: message.Headers{strings.Repeat("n", 300): "v"}}, "-", `"h:nnn*`, 0},
		{"headers over RabbitMQ's frame", "rabbitmq", message.Message{Headers: manyHeaders(4, 60<<10)}, "-", `"h:h001","h:h002","h:h003"`, 0},
		{"payload just under Kafka's limit", "kafka", message.Message{ID: "a", Payload: make([]byte, 1_000_000-400), Headers: manyHeaders(3, 100)}, "-", `"h:h000",*`, 0},
		{"payload at Kafka's limit", "kafka", message.Message{ID: "a", Payload: make([]byte, 1_000_000)}, "-", `"payload"`, 0},
		{"ID over Pub/Sub's limit", "pubsub", message.Message{ID: strings.Repeat("i", 2000)}, "-", `"id"`, 0},
		{"invalid key over the limit", "tight", message.Message{Key: strings.Repeat("\xff", 40)}, "-", `"key"`, 0},
		{"forged annotations replaced", "kafka", message.Message{Headers: message.Headers{HeaderDeadLetterEscaped: `"id"`, message.HeaderDeadLetterTopic: "x"}}, "-", "-", 0},
		{"many cuts listed with a count", "tight", message.Message{Headers: manyHeaders(200, 1)}, "-", `"h:h00*`, 15},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			caps := copyCaps[tc.caps]
			c, rep := buildCopy(&tc.m, testFailure, caps, false)
			checkCopy(t, &tc.m, testFailure, caps, c, rep)
			if got, ok := c.Headers[HeaderDeadLetterEscaped]; (tc.escaped == "-") == ok || (ok && got != tc.escaped) {
				t.Errorf("escaped = %q (%v), want %q", got, ok, tc.escaped)
			}
			got, ok := c.Headers[HeaderDeadLetterCut]
			if pre, star := strings.CutSuffix(tc.cut, "*"); (tc.cut == "-") == ok || (ok && !star && got != tc.cut) || (ok && !strings.HasPrefix(got, pre)) {
				t.Errorf("cut = %q (%v), want %q", got, ok, tc.cut)
			}
			if tc.headers > 0 && len(c.Headers) != tc.headers {
				t.Errorf("copy has %d headers, want %d: %q", len(c.Headers), tc.headers, slices.Sorted(maps.Keys(c.Headers)))
			}
		})
	}
}

func TestDeadLetterCopyOmitsAPayloadThatCannotFit(t *testing.T) {
	m := &message.Message{ID: "a", Payload: make([]byte, 2<<20)}
	c, rep := buildCopy(m, testFailure, copyCaps["sqs"], false)
	checkCopy(t, m, testFailure, copyCaps["sqs"], c, rep)
	if !rep.noBody || len(c.Payload) != 0 || c.Header(HeaderDeadLetterPayloadOmitted) != strconv.Itoa(2<<20) {
		t.Fatalf("payload kept (%d bytes) or not marked: %q", len(c.Payload), c.Header(HeaderDeadLetterPayloadOmitted))
	}
	if !strings.Contains(c.Header(HeaderDeadLetterCut), `"payload"`) {
		t.Errorf("cut list %q does not name the payload", c.Header(HeaderDeadLetterCut))
	}
}

func TestDeadLetterCopyKeepsTheOriginal(t *testing.T) {
	m := &message.Message{ID: "a\xff", Headers: message.Headers{"x\xff": "1"}}
	_ = DeadLetterCopy(m, testFailure, copyCaps["tight"])
	if m.ID != "a\xff" || m.Headers["x\xff"] != "1" || len(m.Headers) != 1 {
		t.Fatalf("original changed: %q %q", m.ID, m.Headers)
	}
}

func TestUndoDeadLetterCopyRefusesMalformedAnnotations(t *testing.T) {
	for _, v := range []string{`"id`, `"id",`, `"id""key"`, `id`, `"q:x"`, `"v:missing"`, `"n:notquoted"`, `+3`, `"id",+x`} {
		c := &message.Message{ID: `"a"`, Headers: message.Headers{HeaderDeadLetterEscaped: v, "notquoted": "1"}}
		if _, err := UndoDeadLetterCopy(c); !errors.Is(err, ErrMalformedDeadLetter) {
			t.Errorf("%s: err = %v, want ErrMalformedDeadLetter", v, err)
		}
	}
}

func TestParseDeadLetterList(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"", nil, true},
		{`"a"`, []string{"a"}, true},
		{`"a","b\"c"`, []string{"a", `b"c`}, true},
		{`"a",+12`, []string{"a", "+12"}, true},
		{`+1`, []string{"+1"}, true},
		{"`a`", nil, false},
		{`"a",`, nil, false},
		{`"a" ,"b"`, nil, false},
		{`"a",+`, nil, false},
		{`"a",+1,"b"`, nil, false},
	}
	for _, tc := range tests {
		got, err := ParseDeadLetterList(tc.in)
		if (err == nil) != tc.ok || (tc.ok && !slices.Equal(got, tc.want)) {
			t.Errorf("ParseDeadLetterList(%q) = %q, %v; want %q, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// FuzzDeadLetterCopy: whatever a producer put into a message, its dead-letter copy passes
// Courier's publish validation, fits each destination's limits, and UndoDeadLetterCopy
// restores what was not cut.
func FuzzDeadLetterCopy(f *testing.F) {
	f.Add("id", "key", []byte("payload"), "a=1\nb=2", uint8(0), 0, 0)
	f.Add("\xff", "\xfe", []byte{}, "\xff=\xfe\n=empty\n\"\"=q", uint8(6), 0, 0)
	f.Add("i", "", []byte("x"), "big=", uint8(2), 100<<10, 0)
	f.Add("i", "k", []byte("x"), "a=1", uint8(5), 2000, 98)
	f.Add("i", "k", []byte("x"), "", uint8(3), 0, 0)
	caps := slices.Sorted(maps.Keys(copyCaps))
	f.Fuzz(func(t *testing.T, id, key string, payload []byte, hdrs string, dest uint8, pad, extra int) {
		m := &message.Message{ID: id, Key: key, Payload: payload, Headers: message.Headers{}}
		for line := range strings.SplitSeq(hdrs, "\n") {
			k, v, _ := strings.Cut(line, "=")
			m.Headers[k] = v
		}
		if pad > 0 && pad <= 2<<20 { // one long value
			m.Headers["pad"] = strings.Repeat("p", pad)
		}
		for i := range min(max(extra, 0), 300) { // many headers
			m.Headers["x"+strconv.Itoa(i)] = "v"
		}
		c := caps[int(dest)%len(caps)]
		copy, rep := buildCopy(m, testFailure, copyCaps[c], false)
		checkCopy(t, m, testFailure, copyCaps[c], copy, rep)
	})
}

// FuzzParseDeadLetterList: any header value parses without panic; what parses re-encodes
// to a list that parses to the same items.
func FuzzParseDeadLetterList(f *testing.F) {
	for _, s := range []string{"", `"id"`, `"id","key"`, `"n:\"\\xff\"","v:\"\\xff\""`, `"h:a",+3`, `+0`, `"a",`, "`x`", `"\u00e9"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		items, err := ParseDeadLetterList(s)
		if err != nil {
			return
		}
		enc := make([]string, len(items))
		for i, it := range items {
			enc[i] = strconv.Quote(it)
			if i == len(items)-1 && !strings.HasSuffix(s, `"`) {
				enc[i] = it // a bare "+<n>"
			}
		}
		again, err := ParseDeadLetterList(strings.Join(enc, ","))
		if err != nil || !slices.Equal(again, items) {
			t.Fatalf("%q parsed to %q; re-encoded %q parses to %q, %v", s, items, strings.Join(enc, ","), again, err)
		}
	})
}

// FuzzUndoDeadLetterCopy: a message published into a dead-letter topic by anyone (forged
// annotations included) is undone without panic, or refused with ErrMalformedDeadLetter;
// an undone message carries no annotations.
func FuzzUndoDeadLetterCopy(f *testing.F) {
	f.Add(`"id"`, `"a\xff"`, `""`, "n", "v")
	f.Add(`"n:\"\\xff\"","v:\"\\xff\""`, "a", "k", `"\xff"`, `"\xff"`)
	f.Add(`"v:x","n:x"`, "a", "k", "x", `"v"`)
	f.Add(`"key"`, "a", `"\u00e9"`, "x", "y")
	f.Fuzz(func(t *testing.T, escaped, id, key, name, value string) {
		c := &message.Message{ID: id, Key: key, Headers: message.Headers{
			HeaderDeadLetterEscaped: escaped, name: value, message.HeaderDeadLetterTopic: "t"}}
		u, err := UndoDeadLetterCopy(c)
		if err != nil {
			if !errors.Is(err, ErrMalformedDeadLetter) {
				t.Fatalf("error %v does not wrap ErrMalformedDeadLetter", err)
			}
			return
		}
		for k := range u.Headers {
			if DeadLetterCopyStripped(k) {
				t.Fatalf("undone message keeps %q", k)
			}
		}
		if c.Headers[HeaderDeadLetterEscaped] != escaped || c.ID != id {
			t.Fatal("UndoDeadLetterCopy changed its input")
		}
	})
}
