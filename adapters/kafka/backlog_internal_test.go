package kafka

import (
	"fmt"
	"testing"

	"github.com/courierhq/courier/transport/driver"
)

// TestPartitionLags: each partition's lag counts from where the subscriber would resume it.
func TestPartitionLags(t *testing.T) {
	for _, tc := range []struct {
		name      string
		committed map[int]int64
		first     int64
		end       int64
		reset     StartOffset
		want      driver.PartitionLag
	}{
		{"committed mid-log", map[int]int64{0: 40}, 0, 100, StartEarliest, driver.PartitionLag{Lag: 60, CommittedOffset: 40, EndOffset: 100}},
		{"caught up", map[int]int64{0: 100}, 0, 100, StartEarliest, driver.PartitionLag{Lag: 0, CommittedOffset: 100, EndOffset: 100}},
		{"nothing committed: from the oldest record", nil, 10, 100, StartEarliest, driver.PartitionLag{Lag: 90, CommittedOffset: -1, EndOffset: 100}},
		{"nothing committed, StartLatest reset: still the oldest", nil, 10, 100, StartLatest, driver.PartitionLag{Lag: 90, CommittedOffset: -1, EndOffset: 100}},
		{"retention deleted past the commit", map[int]int64{0: 5}, 30, 100, StartEarliest, driver.PartitionLag{Lag: 70, CommittedOffset: 5, EndOffset: 100}},
		{"commit past the end, reset earliest", map[int]int64{0: 500}, 20, 100, StartEarliest, driver.PartitionLag{Lag: 80, CommittedOffset: 500, EndOffset: 100}},
		{"commit past the end, reset latest", map[int]int64{0: 500}, 20, 100, StartLatest, driver.PartitionLag{Lag: 0, CommittedOffset: 500, EndOffset: 100}},
		{"empty partition", nil, 0, 0, StartEarliest, driver.PartitionLag{Lag: 0, CommittedOffset: -1, EndOffset: 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lags, total := partitionLags([]int{0}, tc.committed, map[int]int64{0: tc.first}, map[int]int64{0: tc.end}, tc.reset)
			if len(lags) != 1 || lags[0] != tc.want || total != tc.want.Lag {
				t.Errorf("partitionLags = %+v, %d; want %+v", lags, total, tc.want)
			}
		})
	}
}

// TestPartitionLagsSum: partitions come out in ID order and Messages is their sum.
func TestPartitionLagsSum(t *testing.T) {
	lags, total := partitionLags([]int{2, 0, 1},
		map[int]int64{0: 10, 2: 5},
		map[int]int64{0: 0, 1: 0, 2: 0},
		map[int]int64{0: 15, 1: 7, 2: 5}, StartEarliest)
	if got := fmt.Sprint(lags); got != "[{0 5 10 15} {1 7 -1 7} {2 0 5 5}]" {
		t.Errorf("lags = %s", got)
	}
	if total != 12 {
		t.Errorf("total = %d; want 12", total)
	}
}
