package schema

import (
	"errors"
	"fmt"
	"strings"

	"github.com/courierhq/courier/message"
)

// Error kinds. Validation failures are *ValidationError values that match ErrInvalid (and
// ErrUnknownSchema or ErrNoSchema where one applies) with errors.Is.
var (
	// ErrInvalid: a payload does not conform to its schema.
	ErrInvalid = errors.New("schema: invalid message")
	// ErrUnknownSchema: a message names, in message.HeaderSchema, a schema the registry lacks.
	ErrUnknownSchema = errors.New("schema: unknown schema")
	// ErrNoSchema: Config.Require is set and no schema applies to the message.
	ErrNoSchema = errors.New("schema: no schema for message")
	// ErrInvalidConfig: a Config, schema or registration cannot be used.
	ErrInvalidConfig = errors.New("schema: invalid configuration")
)

// Violation is one rule a payload broke.
type Violation struct {
	// InstanceLocation is where in the payload: a JSON pointer ("/items/0/price"; "" for the
	// whole document). For Protobuf, the path of field names ("/customer/email").
	InstanceLocation string
	// KeywordLocation is the rule in the schema: for JSON Schema the keyword's location
	// ("#/properties/items/items/properties/price/minimum"; absolute URL when the rule sits in
	// another resource); for Protobuf the check ("wire-type", "utf8", "required",
	// "unknown-field", "malformed").
	KeywordLocation string
	// Message says what is wrong, in English.
	Message string
}

// String formats v as `at "/total": minimum (#/properties/total/minimum): must be >= 0`.
func (v Violation) String() string {
	return fmt.Sprintf("at %q: %s (%s)", v.InstanceLocation, v.Message, v.KeywordLocation)
}

// ValidationError reports why a message is invalid. It matches ErrInvalid, and Err when set.
type ValidationError struct {
	// Schema is the name of the schema checked, or the name asked for (ErrUnknownSchema).
	Schema string
	// Violations lists the rules broken (for JSON Schema, the innermost failures, in schema
	// order); empty when Err says it all.
	Violations []Violation
	// Err is the cause that is not a rule of the schema (ErrUnknownSchema, ErrNoSchema), or nil.
	Err error
}

// maxShown is how many violations Error spells out.
const maxShown = 3

// Error names the schema and the first violations.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("schema")
	if e.Schema != "" {
		fmt.Fprintf(&b, " %q", e.Schema)
	}
	b.WriteString(": ")
	e.writeViolations(&b)
	return b.String()
}

func (e *ValidationError) writeViolations(b *strings.Builder) {
	if e.Err != nil {
		b.WriteString(e.Err.Error())
		if len(e.Violations) > 0 {
			b.WriteString(": ")
		}
	}
	for i, v := range e.Violations {
		if i == maxShown {
			fmt.Fprintf(b, "; and %d more", len(e.Violations)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(v.String())
	}
}

// Unwrap makes errors.Is match ErrInvalid and Err.
func (e *ValidationError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// DeadLetterHeaders puts the violation in message.HeaderSchemaViolation on the dead-letter
// copy of a message this error rejected (see transport.DeadLetterHeaderer).
func (e *ValidationError) DeadLetterHeaders() map[string]string {
	var b strings.Builder
	if e.Schema != "" {
		fmt.Fprintf(&b, "%s: ", e.Schema)
	}
	e.writeViolations(&b)
	return map[string]string{message.HeaderSchemaViolation: b.String()}
}
