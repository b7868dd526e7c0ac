package hostile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/middleware/chain"
	"github.com/courierhq/courier/middleware/encryption"
	"github.com/courierhq/courier/middleware/idempotency"
	"github.com/courierhq/courier/middleware/ordering"
	"github.com/courierhq/courier/middleware/retry"
	"github.com/courierhq/courier/middleware/schema"
	"github.com/courierhq/courier/middleware/store/memstore"
	"github.com/courierhq/courier/transport"
)

// secret is planted in the plaintext of every payload: no dead-letter header and no log line
// may contain it.
const secret = "S3CR3T"

// raw is a message as a plain producer writes it: headers as ordered pairs (names may repeat,
// be empty or be invalid UTF-8), an ID or none.
type raw struct {
	ID      *string
	Key     string
	Headers [][2]string
	Payload []byte
}

// rawPublisher publishes r to topic with the broker's own client, bypassing Courier.
type rawPublisher func(ctx context.Context, t *testing.T, topic string, r raw) error

// target is one broker under test.
type target struct {
	name       string
	url        string
	topic      func(base string) string // the broker's form of a topic name (FIFO suffix)
	publish    rawPublisher
	maxPayload int // the broker's largest payload a plain producer can send; 0: no size cases
}

type want int

const (
	wantHandled want = iota // the handler ran
	wantDead                // dead-lettered with a reason
	wantEither              // handled or dead-lettered, as long as it does not stay
)

func (w want) String() string {
	return [...]string{"handled", "dead-lettered", "handled or dead-lettered"}[w]
}

// tcase is one row of the matrix.
type tcase struct {
	name      string
	encrypted bool // published to the topic whose chain decrypts
	want      want
	build     func(f *fixture, c *tcase) raw
}

func ptr(s string) *string { return &s }

// payload is a valid message body for the case; bad is one that violates the schema (so
// the message fails permanently and must be dead-lettered).
func payload(c *tcase) []byte {
	return []byte(fmt.Sprintf(`{"case":%q,"n":1,"s":"%s-%s"}`, c.name, secret, c.name))
}

func bad(c *tcase) []byte {
	return []byte(fmt.Sprintf(`{"case":%q,"n":"%s-%s"}`, c.name, secret, c.name))
}

// plain is a raw message with the case's own key and ID, and the given headers.
func plain(body func(*tcase) []byte, headers ...[2]string) func(*fixture, *tcase) raw {
	return func(_ *fixture, c *tcase) raw {
		return raw{ID: ptr("hx-" + c.name), Key: "hk-" + c.name, Headers: headers, Payload: body(c)}
	}
}

func headerCases() []tcase {
	many := make([][2]string, 98)
	for i := range many {
		many[i] = [2]string{fmt.Sprintf("x-h%02d", i), "v"}
	}
	hs := []struct {
		name string
		h    [][2]string
	}{
		{"name-invalid-utf8", [][2]string{{"x-\xff\xfe", "v"}}},
		{"value-invalid-utf8", [][2]string{{"x-v", "\xff\xfeabc"}}},
		{"empty-name", [][2]string{{"", "v"}}},
		{"value-2000-bytes", [][2]string{{"x-long", strings.Repeat("a", 2000)}}},
		{"value-100-kib", [][2]string{{"x-huge", strings.Repeat("b", 100<<10)}}},
		{"98-headers", many},
		{"name-300-bytes", [][2]string{{strings.Repeat("n", 300), "v"}}},
		{"nul-in-value", [][2]string{{"x-nul", "a\x00b"}}},
		{"crlf-in-name", [][2]string{{"x\r\nInjected: 1", "v"}}},
		{"spoofed-dlq-headers", [][2]string{{message.HeaderDeadLetterReason, "spoof"}, {message.HeaderDeadLetterTopic, "elsewhere"}, {message.HeaderRedriven, "garbage"}}},
		{"forged-attempt", [][2]string{{message.HeaderAttempt, "99999999999999999999"}}},
	}
	var out []tcase
	for _, h := range hs {
		out = append(out,
			tcase{name: h.name + "/ok", want: wantEither, build: plain(payload, h.h...)},
			tcase{name: h.name + "/bad", want: wantDead, build: plain(bad, h.h...)})
	}
	ids := []struct {
		name string
		mod  func(*raw, *tcase)
	}{
		// Each case's ID differs: two messages with one ID are one message to idempotency.
		{"id-invalid-utf8", func(r *raw, c *tcase) { r.ID = ptr("\xff\xfeid-" + c.name) }},
		{"id-missing", func(r *raw, _ *tcase) { r.ID = nil }},
		{"id-1000-bytes", func(r *raw, c *tcase) { r.ID = ptr(strings.Repeat("i", 1000) + c.name) }},
		{"key-invalid-utf8", func(r *raw, c *tcase) { r.Key = "k\xff\xfe" + c.name }},
		{"key-300-bytes", func(r *raw, c *tcase) { r.Key = strings.Repeat("k", 300) + c.name }},
	}
	for _, x := range ids {
		for _, v := range []struct {
			suffix string
			body   func(*tcase) []byte
			w      want
		}{{"/ok", payload, wantEither}, {"/bad", bad, wantDead}} {
			mod, body := x.mod, v.body
			out = append(out, tcase{name: x.name + v.suffix, want: v.w, build: func(f *fixture, c *tcase) raw {
				r := plain(body)(f, c)
				mod(&r, c)
				return r
			}})
		}
	}
	return out
}

