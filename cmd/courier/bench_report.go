package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/courierhq/courier/transport"
)

// Progress line timing.
const (
	benchPollEvery     = 100 * time.Millisecond
	benchProgressEvery = 500 * time.Millisecond
)

// benchResult is what courier bench reports; -json prints it as one object.
type benchResult struct {
	Broker       string  `json:"broker"`
	URL          string  `json:"url"` // credentials redacted
	Topic        string  `json:"topic"`
	Subscription string  `json:"subscription"`
	Size         int     `json:"size_bytes"`
	Rate         float64 `json:"rate"` // requested messages per second; 0: as fast as possible
	Publishers   int     `json:"publishers"`
	Consumers    int     `json:"consumers"`
	Batch        int     `json:"batch"`
	Keys         int     `json:"keys"`
	benchTally
	Failed       int           `json:"failed"`  // publishes the broker refused
	Foreign      int           `json:"foreign"` // deliveries not from this run, ignored
	SendSeconds  float64       `json:"send_seconds"`
	TotalSeconds float64       `json:"total_seconds"` // start to the last delivery (or the end of sending)
	SendRate     float64       `json:"send_rate"`     // messages accepted per second
	ReceiveRate  float64       `json:"receive_rate"`  // deliveries per second
	Latency      benchLatency  `json:"latency"`       // end to end: send time to handler
	PerSecond    []benchBucket `json:"per_second"`
	Cleanup      string        `json:"cleanup,omitempty"`
	Interrupted  bool          `json:"interrupted,omitempty"` // stopped (Ctrl-C) before the end: lost counts what had not arrived yet

	firstFail error
}

// newBenchResult tallies a finished run; pubEnd is when sending ended (zero if it did not).
func newBenchResult(conn *transport.Conn, cfg benchConfig, rec *recorder, pubEnd time.Time) benchResult {
	tally, lat, buckets, foreign := rec.final()
	p := rec.progress()
	if pubEnd.IsZero() {
		pubEnd = time.Now()
	}
	end := pubEnd
	if p.LastRecv.After(end) {
		end = p.LastRecv
	}
	url := cfg.URL
	if url == "" {
		url = transport.URLFromEnv()
	}
	res := benchResult{
		Broker: conn.Capabilities().Name, URL: transport.RedactURL(url),
		Topic: cfg.Topic, Subscription: cfg.Subscription, Size: cfg.Size, Rate: cfg.Rate,
		Publishers: cfg.Publishers, Consumers: cfg.Consumers, Batch: cfg.Batch, Keys: cfg.Keys,
		benchTally: tally, Failed: p.Failed, Foreign: foreign,
		SendSeconds: pubEnd.Sub(rec.start).Seconds(), TotalSeconds: end.Sub(rec.start).Seconds(),
		Latency: lat, PerSecond: buckets, firstFail: rec.firstFailure(),
	}
	res.SendRate = perSecond(tally.Sent, res.SendSeconds)
	res.ReceiveRate = perSecond(tally.Received, res.TotalSeconds)
	return res
}

func perSecond(n int, seconds float64) float64 {
	if seconds <= 0 {
		return 0
	}
	return float64(n) / seconds
}

// reportBench prints the result: one JSON object, or the plain summary.
func reportBench(out io.Writer, cfg benchConfig, res benchResult) error {
	if cfg.JSON {
		enc := json.NewEncoder(out)
		return enc.Encode(res)
	}
	rate := "as fast as possible"
	if res.Rate > 0 {
		rate = fmt.Sprintf("%g/s", res.Rate)
	}
	fmt.Fprintf(out, "bench %s: topic %s, subscription %s; %d-byte payloads, %d publisher(s) × batch %d, %d consumer(s), %d key(s), rate %s\n",
		res.Broker, res.Topic, res.Subscription, res.Size, res.Publishers, res.Batch, res.Consumers, res.Keys, rate)
	fmt.Fprintf(out, "sent      %d in %.2fs (%.0f msg/s), %d failed\n", res.Sent, res.SendSeconds, res.SendRate, res.Failed)
	fmt.Fprintf(out, "received  %d in %.2fs (%.0f msg/s): %d unique, %d lost, %d duplicated, %d unexpected\n",
		res.Received, res.TotalSeconds, res.ReceiveRate, res.Unique, res.Lost, res.Duplicated, res.Unexpected)
	if res.Rate > 0 && res.SendRate < 0.9*res.Rate {
		fmt.Fprintf(out, "          the publishers could not keep up with -rate %g (add -publishers or -batch)\n", res.Rate)
	}
	l := res.Latency
	fmt.Fprintf(out, "latency   p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s (send to handler)\n",
		fmtMs(l.P50), fmtMs(l.P90), fmtMs(l.P99), fmtMs(l.P999), fmtMs(l.Max), fmtMs(l.Mean))
	if res.Interrupted {
		fmt.Fprintf(out, "interrupted before the end: %d message(s) had not arrived\n", res.Lost)
	}
	if res.Foreign > 0 {
		fmt.Fprintf(out, "ignored   %d message(s) on the topic that this run did not send\n", res.Foreign)
	}
	if res.Cleanup != "" {
		fmt.Fprintln(out, res.Cleanup)
	}
	return nil
}

