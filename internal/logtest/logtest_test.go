package logtest

import (
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
)

// fakeTB records errors instead of failing, to test that Capture reports lines on the default.
type fakeTB struct {
	testing.TB
	errors   []string
	cleanups []func()
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

func TestCapture(t *testing.T) {
	before := slog.Default()
	f := &fakeTB{TB: t}
	logger, rec := Capture(f)
	logger.With("a", 1).WithGroup("g").Debug("given", "b", 2)
	if lines := rec.Lines(); len(lines) != 1 || lines[0] != "DEBUG given a=1 g.b=2" || !rec.Contains("given") {
		t.Errorf("captured %q", lines)
	}
	if len(f.errors) != 0 {
		t.Errorf("errors before any default line: %q", f.errors)
	}
	slog.Info("stray", "k", "v")
	if len(f.errors) != 1 || !strings.Contains(f.errors[0], "INFO stray k=v") {
		t.Errorf("a line on slog.Default(): errors %q", f.errors)
	}
	for _, fn := range f.cleanups {
		fn()
	}
	if slog.Default() != before {
		t.Error("cleanup did not restore slog.Default()")
	}
	n := len(f.errors)
	slog.Info("after the test") // through the log package, which must not reach the test's handler
	log.Print("after the test, log package")
	if len(f.errors) != n {
		t.Errorf("lines after cleanup reached the failing handler: %q", f.errors[n:])
	}
}
