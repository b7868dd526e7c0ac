// Package urlparam is the one parser of URL query parameters shared by Courier's adapters.
//
// An adapter describes its parameters once, as a Table: each Param has a name, deprecated
// aliases, a kind (Duration, Int, Bool, String, List), a setter into the adapter's Config, a
// documentation line and the default shown to users. Parse applies a query to a Config:
// unknown parameters are an error naming the parameter and listing the valid ones, a
// parameter given twice is an error, and a value of the wrong kind is an error naming the
// parameter. Deprecated spellings (an alias, or a bare integer where a duration is expected)
// still work and come back as notes the adapter logs when it opens.
//
// Durations use Go's syntax only ("250ms", "5s", "1m"). A Param may accept a bare integer in
// a legacy unit for one release (RabbitMQ's heartbeat in seconds, for example); such a value
// is converted with its old meaning and reported as deprecated.
//
// The README's parameter lists are checked against the tables (Markdown renders a table as
// the README shows it), so documentation and parser cannot drift.
package urlparam

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Kind is the type of a parameter's value.
type Kind int

// Kinds of parameter values.
const (
	// String is any text.
	String Kind = iota
	// Duration is a Go duration ("250ms", "5s"); never negative.
	Duration
	// Int is a decimal integer, at least Param.Min.
	Int
	// Bool is true or false (also 1, 0, t, f, as strconv.ParseBool reads them).
	Bool
	// List is a comma-separated list; blanks around items are trimmed.
	List
)

// String names the kind as the README and errors show it.
func (k Kind) String() string {
	switch k {
	case Duration:
		return "duration"
	case Int:
		return "integer"
	case Bool:
		return "bool"
	case List:
		return "list"
	default:
		return "string"
	}
}

// Value is a parsed parameter value; the field matching the Param's Kind is set, and Raw
// always is.
type Value struct {
	Raw      string
	Duration time.Duration
	Int      int
	Bool     bool
	List     []string
}

// Param describes one URL parameter of configuration type C.
type Param[C any] struct {
	// Name is the parameter's name in URLs.
	Name string
	// Aliases are deprecated names that still work; using one yields a deprecation note.
	Aliases []string
	// Kind is the type of the value.
	Kind Kind
	// Min is the smallest value of an Int parameter (0: negative values are rejected).
	Min int
	// LegacyUnit, for a Duration parameter, accepts a bare integer in this unit with a
	// deprecation note (0: a bare integer is an error).
	LegacyUnit time.Duration
	// Set stores the value in the configuration. An error is reported naming the parameter.
	Set func(c *C, v Value) error
	// Doc is the one-line description shown in the README.
	Doc string
	// Default is the default as the README shows it ("5s", "true", "—" for none).
	Default string
}

// Table is an adapter's list of parameters.
type Table[C any] struct {
	// Scheme prefixes error messages ("kafka: unknown parameter …").
	Scheme string
	// Params are the adapter's parameters, in the order the README lists them.
	Params []Param[C]
	// Passthrough names parameters the adapter leaves to its client library; Parse returns
	// them untouched. Repeating them is allowed.
	Passthrough []string
}

// ErrParam is wrapped by every error Parse returns; adapters wrap it in turn with their
// driver.ErrInvalidURL.
var ErrParam = errors.New("bad URL parameter")

// Parse applies the query q to c. It returns the passthrough parameters untouched and
// the deprecation notes for the adapter to log ("connection_timeout is deprecated; use
// dial_timeout"). Parameters are applied in sorted order, so errors are deterministic.
func (t Table[C]) Parse(q url.Values, c *C) (rest url.Values, notes []string, err error) {
	rest = url.Values{}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range q {
			if !yield(k) {
				return
			}
		}
	}) {
		vs := q[k]
		if slices.Contains(t.Passthrough, k) {
			rest[k] = vs
			continue
		}
		p, alias := t.lookup(k)
		if p == nil {
			return nil, nil, t.errorf("unknown parameter %q (valid: %s)", k, strings.Join(t.Names(), ", "))
		}
		if len(vs) != 1 {
			return nil, nil, t.errorf("parameter %q given %d times", k, len(vs))
		}
		if alias {
			notes = append(notes, fmt.Sprintf("URL parameter %s is deprecated; use %s", k, p.Name))
		}
		v, note, err := p.parse(vs[0])
		if err != nil {
			return nil, nil, t.errorf("%s=%q is not %v", k, vs[0], err)
		}
		if note != "" {
			notes = append(notes, fmt.Sprintf("URL parameter %s=%s: %s", k, vs[0], note))
		}
		if err := p.Set(c, v); err != nil {
			return nil, nil, t.errorf("%s=%q: %v", k, vs[0], err)
		}
	}
	return rest, notes, nil
}

// Names returns the valid parameter names (aliases and passthrough ones included), sorted.
func (t Table[C]) Names() []string {
	var names []string
	for _, p := range t.Params {
		names = append(names, p.Name)
		names = append(names, p.Aliases...)
	}
	names = append(names, t.Passthrough...)
	slices.Sort(names)
	return names
}

func (t Table[C]) lookup(name string) (p *Param[C], alias bool) {
	for i := range t.Params {
		if t.Params[i].Name == name {
			return &t.Params[i], false
		}
		if slices.Contains(t.Params[i].Aliases, name) {
			return &t.Params[i], true
		}
	}
	return nil, false
}

func (t Table[C]) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrParam, t.Scheme, fmt.Sprintf(format, args...))
}

// parse reads raw as p's kind. The error completes "name=value is not …".
func (p *Param[C]) parse(raw string) (v Value, note string, err error) {
	v.Raw = raw
	switch p.Kind {
	case Duration:
		return p.parseDuration(raw)
	case Int:
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < p.Min {
			return v, "", errors.New(intWant(p.Min))
		}
		v.Int = n
	case Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return v, "", errors.New("a boolean (true or false)")
		}
		v.Bool = b
	case List:
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				v.List = append(v.List, item)
			}
		}
	}
	return v, "", nil
}

func (p *Param[C]) parseDuration(raw string) (v Value, note string, err error) {
	v.Raw = raw
	if n, err := strconv.Atoi(raw); err == nil && p.LegacyUnit != 0 && n >= 0 {
		v.Duration = time.Duration(n) * p.LegacyUnit
		return v, fmt.Sprintf("a bare number is deprecated; write a Go duration such as %s", v.Duration), nil
	}
	d, err := time.ParseDuration(raw)
	if err != nil || d < 0 {
		return v, "", errors.New("a duration (Go syntax with a unit: 250ms, 5s, 1m)")
	}
	v.Duration = d
	return v, "", nil
}

func intWant(min int) string {
	switch min {
	case 0:
		return "a non-negative integer"
	case 1:
		return "a positive integer"
	default:
		return fmt.Sprintf("an integer of at least %d", min)
	}
}
