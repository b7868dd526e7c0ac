// Package logtest checks that code logs only through the logger it was given: Capture returns
// a logger that records every line, and makes slog.Default() fail the test on any line
// written to it until the test ends.
package logtest

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// Records are the lines a capturing logger received.
type Records struct {
	mu    sync.Mutex
	lines []string
}

// Lines returns the lines received so far, "LEVEL message key=value …".
func (r *Records) Lines() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// Contains reports whether some line contains s.
func (r *Records) Contains(s string) bool {
	for _, l := range r.Lines() {
		if strings.Contains(l, s) {
			return true
		}
	}
	return false
}

// Capture returns a logger (every level, Debug included) recording into the returned Records,
// and replaces slog.Default() with a handler that reports any line as a test error, until the
// test's cleanup restores the previous default. The test must not run in parallel with
// others (slog.Default is process-wide).
func Capture(t testing.TB) (*slog.Logger, *Records) {
	t.Helper()
	rec := &Records{}
	old, oldOut, oldFlags := slog.Default(), log.Writer(), log.Flags()
	slog.SetDefault(slog.New(&handler{add: func(line string) {
		t.Errorf("a line reached slog.Default() instead of the given logger: %s", line)
	}}))
	t.Cleanup(func() {
		// slog.SetDefault also redirects the log package to the new handler, and setting the
		// original default back does not undo that: restore log's output and flags too.
		slog.SetDefault(old)
		log.SetOutput(oldOut)
		log.SetFlags(oldFlags)
	})
	return slog.New(&handler{add: func(line string) {
		rec.mu.Lock()
		rec.lines = append(rec.lines, line)
		rec.mu.Unlock()
	}}), rec
}

// handler formats each record as one line and passes it to add.
type handler struct {
	add   func(string)
	attrs []slog.Attr
	group string
}

func (h *handler) Enabled(context.Context, slog.Level) bool { return true }

func (h *handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s%s", h.group, a)
		return true
	})
	h.add(b.String())
	return nil
}

func (h *handler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *handler) WithGroup(name string) slog.Handler {
	c := *h
	c.group += name + "."
	return &c
}
