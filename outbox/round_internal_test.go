package outbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/courierhq/courier/transport"
)

func TestConfirmed(t *testing.T) {
	pe := func(idx ...int) error {
		e := &transport.PublishError{Topic: "t", Total: 5}
		for _, i := range idx {
			e.Failed = append(e.Failed, transport.FailedMessage{Index: i, Err: errors.New("x")})
		}
		return fmt.Errorf("wrapped: %w", e)
	}
	for _, c := range []struct {
		name string
		err  error
		want int
	}{
		{"nil: all", nil, 5},
		{"plain error: none", errors.New("down"), 0},
		{"publish error: prefix before the first failure", pe(3, 1), 1},
		{"first failed", pe(0), 0},
		{"last failed", pe(4), 4},
		{"publish error without indexes: none", pe(), 0},
	} {
		if got := confirmed(c.err, 5); got != c.want {
			t.Errorf("%s: confirmed = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestGroups(t *testing.T) {
	keyed := []row{{seq: 1, key: "a"}, {seq: 2, key: "b"}, {seq: 3, key: "a"}, {seq: 5, key: "b"}}
	unkeyed := []row{{seq: 4}, {seq: 6}}
	var got [][]int64
	for _, g := range groups(keyed, unkeyed) {
		var s []int64
		for _, w := range g {
			s = append(s, w.seq)
		}
		got = append(got, s)
	}
	want := [][]int64{{1, 3}, {2, 5}, {4}, {6}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("groups = %v, want %v", got, want)
	}
}

func TestDecide(t *testing.T) {
	pe := func(entries ...transport.FailedMessage) error {
		return fmt.Errorf("wrapped: %w", &transport.PublishError{Topic: "t", Total: 4, Failed: entries})
	}
	fm := func(i int, err error) transport.FailedMessage { return transport.FailedMessage{Index: i, Err: err} }
	wrap := func(err error) error { return fmt.Errorf("adapter: %w", err) }
	for _, c := range []struct {
		name   string
		err    error
		index  int
		n      int
		want   verdict
		reason string
	}{
		{"broker down: retry", wrap(transport.ErrUnavailable), 0, 1, retry, ""},
		{"closed: retry", wrap(transport.ErrClosed), 0, 1, retry, ""},
		{"publish timeout: retry", wrap(context.DeadlineExceeded), 0, 3, retry, ""},
		{"cancelled: retry", context.Canceled, 0, 1, retry, ""},
		{"unknown error: retry", errors.New("boom"), 0, 1, retry, ""},
		{"nacked: retry", wrap(transport.ErrNacked), 0, 1, retry, ""},
		{"access denied (operator fixes it): retry", wrap(transport.ErrAccessDenied), 0, 1, retry, ""},
		{"topic not found (operator creates it): retry", wrap(transport.ErrTopicNotFound), 0, 1, retry, ""},
		{"too large, single message: dead", wrap(transport.ErrMessageTooLarge), 0, 1, deadLetter, ReasonTooLarge},
		{"invalid topic, single message: dead", wrap(transport.ErrInvalidTopic), 0, 1, deadLetter, ReasonInvalidTopic},
		{"invalid message, single message: dead", wrap(transport.ErrInvalidMessage), 0, 1, deadLetter, ReasonInvalidMessage},
		{"bad headers: dead", fmt.Errorf("%w: row 3: json", errBadHeaders), 0, 1, deadLetter, ReasonBadHeaders},
		{"too large, batch, no index: send alone", wrap(transport.ErrMessageTooLarge), 0, 3, sendAlone, ReasonTooLarge},
		{"publish error names the index: dead", pe(fm(2, transport.ErrMessageTooLarge)), 2, 4, deadLetter, ReasonTooLarge},
		{"publish error, the index is transient: retry", pe(fm(1, transport.ErrUnavailable), fm(2, transport.ErrMessageTooLarge)), 1, 4, retry, ""},
		{"publish error, the index is permanent though a later one is transient: dead",
			pe(fm(1, transport.ErrInvalidMessage), fm(2, transport.ErrUnavailable)), 1, 4, deadLetter, ReasonInvalidMessage},
		{"permanent and transient at once: retry", errors.Join(transport.ErrMessageTooLarge, transport.ErrUnavailable), 0, 1, retry, ""},
		{"publish error without the index, batch: send alone", pe(fm(3, transport.ErrMessageTooLarge)), 0, 4, sendAlone, ReasonTooLarge},
		{"publish error without entries, one message: the plain error (no kind) retries", pe(), 0, 1, retry, ""},
	} {
		v, reason, rowErr := decide(c.err, c.index, c.n)
		if v != c.want || reason != c.reason {
			t.Errorf("%s: decide = %v %q, want %v %q", c.name, v, reason, c.want, c.reason)
		}
		if rowErr == nil {
			t.Errorf("%s: no row error", c.name)
		}
	}
}
