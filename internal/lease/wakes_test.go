package lease

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestWakes(t *testing.T) {
	var w Wakes
	ch := w.Wait("a")
	if isClosed(ch) {
		t.Fatal("woken before the claim ended")
	}
	w.Wake("a")
	if !isClosed(ch) {
		t.Fatal("not woken when the claim ended")
	}
	// A message told "busy" just before the end registers just after it: woken at once, once.
	w.Wake("b")
	if !isClosed(w.Wait("b")) {
		t.Error("a message registering just after the end was not woken")
	}
	if isClosed(w.Wait("b")) {
		t.Error("one end woke two registrations")
	}
}

func TestWakesBounded(t *testing.T) {
	var w Wakes
	first := w.Wait("k0")
	for i := 1; i <= maxWaiting; i++ {
		w.Wait("k" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if !isClosed(first) {
		t.Error("a full registry did not wake its waiters")
	}
	if len(w.chans) > maxWaiting {
		t.Errorf("%d keys kept; want at most %d", len(w.chans), maxWaiting)
	}
}

func TestOwnersUnique(t *testing.T) {
	a, b := NewOwners(), NewOwners()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		for _, id := range []string{a.Next(), b.Next()} {
			if seen[id] {
				t.Fatalf("owner %q handed out twice", id)
			}
			seen[id] = true
		}
	}
}

func TestSettle(t *testing.T) {
	boom, final := errors.New("boom"), errors.New("final")
	live := context.Background()
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name  string
		ctx   context.Context
		again func(error) bool
		errs  []error // what fn returns on each call
		calls int
		want  error
	}{
		{"first call succeeds", live, nil, []error{nil}, 1, nil},
		{"retried once on failure", live, nil, []error{boom, nil}, 2, nil},
		{"only once", live, nil, []error{boom, boom}, 2, boom},
		{"not retried when again says no", live, func(err error) bool { return err != final }, []error{final}, 1, final},
		{"context done: straight to the detached call", done, nil, []error{nil}, 1, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := Settle(tc.ctx, time.Second, tc.again, func(ctx context.Context) error {
				if ctx.Err() != nil {
					t.Error("fn called with a done context")
				}
				calls++
				return tc.errs[calls-1]
			})
			if calls != tc.calls || !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Errorf("calls %d, err %v; want %d, %v", calls, err, tc.calls, tc.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name   string
		handle func() error
		want   string // what settled the claim
		panics bool
	}{
		{"success commits", func() error { return nil }, "commit", false},
		{"failure releases", func() error { return boom }, "release", false},
		{"panic releases and goes on", func() error { panic("bang") }, "release", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var settled []string
			var err error
			panicked := func() (p bool) {
				defer func() { p = recover() != nil }()
				err = Run(tc.handle, func() { settled = append(settled, "release") }, func() { settled = append(settled, "commit") })
				return false
			}()
			if panicked != tc.panics || len(settled) != 1 || settled[0] != tc.want {
				t.Errorf("settled %v, panicked %v; want once %s, panic %v", settled, panicked, tc.want, tc.panics)
			}
			if tc.want == "release" && !tc.panics && !errors.Is(err, boom) {
				t.Errorf("err = %v; want the handler's", err)
			}
		})
	}
}
