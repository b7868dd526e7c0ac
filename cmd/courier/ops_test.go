package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func runCmd(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &o, &e)
	return code, o.String(), e.String()
}

func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"publish", "-h"}, {"publish", "--help"}, {"tail", "-h"}, {"redrive", "--help"},
		{"dlq", "-h"}, {"dlq", "list", "-h"}, {"dlq", "redrive", "-h"}, {"ping", "-h"}, {"version", "-h"},
	} {
		if code, _, stderr := runCmd(t, "", args...); code != 0 {
			t.Errorf("courier %s: exit %d; want 0 (stderr %q)", strings.Join(args, " "), code, stderr)
		}
	}
	for _, args := range [][]string{{}, {"nope"}, {"publish"}, {"dlq"}, {"dlq", "nope"}, {"publish", "-nope"}} {
		if code, _, _ := runCmd(t, "", args...); code != 2 {
			t.Errorf("courier %s: exit %d; want 2", strings.Join(args, " "), code)
		}
	}
}

func TestErrorPrefixOnce(t *testing.T) {
	for _, args := range [][]string{
		{"publish", "-url", "nats://u:secret@h", "-topic", "t", "x"},
		{"publish", "-url", "memory://", "-topic", "bad topic", "x"},
		{"publish", "-topic", "t"},
		{"ping", "-url", "memory://", "x"},
		{"ping", "nats://h"},
	} {
		code, _, stderr := runCmd(t, "", args...)
		if code == 0 {
			t.Errorf("courier %v succeeded", args)
		}
		if !strings.HasPrefix(stderr, "courier: ") || strings.Count(stderr, "courier:") != 1 || strings.Contains(stderr, "usage:") {
			t.Errorf("courier %v: stderr %q; want one \"courier: \" prefix", args, stderr)
		}
		if strings.Contains(stderr, "secret") {
			t.Errorf("password in %q", stderr)
		}
	}
}

func TestPublishFile(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", 17<<20) // over the old 16 MiB line cap
	path := filepath.Join(dir, "msgs")
	if err := os.WriteFile(path, []byte("a\r\n"+long+"\nlast-without-newline"), 0o600); err != nil {
		t.Fatal(err)
	}
	// memory:// takes up to 10 MiB: raise its limit for the long line.
	url := "memory://?max_message_bytes=33554432"
	code, stdout, stderr := runCmd(t, "", "publish", "-url", url, "-topic", "t", "-id", "f", "-file", path)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "published f-0 to t\npublished f-1 to t\npublished f-2 to t\n" {
		t.Errorf("stdout %q", stdout)
	}
	code, stdout, stderr = runCmd(t, "one\ntwo\n", "publish", "-url", "memory://", "-topic", "t", "-id", "s", "-file", "-")
	if code != 0 || stdout != "published s-0 to t\npublished s-1 to t\n" {
		t.Errorf("-file -: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	// 250 lines go out in batches of linesPerBatch.
	code, stdout, _ = runCmd(t, strings.Repeat("m\n", 250), "publish", "-url", "memory://", "-topic", "t")
	if code != 0 || strings.Count(stdout, "published ") != 250 {
		t.Errorf("250 lines: exit %d, %d published", code, strings.Count(stdout, "published "))
	}
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-file", empty}, "is empty"},
		{[]string{"-file", filepath.Join(dir, "missing")}, "no such file"},
		{[]string{"-file", path, "payload"}, "not both"},
	} {
		code, _, stderr := runCmd(t, "", append([]string{"publish", "-url", "memory://", "-topic", "t"}, tc.args...)...)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("publish %v: exit %d, stderr %q; want %q", tc.args, code, stderr, tc.want)
		}
	}
}

func TestTailDeletesItsSubscription(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	if err := tail(ctx, []string{"-url", "memory://", "-topic", "t"}, &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "deleted subscription courier-tail-") {
		t.Errorf("output %q", out.String())
	}
	// A named subscription is the user's: it stays.
	out.Reset()
	if err := tail(ctx, []string{"-url", "memory://", "-topic", "t", "-subscription", "mine"}, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "deleted") {
		t.Errorf("tail deleted a named subscription: %q", out.String())
	}
}

func TestRedriveSaysItIsWaiting(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "redrive", "-url", "memory://", "-topic", "t", "-subscription", "s", "-wait", "1s", "-idle", "100ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if !strings.Contains(stdout, "no dead-lettered messages on t.dlq (subscription s.dlq) yet; waiting up to 1s") || !strings.Contains(stdout, "moved 0") {
		t.Errorf("stdout %q", stdout)
	}
	code, stdout, _ = runCmd(t, "", "dlq", "redrive", "-url", "memory://", "-topic", "t", "-subscription", "s", "-wait", "600ms", "-idle", "100ms")
	if code != 0 || !strings.Contains(stdout, "moved 0") {
		t.Errorf("dlq redrive: exit %d, stdout %q", code, stdout)
	}
}

func TestDLQListEmpty(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "dlq", "list", "-url", "memory://", "-topic", "t", "-subscription", "s", "-wait", "50ms")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if stdout != "listed 0 of 0 dead-lettered message(s) from t.dlq, subscription s.dlq (left in place)\n" {
		t.Errorf("stdout %q", stdout)
	}
	if code, _, _ := runCmd(t, "", "dlq", "list", "-url", "memory://", "-topic", "t"); code != 2 {
		t.Errorf("dlq list without -subscription: exit %d", code)
	}
}

func TestPingAndVersion(t *testing.T) {
	code, stdout, stderr := runCmd(t, "", "ping", "memory://")
	if code != 0 || !strings.HasPrefix(stdout, "ok: memory at memory://") {
		t.Errorf("ping: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, _ = runCmd(t, "", "version")
	if code != 0 || !strings.HasPrefix(stdout, "courier ") {
		t.Errorf("version: exit %d, %q", code, stdout)
	}
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.modified", Value: "true"}}}
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{bi, true, "courier v1.2.3 (go1.26.0, revision 0123456789ab+dirty)"},
		{&debug.BuildInfo{GoVersion: "go1.26.0"}, true, "courier (devel) (go1.26.0)"},
		{nil, false, "courier (unknown version: built without module information)"},
	} {
		if got := versionLine(tc.bi, tc.ok); got != tc.want {
			t.Errorf("versionLine = %q; want %q", got, tc.want)
		}
	}
}
