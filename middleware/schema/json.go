package schema

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	xmessage "golang.org/x/text/message"
)

// JSONSchema is a compiled JSON Schema. It is safe for concurrent use.
type JSONSchema struct {
	name  string
	base  string // the main resource's URL, cut from keyword locations
	sch   *jsonschema.Schema
	names map[string]bool // property names the schema declares (redaction keeps these)
}

// JSONOption adjusts how JSON compiles a schema.
type JSONOption func(*jsonOptions)

type jsonOptions struct {
	resources    map[string][]byte
	assertFormat bool
}

// WithResource adds a schema document that the main schema refers to with "$ref" by url (an
// absolute URL, or the "$id" the document declares). Nothing is ever fetched over the network.
func WithResource(url string, doc []byte) JSONOption {
	return func(o *jsonOptions) {
		if o.resources == nil {
			o.resources = map[string][]byte{}
		}
		o.resources[url] = doc
	}
}

// AssertFormat makes "format" an assertion ("email", "date-time", …) rather than the
// annotation draft 2020-12 makes it by default.
func AssertFormat() JSONOption { return func(o *jsonOptions) { o.assertFormat = true } }

// JSON compiles a JSON Schema document. Documents without "$schema" are read as draft
// 2020-12. name is the schema's registry name (message.HeaderSchema value).
func JSON(name string, schema []byte, opts ...JSONOption) (*JSONSchema, error) {
	var o jsonOptions
	for _, opt := range opts {
		opt(&o)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if o.assertFormat {
		c.AssertFormat()
	}
	for u, doc := range o.resources {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
		if err != nil {
			return nil, fmt.Errorf("%w: schema %q: resource %s is not JSON: %v", ErrInvalidConfig, name, u, err)
		}
		if err := c.AddResource(u, v); err != nil {
			return nil, fmt.Errorf("%w: schema %q: resource %s: %v", ErrInvalidConfig, name, u, err)
		}
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return nil, fmt.Errorf("%w: schema %q is not JSON: %v", ErrInvalidConfig, name, err)
	}
	base := "courier:///" + url.PathEscape(name) + ".json"
	if err := c.AddResource(base, doc); err != nil {
		return nil, fmt.Errorf("%w: schema %q: %v", ErrInvalidConfig, name, err)
	}
	sch, err := c.Compile(base)
	if err != nil {
		return nil, fmt.Errorf("%w: schema %q does not compile: %v", ErrInvalidConfig, name, err)
	}
	names := map[string]bool{}
	declaredNames(sch, names, map[*jsonschema.Schema]bool{})
	return &JSONSchema{name: name, base: base, sch: sch, names: names}, nil
}

// MustJSON is JSON that panics on error, for schemas compiled into the program.
func MustJSON(name string, schema []byte, opts ...JSONOption) *JSONSchema {
	s, err := JSON(name, schema, opts...)
	if err != nil {
		panic(err)
	}
	return s
}

// Name implements Schema.
func (s *JSONSchema) Name() string { return s.name }

// Validate implements Schema: it decodes payload as one JSON document (numbers kept exact)
// and checks it. The error is a *ValidationError.
func (s *JSONSchema) Validate(payload []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return &ValidationError{Schema: s.name, Violations: []Violation{{
			KeywordLocation: "json", Message: "payload is not one JSON document: " + err.Error()}}}
	}
	err = s.sch.Validate(doc)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &ValidationError{Schema: s.name, Violations: []Violation{{Message: err.Error()}}}
	}
	out := &ValidationError{Schema: s.name}
	s.leaves(ve, &out.Violations)
	// The library visits properties in map order; sort for stable errors.
	slices.SortStableFunc(out.Violations, func(a, b Violation) int {
		if c := strings.Compare(a.InstanceLocation, b.InstanceLocation); c != 0 {
			return c
		}
		return strings.Compare(a.KeywordLocation, b.KeywordLocation)
	})
	return out
}

var english = xmessage.NewPrinter(language.English)

// leaves collects the innermost failures: the rules actually broken, not the "allOf failed"
// and "$ref failed" wrappers around them.
func (s *JSONSchema) leaves(e *jsonschema.ValidationError, out *[]Violation) {
	if len(e.Causes) > 0 {
		for _, c := range e.Causes {
			s.leaves(c, out)
		}
		return
	}
	var kw string
	if ref, ok := e.ErrorKind.(*kind.Reference); ok {
		kw = ref.URL
	} else {
		kw = e.SchemaURL + pointer(e.ErrorKind.KeywordPath())
	}
	kw = strings.TrimPrefix(kw, s.base)
	*out = append(*out, Violation{
		InstanceLocation: pointer(e.InstanceLocation),
		KeywordLocation:  kw,
		Message:          e.ErrorKind.LocalizedString(english),
	})
}

// declaredNames adds to names every property name that s and its subschemas declare
// (properties, required, dependencies): words of the schema, which a redacted instance
// location may show.
func declaredNames(s *jsonschema.Schema, names map[string]bool, seen map[*jsonschema.Schema]bool) {
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	walk := func(subs ...*jsonschema.Schema) {
		for _, c := range subs {
			declaredNames(c, names, seen)
		}
	}
	for n, c := range s.Properties {
		names[n] = true
		walk(c)
	}
	for _, n := range s.Required {
		names[n] = true
	}
	for n, req := range s.DependentRequired {
		names[n] = true
		for _, r := range req {
			names[r] = true
		}
	}
	for n, c := range s.DependentSchemas {
		names[n] = true
		walk(c)
	}
	for n, d := range s.Dependencies {
		names[n] = true
		if c, ok := d.(*jsonschema.Schema); ok {
			walk(c)
		}
	}
	for _, c := range s.PatternProperties {
		walk(c)
	}
	walk(s.Ref, s.RecursiveRef, s.Not, s.If, s.Then, s.Else, s.PropertyNames, s.UnevaluatedProperties,
		s.Contains, s.Items2020, s.UnevaluatedItems, s.ContentSchema)
	if s.DynamicRef != nil {
		walk(s.DynamicRef.Ref)
	}
	walk(s.AllOf...)
	walk(s.AnyOf...)
	walk(s.OneOf...)
	walk(s.PrefixItems...)
	for _, x := range []any{s.AdditionalProperties, s.Items, s.AdditionalItems} {
		switch v := x.(type) {
		case *jsonschema.Schema:
			walk(v)
		case []*jsonschema.Schema:
			walk(v...)
		}
	}
}

// redactPointer rewrites the JSON pointer p, replacing each token for which keep is false by
// "*".
func redactPointer(p string, keep func(string) bool) string {
	if p == "" {
		return ""
	}
	var b strings.Builder
	for _, raw := range strings.Split(p[1:], "/") {
		b.WriteByte('/')
		tok := strings.ReplaceAll(strings.ReplaceAll(raw, "~1", "/"), "~0", "~")
		if keep(tok) {
			b.WriteString(raw)
		} else {
			b.WriteByte('*')
		}
	}
	return b.String()
}

func isIndex(tok string) bool {
	if tok == "" {
		return false
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] < '0' || tok[i] > '9' {
			return false
		}
	}
	return true
}

// pointer renders tokens as a JSON pointer (RFC 6901).
func pointer(tokens []string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		b.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return b.String()
}

// noLoader refuses every URL: schemas never reach out to the network or the file system.
type noLoader struct{}

func (noLoader) Load(u string) (any, error) {
	return nil, fmt.Errorf("schema %s is not available: add it with WithResource", u)
}
