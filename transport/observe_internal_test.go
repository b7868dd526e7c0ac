package transport

import (
	"errors"
	"testing"
	"time"

	"github.com/courierhq/courier/message"
)

func TestEventOf(t *testing.T) {
	fail := errors.New("x")
	tests := []struct {
		name string
		v    verdict
		err  error
		want EventKind // 0: no event
	}{
		{"ack", verdict{act: actAck}, nil, EventAck},
		{"retry in place", verdict{act: actRetry, failed: true}, fail, EventRetry},
		{"nack after a failure", verdict{act: actNack, failed: true}, fail, EventNack},
		{"requeue is a deferral", verdict{act: actNack}, message.Requeue(fail, 0), EventDefer},
		{"deferral parked", verdict{act: actPark}, message.Defer(fail, 0), EventDefer},
		{"deferral holding its key", verdict{act: actHold}, message.DeferInOrder(fail, 0, nil), EventDefer},
		{"park after a failed dead-letter attempt", verdict{act: actPark}, fail, EventPark},
		{"release on stop", verdict{act: actRelease}, fail, EventRelease},
		{"dead-letter is reported at the hand-off", verdict{act: actDeadLetter}, fail, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.v.delay = time.Second
			ev, ok := eventOf(tc.v, tc.err)
			if tc.want == 0 {
				if ok {
					t.Fatalf("eventOf = %v; want no event", ev.Kind)
				}
				return
			}
			if !ok || ev.Kind != tc.want || ev.Delay != time.Second || ev.Err != tc.err {
				t.Errorf("eventOf = %+v, %v; want kind %v with the verdict's delay and error", ev, ok, tc.want)
			}
		})
	}
}
