package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

func TestBenchMemoryJSON(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "bench", "-url", "memory://", "-n", "500", "-json",
		"-keys", "3", "-publishers", "2", "-consumers", "2", "-batch", "7", "-size", "64")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if strings.Count(stdout, "\n") != 1 {
		t.Errorf("want exactly one line of JSON, got %q", stdout)
	}
	var res struct {
		Broker       string  `json:"broker"`
		Topic        string  `json:"topic"`
		Subscription string  `json:"subscription"`
		Size         int     `json:"size_bytes"`
		Sent         int     `json:"sent"`
		Received     int     `json:"received"`
		Unique       int     `json:"unique"`
		Lost         *int    `json:"lost"`
		Duplicated   *int    `json:"duplicated"`
		Failed       *int    `json:"failed"`
		SendRate     float64 `json:"send_rate"`
		ReceiveRate  float64 `json:"receive_rate"`
		Latency      map[string]float64
		PerSecond    []benchBucket `json:"per_second"`
		Cleanup      string        `json:"cleanup"`
	}
	if err := json.Unmarshal([]byte(stdout), &res); err != nil {
		t.Fatalf("-json output does not parse: %v\n%s", err, stdout)
	}
	if res.Broker != "memory" || res.Size != 64 || !strings.HasPrefix(res.Topic, "courier-bench-") || res.Subscription != res.Topic+"-s" {
		t.Errorf("run description: %+v", res)
	}
	if res.Sent != 500 || res.Received != 500 || res.Unique != 500 || res.Lost == nil || *res.Lost != 0 ||
		res.Duplicated == nil || *res.Duplicated != 0 || res.Failed == nil || *res.Failed != 0 {
		t.Errorf("counts: sent %d received %d unique %d lost %v dup %v failed %v; want 500/500/500/0/0/0",
			res.Sent, res.Received, res.Unique, res.Lost, res.Duplicated, res.Failed)
	}
	if res.SendRate <= 0 || res.ReceiveRate <= 0 {
		t.Errorf("rates %v / %v", res.SendRate, res.ReceiveRate)
	}
	for _, k := range []string{"p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "mean_ms"} {
		if _, ok := res.Latency[k]; !ok {
			t.Errorf("latency has no %s: %v", k, res.Latency)
		}
	}
	if res.Latency["p50_ms"] > res.Latency["p99_ms"] || res.Latency["p99_ms"] > res.Latency["max_ms"] {
		t.Errorf("percentiles out of order: %v", res.Latency)
	}
	sent, recv := 0, 0
	for _, b := range res.PerSecond {
		sent, recv = sent+b.Sent, recv+b.Received
	}
	if sent != 500 || recv != 500 {
		t.Errorf("per-second buckets add up to sent %d, received %d; want 500 each", sent, recv)
	}
	if !strings.HasPrefix(res.Cleanup, "deleted subscription ") {
		t.Errorf("cleanup %q", res.Cleanup)
	}
}

// TestBenchPlainSummary: piped (not a terminal), bench prints a plain summary and no
// progress line; -duration with -rate sends about rate × duration.
func TestBenchPlainSummary(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "bench", "-url", "memory://", "-duration", "1s", "-rate", "200", "-topic", "plain")
	if code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	// 200 unless the machine is so busy that the last one is due more than benchLateGrace
	// before the publisher wakes.
	m := regexp.MustCompile(`\nsent +(\d+) in .*\nreceived +(\d+) in .*: (\d+) unique`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no sent and received lines:\n%s", stdout)
	}
	if sent, _ := strconv.Atoi(m[1]); sent < 150 || sent > 200 || m[2] != m[1] || m[3] != m[1] {
		t.Errorf("sent %s, received %s, %s unique; want about 200, all received once:\n%s", m[1], m[2], m[3], stdout)
	}
	for _, want := range []string{"bench memory: topic plain, subscription plain-s", " unique, 0 lost, 0 duplicated", "latency   p50 ", "deleted subscription plain-s"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("summary lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout+stderr, "\r") {
		t.Errorf("progress line printed while piped: stdout %q stderr %q", stdout, stderr)
	}
}

func TestBenchPlotFile(t *testing.T) {
	name := filepath.Join(t.TempDir(), "bench.png")
	if code, _, stderr := runCmd(t, "", "bench", "-url", "memory://", "-n", "300", "-plot", name); code != 0 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("plot does not decode: %v", err)
	}
	if b := img.Bounds(); b.Dx() != plotWidth || b.Dy() != plotHeight {
		t.Errorf("plot is %v; want %dx%d", b, plotWidth, plotHeight)
	}
}

