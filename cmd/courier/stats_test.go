package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/courierhq/courier/transport"
)

func TestStatsUsage(t *testing.T) {
	for _, args := range [][]string{
		{"stats"},
		{"stats", "orders"},
		{"stats", "a", "b", "c", "d"},
		{"stats", "-url", "memory://", "memory://", "orders", "billing"},
		{"stats", "-topic", "orders"},
		{"stats", "-watch", "-1s", "orders", "billing"},
		{"stats", "-nope"},
	} {
		if code, _, stderr := runCmd(t, "", args...); code != 2 {
			t.Errorf("courier %s: exit %d (stderr %q); want 2", strings.Join(args, " "), code, stderr)
		}
	}
	if code, _, _ := runCmd(t, "", "stats", "-h"); code != 0 {
		t.Errorf("stats -h: exit %d; want 0", code)
	}
}

// TestStatsNotFound: memory:// lives as long as the command, so any subscription is unknown:
// exit 1, one "courier:" prefix, the reason named.
func TestStatsNotFound(t *testing.T) {
	for _, args := range [][]string{
		{"stats", "memory://", "orders", "billing"},
		{"stats", "-url", "memory://", "orders", "billing"},
		{"stats", "-url", "memory://", "-topic", "orders", "-subscription", "billing", "-json"},
	} {
		code, stdout, stderr := runCmd(t, "", args...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "subscription not found") || strings.Count(stderr, "courier:") != 1 {
			t.Errorf("courier %s: exit %d, stdout %q, stderr %q; want exit 1 naming the missing subscription",
				strings.Join(args, " "), code, stdout, stderr)
		}
	}
}

func TestStatsReportText(t *testing.T) {
	var out bytes.Buffer
	r := newStatsReport("kafka", "orders", "billing", transport.Backlog{
		Messages: 12, InFlight: transport.BacklogUnknown, Consumers: 2,
		Partitions: []transport.PartitionLag{{Partition: 0, Lag: 5, CommittedOffset: 10, EndOffset: 15}, {Partition: 1, Lag: 7, CommittedOffset: -1, EndOffset: 7}},
	})
	if err := r.print(&out, false); err != nil {
		t.Fatal(err)
	}
	want := `orders/billing on kafka
  ready (lag)  12
  in flight    unknown
  delayed      0
  consumers    2
  partition    lag  committed  end
  0            5    10         15
  1            7    none       7
`
	if out.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", out.String(), want)
	}

	out.Reset()
	r = newStatsReport("sqs", "q", "q", transport.Backlog{Messages: 500, InFlight: 3, Delayed: 0, Consumers: transport.BacklogUnknown, Approximate: true})
	if err := r.print(&out, false); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"ready      ~500", "in flight  ~3", "consumers  unknown", "approximate"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("sqs text lacks %q:\n%s", s, out.String())
		}
	}
}

func TestStatsReportJSON(t *testing.T) {
	var out bytes.Buffer
	r := newStatsReport("rabbitmq", "orders", "billing", transport.Backlog{
		Messages: 500, InFlight: transport.BacklogUnknown, Delayed: transport.BacklogUnknown, Consumers: 1,
	})
	if err := r.print(&out, true); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("not JSON: %v: %s", err, out.String())
	}
	want := map[string]any{
		"broker": "rabbitmq", "topic": "orders", "subscription": "billing", "messages": 500.0,
		"in_flight": nil, "delayed": nil, "consumers": 1.0, "pending": 500.0, "approximate": false,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v; want %v (%s)", k, got[k], v, out.String())
		}
	}
	if _, ok := got["partitions"]; ok {
		t.Errorf("partitions present without any: %s", out.String())
	}
	if _, ok := got["time"].(string); !ok {
		t.Errorf("no time: %s", out.String())
	}
}
