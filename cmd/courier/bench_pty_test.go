//go:build linux || darwin || freebsd

package main

import (
	"context"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creack/pty"
)

// TestBenchProgressOnTerminal runs bench with a pseudo-terminal as standard output and error
// (-progress auto): the progress line is rewritten in place (\r) at least twice with growing
// counts, and the summary follows it.
func TestBenchProgressOnTerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		noPTY(t, err)
	}
	defer ptmx.Close()
	output := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(ptmx) // ends with EIO once the terminal side is closed
		output <- string(b)
	}()
	code := run(context.Background(), []string{"bench", "-url", "memory://", "-duration", "2s", "-rate", "500"}, strings.NewReader(""), tty, tty)
	_ = tty.Close()
	out := <-output
	if code != 0 {
		t.Fatalf("exit %d; output %q", code, out)
	}
	lines := regexp.MustCompile(`\rsent (\d+) \(\d+/s\)  received (\d+) \(\d+/s\)  p50 \S+  p99 \S+\x1b\[K`).FindAllStringSubmatch(out, -1)
	if len(lines) < 2 {
		t.Fatalf("saw %d progress updates; want at least 2 in %q", len(lines), out)
	}
	prev := -1
	for _, l := range lines {
		n, _ := strconv.Atoi(l[1])
		if n <= prev {
			t.Errorf("progress went from sent %d to %d; want it growing: %q", prev, n, out)
		}
		prev = n
	}
	final := regexp.MustCompile(`\rsent (\d+)  received (\d+)  p50 \S+  p99 \S+\x1b\[K\r?\n`).FindStringSubmatchIndex(out)
	summary := strings.Index(out, "\nsent      ")
	if final == nil || summary < final[1]-1 || out[final[2]:final[3]] != out[final[4]:final[5]] {
		t.Errorf("want the final progress line (as many received as sent), then the summary: %q", out)
	}
}

// TestBenchProgressNever: -progress never keeps the terminal free of the progress line.
func TestBenchProgressNever(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		noPTY(t, err)
	}
	defer ptmx.Close()
	output := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(ptmx)
		output <- string(b)
	}()
	code := run(context.Background(), []string{"bench", "-url", "memory://", "-duration", "1200ms", "-rate", "100", "-progress", "never"}, strings.NewReader(""), tty, tty)
	_ = tty.Close()
	out := <-output
	if code != 0 || strings.Contains(out, "\rsent") || !strings.Contains(out, "\nsent      ") {
		t.Errorf("exit %d; want the summary and no progress line: %q", code, out)
	}
}

// noPTY skips a test that needs a pseudo-terminal where none can be opened, except in CI
// (CI set), where the machine has one and the test must run.
func noPTY(t *testing.T, err error) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("no pseudo-terminal: %v (CI is set: this test must run)", err)
	}
	t.Skipf("no pseudo-terminal: %v", err)
}
