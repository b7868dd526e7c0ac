package schema_test

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/courierhq/courier/middleware/schema"
)

// shop.v1 (proto3): Item{string sku=1; int32 qty=2; repeated int32 codes=3; double price=4}
// Order{string id=1; repeated Item items=2; map<string,string> labels=3; int64 total=4}
// legacy (proto2): Legacy{required string name=1; optional group Extra=2 {optional int32 n=3}; optional string note=4}
func testDescriptors(t testing.TB) (order, legacy protoreflect.MessageDescriptor) {
	t.Helper()
	s := proto.String
	field := func(name string, num int32, typ descriptorpb.FieldDescriptorProto_Type, label descriptorpb.FieldDescriptorProto_Label, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: s(name), Number: proto.Int32(num), Type: typ.Enum(), Label: label.Enum(), JsonName: s(name)}
		if typeName != "" {
			f.TypeName = s(typeName)
		}
		return f
	}
	opt, rep, req := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL, descriptorpb.FieldDescriptorProto_LABEL_REPEATED, descriptorpb.FieldDescriptorProto_LABEL_REQUIRED
	shop := &descriptorpb.FileDescriptorProto{
		Name: s("shop.proto"), Package: s("shop.v1"), Syntax: s("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: s("Item"), Field: []*descriptorpb.FieldDescriptorProto{
				field("sku", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				field("qty", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32, opt, ""),
				field("codes", 3, descriptorpb.FieldDescriptorProto_TYPE_INT32, rep, ""),
				field("price", 4, descriptorpb.FieldDescriptorProto_TYPE_DOUBLE, opt, ""),
			}},
			{Name: s("Order"), Field: []*descriptorpb.FieldDescriptorProto{
				field("id", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				field("items", 2, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rep, ".shop.v1.Item"),
				field("labels", 3, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, rep, ".shop.v1.Order.LabelsEntry"),
				field("total", 4, descriptorpb.FieldDescriptorProto_TYPE_INT64, opt, ""),
			}, NestedType: []*descriptorpb.DescriptorProto{{
				Name: s("LabelsEntry"), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
				Field: []*descriptorpb.FieldDescriptorProto{
					field("key", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
					field("value", 2, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
				},
			}}},
		},
	}
	leg := &descriptorpb.FileDescriptorProto{
		Name: s("legacy.proto"), Package: s("legacy"), Syntax: s("proto2"),
		MessageType: []*descriptorpb.DescriptorProto{{
			Name: s("Legacy"),
			Field: []*descriptorpb.FieldDescriptorProto{
				field("name", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, req, ""),
				field("extra", 2, descriptorpb.FieldDescriptorProto_TYPE_GROUP, opt, ".legacy.Legacy.Extra"),
				field("note", 4, descriptorpb.FieldDescriptorProto_TYPE_STRING, opt, ""),
			},
			NestedType: []*descriptorpb.DescriptorProto{{Name: s("Extra"), Field: []*descriptorpb.FieldDescriptorProto{
				field("n", 3, descriptorpb.FieldDescriptorProto_TYPE_INT32, opt, ""),
			}}},
		}},
	}
	fs, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{shop, leg}})
	if err != nil {
		t.Fatal(err)
	}
	o, err := fs.FindDescriptorByName("shop.v1.Order")
	if err != nil {
		t.Fatal(err)
	}
	l, err := fs.FindDescriptorByName("legacy.Legacy")
	if err != nil {
		t.Fatal(err)
	}
	return o.(protoreflect.MessageDescriptor), l.(protoreflect.MessageDescriptor)
}

