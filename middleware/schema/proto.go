package schema

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ProtoSchema checks Protobuf wire-format payloads against a message descriptor, without
// decoding them into Go values (so without allocating). It is safe for concurrent use.
//
// A payload conforms when it parses as the message: every known field has a wire type its
// declared type allows (packed or not, for repeated scalars), nested messages, groups and map
// entries conform recursively, strings are valid UTF-8 where the file's syntax requires it
// (proto3 and editions), every required field (proto2 required, editions LEGACY_REQUIRED) is
// present, and — with RejectUnknownFields — no field number is undeclared. Values themselves
// are not constrained (protovalidate rules are not supported); an enum number outside the enum
// is accepted, as every Protobuf parser does.
type ProtoSchema struct {
	name          string
	root          *protoMsg
	rejectUnknown bool
}

// ProtoOption adjusts Protobuf.
type ProtoOption func(*ProtoSchema)

// RejectUnknownFields makes a field number the descriptor does not declare a violation. By
// default unknown fields pass, as Protobuf's compatibility rules intend (a newer producer may
// add fields).
func RejectUnknownFields() ProtoOption { return func(s *ProtoSchema) { s.rejectUnknown = true } }

// ProtoName sets the registry name. Default: the message's full name ("shop.v1.Order").
func ProtoName(name string) ProtoOption { return func(s *ProtoSchema) { s.name = name } }

// Protobuf returns a schema for the message desc describes; get desc from generated code
// ((*pb.Order)(nil).ProtoReflect().Descriptor()) or from a descriptor set
// (protodesc.NewFiles).
func Protobuf(desc protoreflect.MessageDescriptor, opts ...ProtoOption) *ProtoSchema {
	s := &ProtoSchema{name: string(desc.FullName())}
	for _, o := range opts {
		o(s)
	}
	s.root = buildMsg(desc, map[protoreflect.FullName]*protoMsg{})
	return s
}

// Name implements Schema.
func (s *ProtoSchema) Name() string { return s.name }

// maxDepth matches proto.Unmarshal's default recursion limit.
const maxDepth = 10000

// Validate implements Schema. The error is a *ValidationError with one violation: the first
// problem found.
func (s *ProtoSchema) Validate(payload []byte) error {
	if _, v := s.walk(payload, s.root, 0, 0); v != nil {
		return &ValidationError{Schema: s.name, Violations: []Violation{*v}}
	}
	return nil
}

type protoMsg struct {
	name     protoreflect.FullName
	dense    []*protoField // indexed by field number, when the numbers are small
	sparse   map[protowire.Number]*protoField
	required []*protoField // in declaration order; reqBit is the position
}

type protoField struct {
	name     string
	number   protowire.Number
	wire     protowire.Type // the wire type of one unpacked value
	packable bool           // repeated scalar number: packed form accepted
	utf8     bool
	msg      *protoMsg // message, group and map-entry fields
	reqBit   int       // position in protoMsg.required, or -1
}

func (m *protoMsg) field(n protowire.Number) *protoField {
	if int(n) < len(m.dense) {
		return m.dense[n]
	}
	return m.sparse[n]
}

func buildMsg(d protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*protoMsg) *protoMsg {
	if m, ok := seen[d.FullName()]; ok {
		return m
	}
	m := &protoMsg{name: d.FullName()}
	seen[d.FullName()] = m
	fields := d.Fields()
	maxNum := 0
	for i := 0; i < fields.Len(); i++ {
		maxNum = max(maxNum, int(fields.Get(i).Number()))
	}
	if maxNum < 1024 {
		m.dense = make([]*protoField, maxNum+1)
	} else {
		m.sparse = make(map[protowire.Number]*protoField, fields.Len())
	}
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		f := &protoField{name: string(fd.Name()), number: fd.Number(), reqBit: -1}
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind,
			protoreflect.Uint32Kind, protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
			f.wire = protowire.VarintType
		case protoreflect.Sfixed32Kind, protoreflect.Fixed32Kind, protoreflect.FloatKind:
			f.wire = protowire.Fixed32Type
		case protoreflect.Sfixed64Kind, protoreflect.Fixed64Kind, protoreflect.DoubleKind:
			f.wire = protowire.Fixed64Type
		case protoreflect.StringKind:
			f.wire = protowire.BytesType
			syn := fd.ParentFile().Syntax()
			f.utf8 = syn == protoreflect.Proto3 || syn == protoreflect.Editions
		case protoreflect.BytesKind:
			f.wire = protowire.BytesType
		case protoreflect.MessageKind:
			f.wire = protowire.BytesType
			f.msg = buildMsg(fd.Message(), seen)
		case protoreflect.GroupKind:
			f.wire = protowire.StartGroupType
			f.msg = buildMsg(fd.Message(), seen)
		}
		f.packable = fd.IsList() && f.wire != protowire.BytesType && f.wire != protowire.StartGroupType
		if fd.Cardinality() == protoreflect.Required {
			f.reqBit = len(m.required)
			m.required = append(m.required, f)
		}
		if m.dense != nil {
			m.dense[fd.Number()] = f
		} else {
			m.sparse[fd.Number()] = f
		}
	}
	return m
}

