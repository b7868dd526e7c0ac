package main

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// benchHeaderBytes is the part of a bench payload that identifies it: the run ID, the
// sequence number and the publish time (Unix nanoseconds), 8 bytes each, big-endian. The
// rest of the payload is padding.
const benchHeaderBytes = 24

// Latency histogram range, in microseconds: 1 µs to 1 hour, 3 significant digits.
const (
	latencyLowest  = 1
	latencyHighest = int64(time.Hour / time.Microsecond)
	latencyDigits  = 3
)

// encodeBenchPayload writes the run ID, sequence number and send time into p's header.
func encodeBenchPayload(p []byte, run, seq uint64, sent time.Time) {
	binary.BigEndian.PutUint64(p[0:], run)
	binary.BigEndian.PutUint64(p[8:], seq)
	binary.BigEndian.PutUint64(p[16:], uint64(sent.UnixNano()))
}

// decodeBenchPayload reads a payload's header. ok is false for a payload that is not from the
// run (too short, another run ID): a message someone else published on the topic.
func decodeBenchPayload(p []byte, run uint64) (seq uint64, sent time.Time, ok bool) {
	if len(p) < benchHeaderBytes || binary.BigEndian.Uint64(p[0:]) != run {
		return 0, time.Time{}, false
	}
	return binary.BigEndian.Uint64(p[8:]), time.Unix(0, int64(binary.BigEndian.Uint64(p[16:]))), true
}

// benchTally is how the messages of a run ended up.
type benchTally struct {
	Sent       int `json:"sent"`       // accepted by the broker
	Received   int `json:"received"`   // deliveries, duplicates included
	Unique     int `json:"unique"`     // sent messages received at least once
	Lost       int `json:"lost"`       // sent and never received
	Duplicated int `json:"duplicated"` // deliveries beyond the first of a message
	Unexpected int `json:"unexpected"` // received although their publish reported a failure
}

// reconcile compares what was sent with what was received: sent[i] says the broker accepted
// message i, seen[i] how many times it was delivered. A message whose publish failed may still
// have reached the broker (the failure came after it stored it); it counts as unexpected, not
// as sent.
func reconcile(sent []bool, seen []uint32) benchTally {
	var t benchTally
	for i := range max(len(sent), len(seen)) {
		ok := i < len(sent) && sent[i]
		var n int
		if i < len(seen) {
			n = int(seen[i])
		}
		t.Received += n
		switch {
		case ok && n == 0:
			t.Sent++
			t.Lost++
		case ok:
			t.Sent++
			t.Unique++
			t.Duplicated += n - 1
		case n > 0:
			t.Unexpected++
			t.Duplicated += n - 1
		}
	}
	return t
}

