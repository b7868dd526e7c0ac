package sqs

import (
	"errors"
	"testing"

	"github.com/courierhq/courier/transport/driver"
)

// TestBacklogOf: the three counts are read into their fields; a missing or malformed count
// is an error, never a made-up zero.
func TestBacklogOf(t *testing.T) {
	full := map[string]string{
		"ApproximateNumberOfMessages":           "500",
		"ApproximateNumberOfMessagesNotVisible": "7",
		"ApproximateNumberOfMessagesDelayed":    "3",
	}
	got, err := backlogOf(full)
	want := driver.Backlog{Messages: 500, InFlight: 7, Delayed: 3, Consumers: driver.BacklogUnknown, Approximate: true}
	if err != nil || got.Messages != want.Messages || got.InFlight != want.InFlight || got.Delayed != want.Delayed ||
		got.Consumers != want.Consumers || !got.Approximate {
		t.Fatalf("backlogOf = %+v, %v; want %+v", got, err, want)
	}
	for _, tc := range []struct {
		name, attr, value string
		drop              bool
	}{
		{name: "missing", attr: "ApproximateNumberOfMessages", drop: true},
		{name: "not a number", attr: "ApproximateNumberOfMessagesNotVisible", value: "many"},
		{name: "negative", attr: "ApproximateNumberOfMessagesDelayed", value: "-1"},
		{name: "empty", attr: "ApproximateNumberOfMessages", value: ""},
	} {
		attrs := map[string]string{}
		for k, v := range full {
			attrs[k] = v
		}
		if tc.drop {
			delete(attrs, tc.attr)
		} else {
			attrs[tc.attr] = tc.value
		}
		if _, err := backlogOf(attrs); !errors.Is(err, driver.ErrUnavailable) {
			t.Errorf("%s: %v; want an error wrapping ErrUnavailable", tc.name, err)
		}
	}
}