// presence records which required fields were seen: a bitset on the stack for up to 64.
type presence struct {
	bits uint64
	more []bool
}

func (p *presence) set(i int) {
	if i < 64 {
		p.bits |= 1 << i
		return
	}
	if p.more == nil {
		p.more = make([]bool, i+1)
	}
	if i >= len(p.more) {
		p.more = slices.Grow(p.more, i+1-len(p.more))[:i+1]
	}
	p.more[i] = true
}

func (p *presence) has(i int) bool {
	if i < 64 {
		return p.bits&(1<<i) != 0
	}
	return i < len(p.more) && p.more[i]
}

// walk checks the fields of one message in b, up to the end of b or, for a group, up to its
// end tag (group != 0), and returns how many bytes it read.
//
// The common cases — one-byte tags, length-delimited fields of the declared wire type with a
// one-byte length, one-byte varints, fixed-size values — are decoded inline (readTag,
// fastValue); everything else, and every error, goes through value and protowire, so the
// violations are the same either way.
func (s *ProtoSchema) walk(b []byte, m *protoMsg, depth int, group protowire.Number) (int, *Violation) {
	if depth > maxDepth {
		return 0, &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("nested deeper than %d levels", maxDepth)}
	}
	var seen presence
	off := 0
	for off < len(b) {
		num, typ, n := readTag(b[off:])
		if n < 0 {
			return off, malformed(protowire.ParseError(n), off)
		}
		off += n
		if typ == protowire.EndGroupType {
			if group != 0 && num == group {
				return off, s.checkRequired(m, &seen)
			}
			return off, &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("unexpected end of group %d at byte %d", num, off-n)}
		}
		f := m.field(num)
		if f == nil {
			vn, v := s.skipUnknown(m, num, typ, b[off:], off)
			if v != nil {
				return off, v
			}
			off += vn
			continue
		}
		vn, ok, v := s.fastValue(f, typ, b[off:], depth)
		if !ok {
			vn, v = s.value(f, typ, b[off:], depth)
		}
		if v != nil {
			v.InstanceLocation = "/" + f.name + v.InstanceLocation
			return off, v
		}
		off += vn
		if f.reqBit >= 0 {
			seen.set(f.reqBit)
		}
	}
	if group != 0 {
		return off, &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("group %d is not terminated", group)}
	}
	if len(m.required) == 0 {
		return off, nil
	}
	return off, s.checkRequired(m, &seen)
}

// readTag reads the field tag at the start of b (not empty): a one-byte tag of a valid field
// number inline, anything else through protowire (a negative length is its error code).
func readTag(b []byte) (protowire.Number, protowire.Type, int) {
	if c := b[0]; c < 0x80 && c >= 1<<3 {
		return protowire.Number(c >> 3), protowire.Type(c & 7), 1
	}
	return protowire.ConsumeTag(b)
}

// skipUnknown handles a field number m does not declare, whose value starts b (at byte off of
// the message): a violation when unknown fields are rejected, else the value's length.
func (s *ProtoSchema) skipUnknown(m *protoMsg, num protowire.Number, typ protowire.Type, b []byte, off int) (int, *Violation) {
	if s.rejectUnknown {
		return 0, &Violation{KeywordLocation: "unknown-field", Message: fmt.Sprintf("field number %d is not declared in %s", num, m.name)}
	}
	vn := protowire.ConsumeFieldValue(num, typ, b)
	if vn < 0 {
		return 0, malformed(protowire.ParseError(vn), off)
	}
	return vn, nil
}