func stampCases() []tcase {
	stamps := []struct{ name, v string }{
		{"seq-garbage", "abc"}, {"seq-no-epoch", "1@"}, {"seq-no-number", "@1"}, {"seq-negative", "-1@5"},
		{"seq-overflow", "99999999999999999999@1"}, {"seq-epoch-overflow", "1@99999999999999999999"},
		{"seq-zero", "0@0"}, {"seq-spaces", " 1 @ 1 "}, {"seq-unicode-digits", "١@١"},
	}
	var out []tcase
	for _, s := range stamps {
		out = append(out, tcase{name: s.name, want: wantEither, build: plain(payload, [2]string{message.HeaderSequence, s.v})})
	}
	out = append(out,
		tcase{name: "seq-without-key", want: wantEither, build: func(f *fixture, c *tcase) raw {
			r := plain(payload, [2]string{message.HeaderSequence, "1@1"})(f, c)
			r.Key = ""
			return r
		}},
		// A forged stamp with the next epoch of a key real messages use: it must not make the
		// key's later real messages look stale (see the follow-ups published after it).
		tcase{name: "seq-forged-next-epoch", want: wantEither, build: func(f *fixture, c *tcase) raw {
			seq, epoch := f.stampOf("forged")
			_ = seq
			return raw{ID: ptr("hx-" + c.name), Key: "forged", Payload: payload(c),
				Headers: [][2]string{{message.HeaderSequence, fmt.Sprintf("1@%d", epoch+1)}}}
		}},
	)
	return out
}

func cipherCases() []tcase {
	tamper := func(mod func(*raw)) func(*fixture, *tcase) raw {
		return func(f *fixture, c *tcase) raw {
			r := f.encrypt(c, payload(c))
			mod(&r)
			return r
		}
	}
	return []tcase{
		{name: "enc-valid", encrypted: true, want: wantHandled, build: tamper(func(*raw) {})},
		{name: "enc-plaintext", encrypted: true, want: wantEither, build: plain(payload)},
		{name: "enc-garbage-payload", encrypted: true, want: wantDead, build: tamper(func(r *raw) { r.Payload = []byte("garbage " + secret) })},
		{name: "enc-truncated", encrypted: true, want: wantDead, build: tamper(func(r *raw) { r.Payload = r.Payload[:len(r.Payload)/2] })},
		{name: "enc-empty-payload", encrypted: true, want: wantDead, build: tamper(func(r *raw) { r.Payload = nil })},
		{name: "enc-unknown-key-id", encrypted: true, want: wantDead, build: tamper(func(r *raw) { setHeader(r, message.HeaderEncryptionKeyID, "nope") })},
		{name: "enc-wrapped-key-garbage", encrypted: true, want: wantEither, build: tamper(func(r *raw) { setHeader(r, message.HeaderEncryptionWrappedKey, "%%%not-base64") })},
		{name: "enc-id-changed", encrypted: true, want: wantDead, build: tamper(func(r *raw) { r.ID = ptr("hx-other") })},
		{name: "enc-key-changed", encrypted: true, want: wantDead, build: tamper(func(r *raw) { r.Key = "hk-other" })},
		{name: "enc-schema-secret-map-key", encrypted: true, want: wantDead, build: func(f *fixture, c *tcase) raw {
			return f.encrypt(c, []byte(fmt.Sprintf(`{"case":%q,"n":1,"meta":{"%s-%s":"x"}}`, c.name, secret, c.name)))
		}},
		{name: "enc-schema-secret-array", encrypted: true, want: wantDead, build: func(f *fixture, c *tcase) raw {
			return f.encrypt(c, []byte(fmt.Sprintf(`{"case":%q,"n":1,"list":[1,"%s"]}`, c.name, secret)))
		}},
	}
}

