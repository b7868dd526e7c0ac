package outbox

import (
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