// benchBucket is one second of a run, for the plot: what was sent and received in it, and the
// latency of what was received in it.
type benchBucket struct {
	Sent     int     `json:"sent"`
	Received int     `json:"received"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
}

// recorder keeps what a run sent and received. It is safe for concurrent use.
type recorder struct {
	run   uint64
	start time.Time

	// claimed counts the sequence numbers handed to publishers (claim); a delivery with a
	// higher one is not from this run.
	claimed atomic.Uint64

	mu        sync.Mutex
	sent      []bool   // by sequence number: the broker accepted it
	seen      []uint32 // by sequence number: deliveries
	nSent     int
	nFailed   int
	nRecv     int
	nMatched  int // sent and received at least once
	nForeign  int // not from this run
	lastRecv  time.Time
	hist      *hdrhistogram.Histogram // every latency, in µs
	secHist   *hdrhistogram.Histogram // the latencies of the current second
	secIndex  int
	buckets   []benchBucket
	firstFail error
}

func newRecorder(run uint64, start time.Time, expected int) *recorder {
	return &recorder{
		run: run, start: start,
		sent:    make([]bool, 0, expected),
		seen:    make([]uint32, 0, expected),
		hist:    hdrhistogram.New(latencyLowest, latencyHighest, latencyDigits),
		secHist: hdrhistogram.New(latencyLowest, latencyHighest, 2),
	}
}

// claim hands out n sequence numbers and returns the first.
func (r *recorder) claim(n int) uint64 { return r.claimed.Add(uint64(n)) - uint64(n) }

// grow makes seq a valid index; r.mu is held.
func (r *recorder) grow(seq uint64) {
	for uint64(len(r.sent)) <= seq {
		r.sent = append(r.sent, false)
		r.seen = append(r.seen, 0)
	}
}

// bucket returns the bucket of time t, adding empty ones as needed; r.mu is held.
func (r *recorder) bucket(t time.Time) *benchBucket {
	i := max(0, int(t.Sub(r.start)/time.Second))
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, benchBucket{})
	}
	return &r.buckets[i]
}

// published records the outcome of publishing messages first..first+n-1; failed[i] marks
// message first+i as refused.
func (r *recorder) published(first uint64, n int, failed func(i int) bool, err error, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.grow(first + uint64(n) - 1)
	b := r.bucket(now)
	for i := range n {
		if failed(i) {
			r.nFailed++
			if r.firstFail == nil {
				r.firstFail = err
			}
			continue
		}
		seq := first + uint64(i)
		r.sent[seq] = true
		r.nSent++
		b.Sent++
		if r.seen[seq] > 0 {
			r.nMatched++
		}
	}
}

// received records a delivery of payload at now.
func (r *recorder) received(payload []byte, now time.Time) {
	seq, sentAt, ok := decodeBenchPayload(payload, r.run)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok || seq >= r.claimed.Load() {
		r.nForeign++
		return
	}
	r.grow(seq)
	r.seen[seq]++
	r.nRecv++
	if r.seen[seq] == 1 && r.sent[seq] {
		r.nMatched++
	}
	r.lastRecv = now
	i := max(0, int(now.Sub(r.start)/time.Second))
	if i != r.secIndex {
		r.closeSecond()
		r.secIndex = i
	}
	r.bucket(now).Received++
	us := max(latencyLowest, min(latencyHighest, now.Sub(sentAt).Microseconds()))
	_ = r.hist.RecordValue(us) // in range by construction
	_ = r.secHist.RecordValue(us)
}

// closeSecond stores the current second's latency percentiles in its bucket; r.mu is held.
func (r *recorder) closeSecond() {
	if r.secHist.TotalCount() == 0 {
		return
	}
	for len(r.buckets) <= r.secIndex {
		r.buckets = append(r.buckets, benchBucket{})
	}
	r.buckets[r.secIndex].P50ms = usToMs(r.secHist.ValueAtQuantile(50))
	r.buckets[r.secIndex].P99ms = usToMs(r.secHist.ValueAtQuantile(99))
	r.secHist.Reset()
}

func usToMs(us int64) float64 { return float64(us) / 1000 }

// benchProgress is a snapshot for the progress line.
type benchProgress struct {
	Sent, Failed, Received, Matched int
	P50ms, P99ms                    float64
	LastRecv                        time.Time
}

func (r *recorder) progress() benchProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	return benchProgress{
		Sent: r.nSent, Failed: r.nFailed, Received: r.nRecv, Matched: r.nMatched, LastRecv: r.lastRecv,
		P50ms: usToMs(r.hist.ValueAtQuantile(50)), P99ms: usToMs(r.hist.ValueAtQuantile(99)),
	}
}

// benchLatency is the end-to-end latency summary, in milliseconds.
type benchLatency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

// final returns the tally, latency summary and per-second buckets of the run.
func (r *recorder) final() (benchTally, benchLatency, []benchBucket, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeSecond()
	lat := benchLatency{
		P50: usToMs(r.hist.ValueAtQuantile(50)), P90: usToMs(r.hist.ValueAtQuantile(90)),
		P99: usToMs(r.hist.ValueAtQuantile(99)), P999: usToMs(r.hist.ValueAtQuantile(99.9)),
		Max: usToMs(r.hist.Max()), Mean: r.hist.Mean() / 1000,
	}
	return reconcile(r.sent, r.seen), lat, append([]benchBucket(nil), r.buckets...), r.nForeign
}

// firstFailure is the error of the first publish that failed, if any.
func (r *recorder) firstFailure() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.firstFail
}