// TestPlotDrawsSeries: each series shows up in its colour, in its chart (throughput above,
// latency below).
func TestPlotDrawsSeries(t *testing.T) {
	var buf bytes.Buffer
	buckets := []benchBucket{{Sent: 100, Received: 90, P50ms: 1, P99ms: 9}, {Sent: 200, Received: 210, P50ms: 2, P99ms: 7}, {Sent: 50, Received: 50, P50ms: 1, P99ms: 3}}
	if err := writePlot(&buf, buckets); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string][2]bool{} // colour → in top half, in bottom half
	names := map[[4]uint32]string{}
	for n, c := range map[string]interface{ RGBA() (r, g, b, a uint32) }{"sent": plotSent, "received": plotReceived, "p50": plotP50, "p99": plotP99} {
		r, g, b, a := c.RGBA()
		names[[4]uint32{r, g, b, a}] = n
	}
	for y := 0; y < plotHeight; y++ {
		for x := 0; x < plotWidth; x++ {
			r, g, b, a := img.At(x, y).RGBA()
			if n, ok := names[[4]uint32{r, g, b, a}]; ok {
				f := found[n]
				f[min(1, y/(plotHeight/2))] = true
				found[n] = f
			}
		}
	}
	want := map[string][2]bool{"sent": {true, false}, "received": {true, false}, "p50": {false, true}, "p99": {false, true}}
	for n, w := range want {
		if found[n] != w {
			t.Errorf("%s drawn in (top, bottom) = %v; want %v", n, found[n], w)
		}
	}
	// An empty run still makes a valid picture.
	buf.Reset()
	if err := writePlot(&buf, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&buf); err != nil {
		t.Fatal(err)
	}
}