func schemaCases() []tcase {
	body := func(s string) func(*tcase) []byte {
		return func(c *tcase) []byte { return []byte(fmt.Sprintf(s, c.name)) }
	}
	return []tcase{
		{name: "not-json", want: wantDead, build: plain(func(*tcase) []byte { return []byte(secret + " is not JSON") })},
		{name: "deep-nesting", want: wantDead, build: plain(func(*tcase) []byte { return []byte(strings.Repeat("[", 10000) + `"` + secret + `"`) })},
		{name: "huge-number", want: wantEither, build: plain(body(`{"case":%q,"n":1e400}`))},
		{name: "secret-map-key", want: wantDead, build: plain(body(`{"case":%q,"n":1,"meta":{"` + secret + `-k":"v"}}`))},
		{name: "secret-in-array", want: wantDead, build: plain(body(`{"case":%q,"n":1,"list":[1,"` + secret + `"]}`))},
		{name: "secret-key-array-index", want: wantDead, build: plain(body(`{"case":%q,"n":1,"meta":{"` + secret + `-k2":1},"list":[1,2,3,"x"]}`))},
		{name: "empty-payload", want: wantDead, build: plain(func(*tcase) []byte { return nil })},
		{name: "binary-payload", want: wantDead, build: plain(func(*tcase) []byte { return []byte("\x00\x01\xff\xfe" + secret) })},
		{name: "duplicate-json-keys", want: wantEither, build: plain(body(`{"case":%q,"n":1,"n":"` + secret + `"}`))},
	}
}

// sizeCases are payloads just under the broker's limit: the dead-letter copy adds headers to
// one of them, which must still be stored (or kept by the documented fallback).
func sizeCases(max int) []tcase {
	if max == 0 {
		return nil
	}
	fill := func(valid bool) func(*tcase) []byte {
		return func(c *tcase) []byte {
			head := fmt.Sprintf(`{"case":%q,"n":1,"s":"`, c.name)
			if !valid {
				head = fmt.Sprintf(`{"case":%q,"n":"`, c.name)
			}
			n := max - 1024 - len(head) - 2
			return []byte(head + secret + strings.Repeat("z", n-len(secret)) + `"}`)
		}
	}
	return []tcase{
		{name: "near-size-limit/ok", want: wantHandled, build: plain(fill(true))},
		{name: "near-size-limit/bad", want: wantDead, build: plain(fill(false))},
	}
}

func allCases(max int) []tcase {
	var out []tcase
	for _, part := range [][]tcase{headerCases(), stampCases(), cipherCases(), schemaCases(), sizeCases(max)} {
		out = append(out, part...)
	}
	return out
}

func setHeader(r *raw, k, v string) {
	for i := range r.Headers {
		if r.Headers[i][0] == k {
			r.Headers[i][1] = v
			return
		}
	}
	r.Headers = append(r.Headers, [2]string{k, v})
}

const orderSchema = `{"type":"object","required":["case","n"],"properties":{
	"case":{"type":"string"},"n":{"type":"integer"},"s":{"type":"string"},
	"meta":{"type":"object","additionalProperties":{"type":"integer"}},
	"list":{"type":"array","items":{"type":"integer"}}}}`

