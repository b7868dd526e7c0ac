package schema

import (
	"fmt"
	"maps"
	"reflect"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Schema checks payloads. JSON and Protobuf build the two kinds this package knows; implement
// it for others. Implementations must be safe for concurrent use and must not modify or keep
// the payload.
type Schema interface {
	// Name identifies the schema: the value of message.HeaderSchema that selects it.
	Name() string
	// Validate returns nil when payload conforms, else an error: a *ValidationError
	// describing the violations (its Schema field may be left empty), or any other error,
	// which is reported as a single violation.
	Validate(payload []byte) error
}

// Registry maps schema names and topics to schemas. Register and Bind may be called at any
// time, also while validators use the registry (a new schema version rolled out, say);
// lookups take no lock.
type Registry struct {
	mu    sync.Mutex // serialises writers
	state atomic.Pointer[registryState]
}

type registryState struct {
	byName  map[string]Schema
	byTopic map[string]Schema
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	r := &Registry{}
	r.state.Store(&registryState{byName: map[string]Schema{}, byTopic: map[string]Schema{}})
	return r
}

// Register makes s selectable by its name (message.HeaderSchema). Registering another schema
// under a name already taken is an error; registering the same value again is not.
func (r *Registry) Register(s Schema) error {
	if s == nil {
		return fmt.Errorf("%w: nil schema", ErrInvalidConfig)
	}
	name := s.Name()
	if name == "" || !utf8.ValidString(name) || len(name) > 255 {
		return fmt.Errorf("%w: schema name %q must be 1–255 bytes of UTF-8 (it travels in a header)", ErrInvalidConfig, name)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	if have, ok := old.byName[name]; ok {
		if same(have, s) {
			return nil
		}
		return fmt.Errorf("%w: a different schema is already registered as %q", ErrInvalidConfig, name)
	}
	next := &registryState{byName: maps.Clone(old.byName), byTopic: old.byTopic}
	next.byName[name] = s
	r.state.Store(next)
	return nil
}

// same reports whether a and b are the same schema value; values of types that cannot be
// compared are never the same.
func same(a, b Schema) bool {
	ta := reflect.TypeOf(a)
	return ta == reflect.TypeOf(b) && ta.Comparable() && a == b
}

// Bind registers s (see Register) and makes it the schema of messages on topic that name no
// schema themselves. Binding a topic again replaces its schema.
func (r *Registry) Bind(topic string, s Schema) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic", ErrInvalidConfig)
	}
	if err := r.Register(s); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.state.Load()
	next := &registryState{byName: old.byName, byTopic: maps.Clone(old.byTopic)}
	next.byTopic[topic] = s
	r.state.Store(next)
	return nil
}

// Lookup returns the schema registered under name.
func (r *Registry) Lookup(name string) (Schema, bool) {
	s, ok := r.state.Load().byName[name]
	return s, ok
}

// ForTopic returns the schema bound to topic.
func (r *Registry) ForTopic(topic string) (Schema, bool) {
	s, ok := r.state.Load().byTopic[topic]
	return s, ok
}
