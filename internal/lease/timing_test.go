package lease

import (
	"testing"
	"time"
)

func TestCheckTiming(t *testing.T) {
	for _, tc := range []struct {
		lease, retention, storeTimeout time.Duration
		ok                             bool
	}{
		{0, 0, 0, true},
		{time.Second, time.Hour, time.Second, true},
		{time.Hour, time.Hour, 0, true},
		{time.Second, 0, 0, true}, // a default Retention is checked by the caller's defaults
		{-1, 0, 0, false},
		{0, -1, 0, false},
		{0, 0, -1, false},
		{time.Hour, time.Second, 0, false},
	} {
		if err := CheckTiming(tc.lease, tc.retention, tc.storeTimeout); (err == nil) != tc.ok {
			t.Errorf("CheckTiming(%v, %v, %v) = %v; want ok=%v", tc.lease, tc.retention, tc.storeTimeout, err, tc.ok)
		}
	}
}