// fixture is one run of the matrix on one target: two topics (plain chain, encrypted chain),
// their subscribers and the ledger.
type fixture struct {
	t       *testing.T
	tg      target
	conn    *transport.Conn
	enc     *encryption.Encryptor
	plainT  string
	cryptT  string
	chainP  *chain.Chain
	chainE  *chain.Chain
	pubP    *transport.Publisher
	logs    *syncBuffer
	stampMu sync.Mutex
	stamps  map[string]string // key → the last courier-seq the chain stamped

	mu      sync.Mutex
	handled map[string]int
	dead    map[string][]*message.Message
	unknown []string
	byBody  map[string]string // sent payload → case
	byID    map[string]string // sent ID → case
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t *testing.T, tg target) *fixture {
	f := &fixture{t: t, tg: tg, logs: &syncBuffer{}, stamps: map[string]string{},
		handled: map[string]int{}, dead: map[string][]*message.Message{}, byBody: map[string]string{}, byID: map[string]string{}}
	log := slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	prev := slog.Default()
	slog.SetDefault(log) // lines an adapter or middleware writes past the configured logger are scanned too
	t.Cleanup(func() { slog.SetDefault(prev) })
	ctx := context.Background()
	conn, err := transport.OpenConfig(ctx, tg.url, transport.ConnConfig{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	f.conn = conn
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	suffix := fmt.Sprintf("%06d", rand.IntN(1_000_000))
	f.plainT, f.cryptT = "hostile-p-"+suffix, "hostile-e-"+suffix
	if tg.topic != nil {
		f.plainT, f.cryptT = tg.topic(f.plainT), tg.topic(f.cryptT)
	}
	f.buildChains(log)
	return f
}

func (f *fixture) buildChains(log *slog.Logger) {
	t := f.t
	kr, err := encryption.NewKeyring("k1", map[string][]byte{"k1": bytes.Repeat([]byte{7}, 32)})
	must(t, err)
	f.enc, err = encryption.New(encryption.Config{Keyring: kr})
	must(t, err)
	reg := schema.NewRegistry()
	sch := schema.MustJSON("order", []byte(orderSchema))
	must(t, reg.Bind(f.plainT, sch))
	must(t, reg.Bind(f.cryptT, sch))
	val, err := schema.New(schema.Config{Registry: reg, Redact: true})
	must(t, err)
	cls, err := retry.New(retry.Config{})
	must(t, err)
	build := func(encrypted bool) *chain.Chain {
		st := memstore.New(memstore.Options{})
		ord, err := ordering.New(ordering.Config{Store: st, Logger: log})
		must(t, err)
		idem, err := idempotency.New(idempotency.Config{Store: st, Logger: log})
		must(t, err)
		steps := []chain.Step{chain.Ordering(ord), chain.Idempotency(idem)}
		if encrypted {
			steps = append(steps, chain.Encryption(f.enc))
		}
		c, err := chain.New(append(steps, chain.Schema(val), chain.Retry(cls))...)
		must(t, err)
		return c
	}
	f.chainP, f.chainE = build(false), build(true)
	capture := func(next message.PublishFunc) message.PublishFunc {
		return func(ctx context.Context, topic string, msgs []*message.Message) error {
			f.stampMu.Lock()
			for _, m := range msgs {
				f.stamps[m.Key] = m.Header(message.HeaderSequence)
			}
			f.stampMu.Unlock()
			return next(ctx, topic, msgs)
		}
	}
	f.pubP = f.conn.Publisher(transport.PublisherConfig{Middleware: append(f.chainP.Publish(), capture)})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stampOf returns the sequence number and epoch of the last stamp the chain put on key.
func (f *fixture) stampOf(key string) (seq, epoch uint64) {
	f.stampMu.Lock()
	s := f.stamps[key]
	f.stampMu.Unlock()
	if _, err := fmt.Sscanf(s, "%d@%d", &seq, &epoch); err != nil {
		f.t.Fatalf("stamp %q of key %q: %v", s, key, err)
	}
	return seq, epoch
}

// encrypt returns the raw form of a message the encrypting chain would publish.
func (f *fixture) encrypt(c *tcase, body []byte) raw {
	m, err := f.enc.Encrypt(context.Background(), f.cryptT, &message.Message{ID: "hx-" + c.name, Key: "hk-" + c.name, Payload: body})
	must(f.t, err)
	r := raw{ID: ptr(m.ID), Key: m.Key, Payload: m.Payload}
	for k, v := range m.Headers {
		r.Headers = append(r.Headers, [2]string{k, v})
	}
	return r
}

// subscribe runs the two subscribers and the two dead-letter subscribers until the test ends.
func (f *fixture) subscribe() {
	t := f.t
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	rp := transport.RetryPolicy{InitialDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond, MaxAttempts: 3}
	run := func(topic, sub string, cfg transport.SubscriberConfig, h message.Handler) {
		s, err := f.conn.Subscribe(ctx, topic, sub, cfg)
		must(t, err)
		wg.Add(1)
		go func() { defer wg.Done(); _ = s.Run(ctx, h) }()
	}
	suffix := fmt.Sprintf("%06d", rand.IntN(1_000_000))
	run(f.plainT, "hp"+suffix, transport.SubscriberConfig{Retry: rp, Middleware: f.chainP.Consume()}, f.handle)
	run(f.cryptT, "he"+suffix, transport.SubscriberConfig{Retry: rp, Middleware: f.chainE.Consume()}, f.handle)
	dl := transport.SubscriberConfig{Order: transport.OrderNone}
	run(f.conn.DefaultDeadLetterTopic(f.plainT), "hp"+suffix+".dlq", dl, f.deadLettered)
	run(f.conn.DefaultDeadLetterTopic(f.cryptT), "he"+suffix+".dlq", dl, f.deadLettered)
}

func (f *fixture) handle(_ context.Context, m *message.Message) error {
	var body struct{ Case string }
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := json.Unmarshal(m.Payload, &body); err != nil || body.Case == "" {
		f.unknown = append(f.unknown, fmt.Sprintf("handled %q (%d bytes)", m.ID, len(m.Payload)))
		return nil
	}
	f.handled[body.Case]++
	return nil
}

func (f *fixture) deadLettered(_ context.Context, m *message.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.byID[m.ID] // first: two cases may share a payload (empty ones)
	if !ok {
		c, ok = f.byBody[string(m.Payload)]
	}
	if !ok {
		f.unknown = append(f.unknown, fmt.Sprintf("dead-lettered %q (%d bytes, headers %v)", m.ID, len(m.Payload), m.Headers))
		return nil
	}
	f.dead[c] = append(f.dead[c], m.Clone())
	return nil
}

// result is the ledger of one run.
type result struct {
	cases, handled, dead, refused, unresolved, wrong, leaks int
	escaped, cut, omitted                                   int // dead-letter copies the fallbacks changed
}

// runMatrixOn runs the matrix on a fixture made by newFixture.
func runMatrixOn(t *testing.T, f *fixture) {
	tg := f.tg
	f.subscribe()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A real message on the key the forgery targets, so that the key has an epoch.
	must(t, f.pubP.Publish(ctx, f.plainT, &message.Message{Key: "forged", Payload: []byte(`{"case":"forged-before","n":1}`)}))
	cases := allCases(tg.maxPayload)
	refused := map[string]error{}
	f.waitHandled(ctx, "forged-before")
	for i := range cases {
		c := &cases[i]
		r := c.build(f, c)
		f.mu.Lock()
		f.byBody[string(r.Payload)] = c.name
		if r.ID != nil {
			f.byID[*r.ID] = c.name
		}
		f.mu.Unlock()
		topic := f.plainT
		if c.encrypted {
			topic = f.cryptT
		}
		if err := tg.publish(ctx, t, topic, r); err != nil {
			refused[c.name] = err
		}
	}
	// Real messages after the forgery must all be handled.
	follow := []string{"forged-after-1", "forged-after-2", "forged-after-3"}
	for _, name := range follow {
		must(t, f.pubP.Publish(ctx, f.plainT, &message.Message{Key: "forged", Payload: []byte(fmt.Sprintf(`{"case":%q,"n":1}`, name))}))
		cases = append(cases, tcase{name: name, want: wantHandled})
	}
	res := f.await(ctx, cases, refused)
	if p := os.Getenv("COURIER_HOSTILE_LOGS"); p != "" { // for a post-mortem
		_ = os.WriteFile(p, []byte(f.logs.String()), 0o644)
	}
	t.Logf("%s: %d cases: %d handled, %d dead-lettered (copies with escapes %d, with cuts %d, payload omitted %d), %d refused by the broker at publish, %d unresolved, %d wrong outcome, %d leaks; %d \"dead-lettering failed\" log lines",
		tg.name, res.cases, res.handled, res.dead, res.escaped, res.cut, res.omitted, res.refused, res.unresolved, res.wrong, res.leaks,
		strings.Count(f.logs.String(), "dead-lettering failed"))
}

func (f *fixture) waitHandled(ctx context.Context, name string) {
	for {
		f.mu.Lock()
		n := f.handled[name]
		f.mu.Unlock()
		if n > 0 {
			return
		}
		select {
		case <-ctx.Done():
			f.t.Fatalf("%s never handled", name)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// await waits until every case is resolved (or the context ends) and checks each outcome.
func (f *fixture) await(ctx context.Context, cases []tcase, refused map[string]error) result {
	t := f.t
	resolved := func(c *tcase) bool {
		return refused[c.name] != nil || f.handled[c.name] > 0 || len(f.dead[c.name]) > 0
	}
	for {
		f.mu.Lock()
		n := 0
		for i := range cases {
			if resolved(&cases[i]) {
				n++
			}
		}
		f.mu.Unlock()
		if n == len(cases) {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
			continue
		}
		break
	}
	time.Sleep(500 * time.Millisecond) // late handlings and copies land in the ledger too
	f.mu.Lock()
	defer f.mu.Unlock()
	res := result{cases: len(cases)}
	for i := range cases {
		res.add(t, &cases[i], f, refused[cases[i].name])
	}
	for _, u := range f.unknown {
		t.Errorf("not a case of the matrix: %s", u)
	}
	if logs := f.logs.String(); strings.Contains(logs, secret) {
		res.leaks++
		i := strings.Index(logs, secret)
		t.Errorf("a log line quotes payload plaintext: …%s…", logs[max(0, i-200):min(len(logs), i+50)])
	}
	return res
}

func (r *result) add(t *testing.T, c *tcase, f *fixture, refusedErr error) {
	h, d := f.handled[c.name], f.dead[c.name]
	switch {
	case refusedErr != nil:
		r.refused++
		t.Logf("%-32s refused by the broker at publish: %v", c.name, trim(refusedErr.Error()))
		return
	case h == 0 && len(d) == 0:
		r.unresolved++
		t.Errorf("%-32s neither handled nor dead-lettered: stuck, or acknowledged unhandled%s", c.name, f.logsAbout(c.name))
		return
	case h > 0 && len(d) > 0:
		r.wrong++
		t.Errorf("%-32s both handled and dead-lettered", c.name)
	case h > 0:
		r.handled++
		if c.want == wantDead {
			r.wrong++
			t.Errorf("%-32s handled; want %v", c.name, c.want)
		}
	default:
		r.dead++
		if c.want == wantHandled {
			r.wrong++
			t.Errorf("%-32s dead-lettered (%s); want %v", c.name, trim(d[0].Header(message.HeaderDeadLetterReason)), c.want)
		}
	}
	for _, m := range d {
		r.escaped += min(1, len(m.Header(transport.HeaderDeadLetterEscaped)))
		r.cut += min(1, len(m.Header(transport.HeaderDeadLetterCut)))
		r.omitted += min(1, len(m.Header(transport.HeaderDeadLetterPayloadOmitted)))
		if m.Header(message.HeaderDeadLetterReason) == "" {
			r.wrong++
			t.Errorf("%-32s dead-letter copy without a reason: %v", c.name, m.Headers)
		}
		for k, v := range m.Headers {
			if strings.Contains(k, secret) || strings.Contains(v, secret) {
				r.leaks++
				t.Errorf("%-32s dead-letter header %s quotes payload plaintext: %s", c.name, trim(k), trim(v))
			}
		}
	}
}

// logsAbout returns the first log lines that mention the case (by its key), for failure messages.
func (f *fixture) logsAbout(name string) string {
	var out []string
	for _, l := range strings.Split(f.logs.String(), "\n") {
		if strings.Contains(l, "hk-"+name) || strings.Contains(l, "hx-"+name) {
			out = append(out, "\n\t\t"+trim(l))
			if len(out) == 3 {
				break
			}
		}
	}
	return strings.Join(out, "")
}

func trim(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}