func TestReconcile(t *testing.T) {
	tests := []struct {
		name string
		sent []bool
		seen []uint32
		want benchTally
	}{
		{"nothing", nil, nil, benchTally{}},
		{"all once", []bool{true, true, true}, []uint32{1, 1, 1}, benchTally{Sent: 3, Received: 3, Unique: 3}},
		{"one lost", []bool{true, true, true}, []uint32{1, 0, 1}, benchTally{Sent: 3, Received: 2, Unique: 2, Lost: 1}},
		{"all lost", []bool{true, true}, nil, benchTally{Sent: 2, Lost: 2}},
		{"duplicates", []bool{true, true}, []uint32{3, 1}, benchTally{Sent: 2, Received: 4, Unique: 2, Duplicated: 2}},
		{"lost and duplicated", []bool{true, true}, []uint32{0, 2}, benchTally{Sent: 2, Received: 2, Unique: 1, Lost: 1, Duplicated: 1}},
		{"failed publish not received", []bool{true, false}, []uint32{1, 0}, benchTally{Sent: 1, Received: 1, Unique: 1}},
		{"failed publish received anyway", []bool{true, false}, []uint32{1, 2}, benchTally{Sent: 1, Received: 3, Unique: 1, Unexpected: 1, Duplicated: 1}},
		{"seen longer than sent", []bool{true}, []uint32{1, 1}, benchTally{Sent: 1, Received: 2, Unique: 1, Unexpected: 1}},
		{"sent longer than seen", []bool{true, true, false}, []uint32{1}, benchTally{Sent: 2, Received: 1, Unique: 1, Lost: 1}},
	}
	for _, tc := range tests {
		if got := reconcile(tc.sent, tc.seen); got != tc.want {
			t.Errorf("%s: reconcile = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

func TestBenchVerdict(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		res  benchResult
		want string // "" for success
	}{
		{benchResult{benchTally: benchTally{Sent: 5, Unique: 5, Duplicated: 3}}, ""},
		{benchResult{benchTally: benchTally{Sent: 5, Unique: 4, Lost: 1}}, "1 message(s) lost"},
		{benchResult{Failed: 2, firstFail: boom}, "2 publish(es) failed (first: boom)"},
		{benchResult{benchTally: benchTally{Lost: 3}, Failed: 1, firstFail: boom}, "3 message(s) lost, 1 publish(es) failed"},
	}
	for _, tc := range tests {
		err := benchVerdict(tc.res)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v; want success", tc.res, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, errBenchLoss)):
			t.Errorf("%+v: %v; want errBenchLoss mentioning %q", tc.res, err, tc.want)
		}
	}
}

func TestBenchPayload(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	p := make([]byte, 40)
	encodeBenchPayload(p, 42, 7, at)
	seq, sent, ok := decodeBenchPayload(p, 42)
	if !ok || seq != 7 || !sent.Equal(at) {
		t.Errorf("round trip: %d %v %v", seq, sent, ok)
	}
	for name, payload := range map[string][]byte{"other run": p, "short": p[:benchHeaderBytes-1], "empty": nil} {
		if _, _, ok := decodeBenchPayload(payload, 43); ok {
			t.Errorf("%s: decoded as this run's", name)
		}
	}
}

// TestRecorderIgnoresForeign: a delivery that is not from the run, or claims a sequence
// number never handed out, is counted apart and changes nothing else.
func TestRecorderIgnoresForeign(t *testing.T) {
	rec := newRecorder(1, time.Now(), 0)
	first := rec.claim(2)
	rec.published(first, 2, func(int) bool { return false }, nil, time.Now())
	p := make([]byte, benchHeaderBytes)
	for _, seq := range []uint64{0, 1, 1} {
		encodeBenchPayload(p, 1, seq, time.Now())
		rec.received(p, time.Now())
	}
	encodeBenchPayload(p, 1, 1<<50, time.Now()) // never claimed
	rec.received(p, time.Now())
	encodeBenchPayload(p, 2, 0, time.Now()) // another run
	rec.received(p, time.Now())
	rec.received([]byte("hello"), time.Now())
	tally, _, _, foreign := rec.final()
	if want := (benchTally{Sent: 2, Received: 3, Unique: 2, Duplicated: 1}); tally != want || foreign != 3 {
		t.Errorf("tally %+v, foreign %d; want %+v, 3", tally, foreign, want)
	}
}

// TestBenchDetectsLoss: a second consumer on bench's subscription takes some of the messages,
// so bench sees them lost and fails. (-rate spreads the sends so that both consumers are
// receiving while they arrive.)
func TestBenchDetectsLoss(t *testing.T) {
	ctx := context.Background()
	conn, err := transport.Open(ctx, "memory://")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	cfg, err := parseBenchFlags([]string{"-n", "200", "-rate", "1000", "-topic", "lossy", "-subscription", "shared", "-drain", "300ms"}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	thief, err := conn.Subscribe(ctx, "lossy", "shared", transport.SubscriberConfig{})
	if err != nil {
		t.Fatal(err)
	}
	thiefCtx, stopThief := context.WithCancel(ctx)
	thiefDone := make(chan error, 1)
	go func() { thiefDone <- thief.Run(thiefCtx, func(context.Context, *message.Message) error { return nil }) }()
	res, err := runBench(ctx, conn, cfg, nil)
	stopThief()
	if err := <-thiefDone; err != nil {
		t.Errorf("thief: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 200 || res.Lost == 0 || res.Unique+res.Lost != 200 {
		t.Fatalf("sent %d, unique %d, lost %d; want 200 sent and some lost", res.Sent, res.Unique, res.Lost)
	}
	if err := benchVerdict(res); !errors.Is(err, errBenchLoss) {
		t.Errorf("verdict %v; want errBenchLoss", err)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "5", "-duration", "1s"}, "not both"},
		{[]string{"-size", "10"}, "-size"},
		{[]string{"-publishers", "0"}, "at least 1"},
		{[]string{"-rate", "-1"}, "-rate"},
		{[]string{"-drain", "0s"}, "-drain"},
		{[]string{"-progress", "sometimes"}, "-progress"},
		{[]string{"extra"}, "unexpected argument"},
	} {
		code, _, stderr := runCmd(t, "", append([]string{"bench", "-url", "memory://"}, tc.args...)...)
		if code != 2 || !strings.Contains(stderr, tc.want) || strings.Count(stderr, "courier:") != 1 {
			t.Errorf("bench %v: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
	if code, _, _ := runCmd(t, "", "bench", "-h"); code != 0 {
		t.Errorf("bench -h: exit %d", code)
	}
	if code, _, stderr := runCmd(t, "", "bench", "-n", "1", "-url", "nats://u:secret@h"); code != 1 || strings.Contains(stderr, "secret") {
		t.Errorf("bad URL: exit %d, stderr %q", code, stderr)
	}
}

// TestBenchInterrupted: cancelling the context (Ctrl-C) ends a long run at once with a report
// of what happened so far, and every goroutine stopped (TestMain checks for leaks).
func TestBenchInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"bench", "-url", "memory://", "-duration", "1h", "-rate", "200", "-json"}, strings.NewReader(""), &out, &errOut)
	}()
	time.Sleep(300 * time.Millisecond)
	cancel()
	var code int
	select {
	case code = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("bench did not stop after its context was cancelled")
	}
	var res benchResult
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		t.Fatalf("exit %d, stderr %q: %v", code, errOut.String(), err)
	}
	if !res.Interrupted || res.Sent == 0 || res.Sent > 200 {
		t.Errorf("interrupted %v, sent %d; want interrupted after a few sent", res.Interrupted, res.Sent)
	}
	if wantCode := map[bool]int{true: 0, false: 1}[res.Lost == 0]; code != wantCode {
		t.Errorf("exit %d with %d lost; want %d", code, res.Lost, wantCode)
	}
}

func TestCheckOwnSubscription(t *testing.T) {
	for _, tc := range []struct {
		fanOut     bool
		topic, sub string
		ok         bool
	}{
		{fanOut: false, topic: "", sub: "", ok: true},        // a new topic of bench's own
		{fanOut: false, topic: "orders", sub: "", ok: false}, // would take orders' messages
		{fanOut: false, topic: "orders", sub: "orders", ok: true},
		{fanOut: true, topic: "orders", sub: "", ok: true},
	} {
		err := checkOwnSubscription(transport.Capabilities{Name: "x", FanOut: tc.fanOut}, benchConfig{Topic: tc.topic, Subscription: tc.sub})
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errUsage)) {
			t.Errorf("%+v: %v", tc, err)
		}
	}
}
