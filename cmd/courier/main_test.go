package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// The Pub/Sub client, linked in through adapters/all, pulls in OpenCensus, whose package init
// starts a worker goroutine that lives for the whole process; and its stream keep-alive
// goroutine notices a finished Receive only when its 10-second ticker fires (the integration
// tests' Pub/Sub runs; see adapters/gcppubsub's tests).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreTopFunction("cloud.google.com/go/pubsub/v2.(*messageIterator).streamKeepAliveHandler"))
}

func TestPublishFromArgsAndStdin(t *testing.T) {
	ctx := context.Background()
	var out bytes.Buffer
	if err := publish(ctx, []string{"-url", "memory://", "-topic", "t", "-id", "one", "-header", "a=b", "hello"}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "published one to t\n" {
		t.Errorf("output %q", got)
	}
	out.Reset()
	if err := publish(ctx, []string{"-url", "memory://", "-topic", "t", "-id", "line"}, strings.NewReader("x\ny\n"), &out); err != nil {
		t.Fatal(err)
	}
	if got := out.String(); got != "published line-0 to t\npublished line-1 to t\n" {
		t.Errorf("output %q", got)
	}
}

func TestPublishErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"-url", "memory://", "x"}, "", "-topic is required"},
		{[]string{"-url", "memory://", "-topic", "t"}, "", "nothing on standard input"},
		{[]string{"-url", "memory://", "-topic", "t", "-header", "novalue", "x"}, "", "name=value"},
		{[]string{"-url", "nats://u:secret@h", "-topic", "t", "x"}, "", "unknown URL scheme"},
		{[]string{"-url", "memory://", "-topic", "bad topic", "x"}, "", "invalid topic"},
	}
	for _, tc := range tests {
		var out bytes.Buffer
		err := publish(ctx, tc.args, strings.NewReader(tc.stdin), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("publish %v: err = %v; want it to mention %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

func TestTailMakesItsOwnSubscription(t *testing.T) {
	// memory:// fans out, so tail may make its own subscription; -n 0 with a cancelled
	// context returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := tail(ctx, []string{"-url", "memory://", "-topic", "t"}, &out); err != nil {
		t.Fatalf("tail: %v", err)
	}
	if !strings.Contains(out.String(), "tailing t through subscription courier-tail-") {
		t.Errorf("output %q", out.String())
	}
	if err := tail(context.Background(), []string{"-url", "memory://"}, &out); err == nil || !strings.Contains(err.Error(), "-topic") {
		t.Errorf("tail without -topic: %v", err)
	}
}

func TestRedriveNeedsTopicAndSubscription(t *testing.T) {
	var out bytes.Buffer
	if err := redrive(context.Background(), []string{"-url", "memory://", "-topic", "t"}, &out); err == nil {
		t.Error("redrive without -subscription succeeded")
	}
}