// fmtMs formats milliseconds with a precision that suits their size.
func fmtMs(ms float64) string {
	switch {
	case ms >= 1000:
		return fmt.Sprintf("%.2fs", ms/1000)
	case ms >= 10:
		return fmt.Sprintf("%.0fms", ms)
	}
	return fmt.Sprintf("%.2fms", ms)
}

// benchWait waits until every sent message arrived, or sending ended and nothing arrived for
// cfg.Drain, or ctx ended, printing the progress line to progress (when not nil). It returns
// when sending ended (zero if it did not) and the error of a subscriber that stopped early.
func benchWait(ctx context.Context, cfg benchConfig, rec *recorder, pubDone <-chan time.Time, subErr <-chan error, progress io.Writer) (time.Time, error) {
	poll := time.NewTicker(benchPollEvery)
	defer poll.Stop()
	line := progressLine{out: progress, last: time.Now()}
	defer line.finish(rec)
	var pubEnd time.Time
	for {
		select {
		case <-ctx.Done():
			return pubEnd, nil
		case err := <-subErr:
			if err == nil {
				err = fmt.Errorf("it stopped")
			}
			return pubEnd, fmt.Errorf("bench: subscriber: %w", err)
		case pubEnd = <-pubDone:
		case now := <-poll.C:
			p := rec.progress()
			if !pubEnd.IsZero() && p.Matched >= p.Sent {
				return pubEnd, nil
			}
			if !pubEnd.IsZero() && now.Sub(maxTime(pubEnd, p.LastRecv)) > cfg.Drain {
				return pubEnd, nil
			}
			line.maybePrint(now, p)
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// progressLine prints the live progress line, refreshed in place, every benchProgressEvery.
type progressLine struct {
	out     io.Writer // nil: no progress line
	last    time.Time
	prev    benchProgress
	printed bool
}

func (l *progressLine) maybePrint(now time.Time, p benchProgress) {
	if l.out == nil || now.Sub(l.last) < benchProgressEvery {
		return
	}
	secs := now.Sub(l.last).Seconds()
	fmt.Fprintf(l.out, "\rsent %d (%.0f/s)  received %d (%.0f/s)  p50 %s  p99 %s\x1b[K",
		p.Sent, float64(p.Sent-l.prev.Sent)/secs, p.Received, float64(p.Received-l.prev.Received)/secs,
		fmtMs(p.P50ms), fmtMs(p.P99ms))
	l.last, l.prev, l.printed = now, p, true
}

// finish ends a printed progress line with its final counts.
func (l *progressLine) finish(rec *recorder) {
	if l.out == nil || !l.printed {
		return
	}
	p := rec.progress()
	fmt.Fprintf(l.out, "\rsent %d  received %d  p50 %s  p99 %s\x1b[K\n", p.Sent, p.Received, fmtMs(p.P50ms), fmtMs(p.P99ms))
}

// benchProgressOut is where the progress line goes: stderr when mode is "always", or "auto"
// and stderr is a terminal; nil otherwise.
func benchProgressOut(mode string, stderr io.Writer) io.Writer {
	if mode == "always" || (mode == "auto" && isTerminal(stderr)) {
		return stderr
	}
	return nil
}

// isTerminal reports whether w is a character device other than /dev/null.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(st, null)
}