// validOrder encodes an order with every kind of field set.
func validOrder(t testing.TB, d protoreflect.MessageDescriptor) []byte {
	t.Helper()
	m := dynamicpb.NewMessage(d)
	f := d.Fields()
	m.Set(f.ByName("id"), protoreflect.ValueOfString("ord-1 ✓"))
	m.Set(f.ByName("total"), protoreflect.ValueOfInt64(-5))
	items := m.Mutable(f.ByName("items")).List()
	itemDesc := f.ByName("items").Message()
	for i := 0; i < 3; i++ {
		it := dynamicpb.NewMessage(itemDesc)
		it.Set(itemDesc.Fields().ByName("sku"), protoreflect.ValueOfString("SKU-1"))
		it.Set(itemDesc.Fields().ByName("qty"), protoreflect.ValueOfInt32(int32(i+1)))
		it.Set(itemDesc.Fields().ByName("price"), protoreflect.ValueOfFloat64(9.99))
		codes := it.Mutable(itemDesc.Fields().ByName("codes")).List()
		codes.Append(protoreflect.ValueOfInt32(7))
		codes.Append(protoreflect.ValueOfInt32(-300))
		items.Append(protoreflect.ValueOfMessage(it))
	}
	labels := m.Mutable(f.ByName("labels")).Map()
	labels.Set(protoreflect.ValueOfString("tenant").MapKey(), protoreflect.ValueOfString("acme"))
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProtobuf(t *testing.T) {
	orderDesc, legacyDesc := testDescriptors(t)
	order := schema.Protobuf(orderDesc)
	strict := schema.Protobuf(orderDesc, schema.RejectUnknownFields(), schema.ProtoName("order-strict"))
	legacy := schema.Protobuf(legacyDesc)
	if order.Name() != "shop.v1.Order" || strict.Name() != "order-strict" {
		t.Fatalf("names %q, %q", order.Name(), strict.Name())
	}
	good := validOrder(t, orderDesc)

	// Hand-built payloads for what Marshal would never produce.
	tag := protowire.AppendTag
	var unpacked []byte // items[0].codes as two unpacked varints
	{
		var item []byte
		item = tag(item, 3, protowire.VarintType)
		item = protowire.AppendVarint(item, 1)
		item = tag(item, 3, protowire.VarintType)
		item = protowire.AppendVarint(item, 2)
		unpacked = tag(nil, 2, protowire.BytesType)
		unpacked = protowire.AppendBytes(unpacked, item)
	}
	badUTF8 := protowire.AppendString(tag(nil, 1, protowire.BytesType), "ok \xff")
	var nestedBadUTF8 []byte
	{
		item := protowire.AppendString(tag(nil, 1, protowire.BytesType), "\xc3")
		nestedBadUTF8 = protowire.AppendBytes(tag(nil, 2, protowire.BytesType), item)
	}
	wrongWire := protowire.AppendFixed32(tag(nil, 4, protowire.Fixed32Type), 1) // total is int64
	unknown := protowire.AppendVarint(tag(append([]byte(nil), good...), 99, protowire.VarintType), 1)
	truncated := good[:len(good)-1]
	badPacked := protowire.AppendBytes(tag(nil, 3, protowire.BytesType), []byte{0x80}) // inside Item: varint cut
	badPackedNested := protowire.AppendBytes(tag(nil, 2, protowire.BytesType), badPacked)

	var legacyOK, legacyMissing, legacyBadGroup []byte
	legacyOK = protowire.AppendString(tag(nil, 1, protowire.BytesType), "not checked for UTF-8 in proto2 \xff")
	legacyOK = tag(legacyOK, 2, protowire.StartGroupType)
	legacyOK = protowire.AppendVarint(tag(legacyOK, 3, protowire.VarintType), 5)
	legacyOK = tag(legacyOK, 2, protowire.EndGroupType)
	legacyMissing = protowire.AppendString(tag(nil, 4, protowire.BytesType), "note only")
	legacyBadGroup = tag(protowire.AppendString(tag(nil, 1, protowire.BytesType), "n"), 2, protowire.StartGroupType)

	tests := []struct {
		name     string
		s        *schema.ProtoSchema
		payload  []byte
		keyword  string // "" = valid
		location string
	}{
		{"valid", order, good, "", ""},
		{"valid for strict", strict, good, "", ""},
		{"empty message is valid proto3", order, nil, "", ""},
		{"unpacked repeated accepted", order, unpacked, "", ""},
		{"unknown field passes by default", order, unknown, "", ""},
		{"unknown field rejected when strict", strict, unknown, "unknown-field", ""},
		{"invalid UTF-8 in a proto3 string", order, badUTF8, "utf8", "/id"},
		{"invalid UTF-8 nested", order, nestedBadUTF8, "utf8", "/items/sku"},
		{"wrong wire type", order, wrongWire, "wire-type", "/total"},
		{"truncated", order, truncated, "malformed", ""},
		{"bad packed varint", order, badPackedNested, "malformed", "/items/codes"},
		{"garbage", order, []byte{0xff, 0xff, 0xff}, "malformed", ""},
		{"proto2 with group", legacy, legacyOK, "", ""},
		{"proto2 required missing", legacy, legacyMissing, "required", "/name"},
		{"unterminated group", legacy, legacyBadGroup, "malformed", "/extra"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]byte(nil), tc.payload...)
			err := tc.s.Validate(tc.payload)
			if string(before) != string(tc.payload) {
				t.Fatal("Validate modified the payload")
			}
			if tc.keyword == "" {
				if err != nil {
					t.Fatalf("valid payload rejected: %v", err)
				}
				return
			}
			var ve *schema.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, schema.ErrInvalid) {
				t.Fatalf("err = %v; want a *ValidationError", err)
			}
			if len(ve.Violations) != 1 || ve.Schema != tc.s.Name() {
				t.Fatalf("violations %+v of schema %q", ve.Violations, ve.Schema)
			}
			v := ve.Violations[0]
			if v.KeywordLocation != tc.keyword || (tc.location != "" && v.InstanceLocation != tc.location) {
				t.Errorf("violation %+v; want keyword %q at %q", v, tc.keyword, tc.location)
			}
			if !strings.Contains(err.Error(), tc.keyword) {
				t.Errorf("error text %q does not name the rule", err)
			}
		})
	}
}

func TestProtobufValidateAllocatesNothing(t *testing.T) {
	orderDesc, _ := testDescriptors(t)
	s := schema.Protobuf(orderDesc)
	good := validOrder(t, orderDesc)
	if n := testing.AllocsPerRun(100, func() { _ = s.Validate(good) }); n != 0 {
		t.Errorf("Validate allocates %v times per valid message; want 0", n)
	}
}