// fastValue decodes inline the common values of field f at the start of b: of the declared
// wire type, length-delimited with a one-byte length that fits, a one-byte varint, or a
// fixed-size value that fits. It returns the bytes read and ok; ok is false when the value is
// not one of those (or is a string that is not valid UTF-8), and value must check it. A
// violation (ok true) comes from a nested message, without this field's name prefixed.
func (s *ProtoSchema) fastValue(f *protoField, typ protowire.Type, b []byte, depth int) (int, bool, *Violation) {
	if typ != f.wire || len(b) == 0 {
		return 0, false, nil
	}
	switch typ {
	case protowire.BytesType:
		if b[0] >= 0x80 || int(b[0]) > len(b)-1 {
			return 0, false, nil
		}
		// Fast path of value's BytesType case: a length below 128 that fits.
		body := b[1 : 1+int(b[0])]
		if f.msg != nil {
			if _, v := s.walk(body, f.msg, depth+1, 0); v != nil {
				return 0, true, v
			}
		} else if f.utf8 && !ascii(body) && !utf8.Valid(body) {
			return 0, false, nil // value reports it
		}
		return 1 + len(body), true, nil
	case protowire.VarintType:
		if b[0] < 0x80 {
			return 1, true, nil
		}
	case protowire.Fixed64Type:
		if len(b) >= 8 {
			return 8, true, nil
		}
	case protowire.Fixed32Type:
		if len(b) >= 4 {
			return 4, true, nil
		}
	}
	return 0, false, nil
}

// ascii reports whether p holds only ASCII bytes (so is valid UTF-8), a word at a time; it
// spares the short strings of a typical message a call to utf8.Valid.
func ascii(p []byte) bool {
	const hi8, hi4 = 0x8080808080808080, 0x80808080
	n := len(p)
	switch {
	case n >= 8:
		acc := binary.LittleEndian.Uint64(p[n-8:])
		for i := 0; i+8 <= n; i += 8 {
			acc |= binary.LittleEndian.Uint64(p[i:])
		}
		return acc&hi8 == 0
	case n >= 4:
		return (binary.LittleEndian.Uint32(p)|binary.LittleEndian.Uint32(p[n-4:]))&hi4 == 0
	}
	var acc byte
	for _, c := range p {
		acc |= c
	}
	return acc < 0x80
}

func (s *ProtoSchema) checkRequired(m *protoMsg, seen *presence) *Violation {
	for i, f := range m.required {
		if !seen.has(i) {
			return &Violation{InstanceLocation: "/" + f.name, KeywordLocation: "required",
				Message: fmt.Sprintf("required field %s.%s (%d) is missing", m.name, f.name, f.number)}
		}
	}
	return nil
}

// value checks one field value of wire type typ at the start of b.
func (s *ProtoSchema) value(f *protoField, typ protowire.Type, b []byte, depth int) (int, *Violation) {
	if typ != f.wire {
		if typ == protowire.BytesType && f.packable {
			body, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, malformed(protowire.ParseError(n), 0)
			}
			return n, packed(f, body)
		}
		return 0, &Violation{KeywordLocation: "wire-type",
			Message: fmt.Sprintf("field %s (%d) has wire type %s; its declared type needs %s", f.name, f.number, wireName(typ), wireName(f.wire))}
	}
	switch typ {
	case protowire.StartGroupType:
		return s.walk(b, f.msg, depth+1, f.number)
	case protowire.BytesType:
		body, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, malformed(protowire.ParseError(n), 0)
		}
		switch {
		case f.msg != nil:
			if _, v := s.walk(body, f.msg, depth+1, 0); v != nil {
				return 0, v
			}
		case f.utf8 && !ascii(body) && !utf8.Valid(body):
			return 0, &Violation{KeywordLocation: "utf8", Message: fmt.Sprintf("string field %s (%d) is not valid UTF-8", f.name, f.number)}
		}
		return n, nil
	default:
		n := protowire.ConsumeFieldValue(f.number, typ, b)
		if n < 0 {
			return 0, malformed(protowire.ParseError(n), 0)
		}
		return n, nil
	}
}

// packed checks the body of a packed repeated field.
func packed(f *protoField, body []byte) *Violation {
	switch f.wire {
	case protowire.Fixed32Type:
		if len(body)%4 != 0 {
			return &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("packed field %s (%d): %d bytes is not a multiple of 4", f.name, f.number, len(body))}
		}
	case protowire.Fixed64Type:
		if len(body)%8 != 0 {
			return &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("packed field %s (%d): %d bytes is not a multiple of 8", f.name, f.number, len(body))}
		}
	default:
		for len(body) > 0 {
			_, n := protowire.ConsumeVarint(body)
			if n < 0 {
				return &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("packed field %s (%d): %v", f.name, f.number, protowire.ParseError(n))}
			}
			body = body[n:]
		}
	}
	return nil
}

func malformed(err error, off int) *Violation {
	return &Violation{KeywordLocation: "malformed", Message: fmt.Sprintf("not a valid Protobuf encoding at byte %d: %v", off, err)}
}

func wireName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "length-delimited"
	case protowire.StartGroupType:
		return "group"
	case protowire.EndGroupType:
		return "end-group"
	}
	return fmt.Sprintf("wire type %d", t)
}
