// Package confcheck holds the checks that adapters' Config.Validate methods share, so that
// each writes only what is its own: here, that counts, sizes and durations are not negative.
package confcheck

import (
	"fmt"
	"time"
)

// Field is a named configuration value that must not be negative; make it with Int or Dur.
type Field struct {
	name     string
	negative bool
	value    any
}

// Int is the int field called name.
func Int(name string, v int) Field { return Field{name: name, negative: v < 0, value: v} }

// Dur is the duration field called name.
func Dur(name string, v time.Duration) Field { return Field{name: name, negative: v < 0, value: v} }

// NonNegative returns "<name> <value> is negative" for the first of fields that is, nil if
// none is. The caller wraps it in its own invalid-configuration error.
func NonNegative(fields ...Field) error {
	for _, f := range fields {
		if f.negative {
			return fmt.Errorf("%s %v is negative", f.name, f.value)
		}
	}
	return nil
}
