package urlparam

import (
	"log/slog"
	"time"
)

// SetDuration returns a Set that stores a Duration value in the field f points to.
func SetDuration[C any](f func(*C) *time.Duration) func(*C, Value) error {
	return func(c *C, v Value) error { *f(c) = v.Duration; return nil }
}

// SetInt returns a Set that stores an Int value in the field f points to.
func SetInt[C any](f func(*C) *int) func(*C, Value) error {
	return func(c *C, v Value) error { *f(c) = v.Int; return nil }
}

// SetBool returns a Set that stores a Bool value in the field f points to.
func SetBool[C any](f func(*C) *bool) func(*C, Value) error {
	return func(c *C, v Value) error { *f(c) = v.Bool; return nil }
}

// SetNotBool returns a Set that stores the negation of a Bool value: a parameter such as
// create=false sets a field such as DisableCreate.
func SetNotBool[C any](f func(*C) *bool) func(*C, Value) error {
	return func(c *C, v Value) error { *f(c) = !v.Bool; return nil }
}

// SetString returns a Set that stores a String value in the field f points to.
func SetString[C any](f func(*C) *string) func(*C, Value) error {
	return func(c *C, v Value) error { *f(c) = v.Raw; return nil }
}

// LogNotes logs Parse's deprecation notes at Warn level, one line each.
func LogNotes(log *slog.Logger, notes []string) {
	for _, n := range notes {
		log.Warn("courier: " + n)
	}
}
