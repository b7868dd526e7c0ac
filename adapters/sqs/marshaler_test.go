package sqs

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// roundTrip encodes m as the publisher would and decodes the record as the receiver would.
func roundTrip(t *testing.T, e encoder, m *message.Message) (*message.Message, encoded) {
	t.Helper()
	enc := e.encode(m)
	attrs := enc.entry.MessageAttributes
	if len(attrs) > maxAttributes {
		t.Fatalf("%d message attributes; SQS allows %d", len(attrs), maxAttributes)
	}
	for name, v := range attrs {
		if !validAttrName(name) {
			t.Errorf("attribute name %q breaks SQS's rules", name)
		}
		if v.StringValue != nil && (*v.StringValue == "" || !textSafe(*v.StringValue)) {
			t.Errorf("attribute %q value %q is not SQS text", name, *v.StringValue)
		}
	}
	if body := aws.ToString(enc.entry.MessageBody); body == "" || !textSafe(body) {
		t.Errorf("body %q is not non-empty SQS text", body)
	}
	sm := &types.Message{
		MessageId:         aws.String("sqs-id"),
		Body:              enc.entry.MessageBody,
		MessageAttributes: attrs,
		Attributes:        map[string]string{"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000123"},
	}
	got := &message.Message{}
	if err := decode(sm, got); err != nil {
		t.Fatalf("decode: %v", err)
	}
	return got, enc
}

func TestMarshalRoundTrip(t *testing.T) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	many := message.Headers{}
	for i := 0; i < 25; i++ {
		many[fmt.Sprintf("h%02d", i)] = fmt.Sprintf("value-%d", i)
	}
	tests := []struct {
		name       string
		m          *message.Message
		wantBase64 bool
	}{
		{name: "text", m: &message.Message{ID: "id-1", Key: "k", Payload: []byte(`{"a":1}`), Headers: message.Headers{"tenant": "acme"}}},
		{name: "binary", m: &message.Message{ID: "id-2", Payload: binary}, wantBase64: true},
		{name: "control char", m: &message.Message{ID: "id-3", Payload: []byte("a\x00b")}, wantBase64: true},
		{name: "U+FFFE", m: &message.Message{ID: "id-4", Payload: []byte("a\uFFFEb")}, wantBase64: true},
		{name: "crlf and tab stay text", m: &message.Message{ID: "id-5", Payload: []byte("a\r\n\tb ü 👋")}},
		{name: "empty", m: &message.Message{ID: "id-6", Payload: []byte{}}},
		{name: "nil", m: &message.Message{ID: "id-7"}},
		{name: "many headers", m: &message.Message{ID: "id-8", Payload: []byte("x"), Headers: many}},
		{name: "awkward headers", m: &message.Message{ID: "ключ-id", Key: "ключ", Payload: []byte("x"), Headers: message.Headers{
			"greeting": "héllo wörld — こんにちは 👋", "empty": "", "emoji-🚀": "rocket", "with space": "a b\tc",
			"AWS.reserved": "v", "amazon.x": "v", ".lead": "v", "trail.": "v", "dou..ble": "v", "ok.dot": "v",
			attrMeta: "collides", strings.Repeat("n", 300): "long name", "ctl": "a\x01b", "nonchar": "\uFFFF",
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.m.PublishTime = time.Unix(1700000000, 123456789)
			got, enc := roundTrip(t, encoder{}, tc.m)
			if got.ID != tc.m.ID || got.Key != tc.m.Key || !got.PublishTime.Equal(tc.m.PublishTime) {
				t.Errorf("id/key/time = %q/%q/%v; want %q/%q/%v", got.ID, got.Key, got.PublishTime, tc.m.ID, tc.m.Key, tc.m.PublishTime)
			}
			if !bytes.Equal(got.Payload, tc.m.Payload) || got.Payload == nil {
				t.Errorf("payload = %q (nil %v); want %q", got.Payload, got.Payload == nil, tc.m.Payload)
			}
			if len(tc.m.Headers) > 0 || len(got.Headers) > 0 {
				if !maps.Equal(got.Headers, tc.m.Headers) {
					t.Errorf("headers = %v; want %v", got.Headers, tc.m.Headers)
				}
			}
			isB64 := ((*enc.entry.MessageAttributes[attrMeta].StringValue)[1]-'0')&flagBase64 != 0
			if isB64 != tc.wantBase64 {
				t.Errorf("base64 = %v; want %v", isB64, tc.wantBase64)
			}
			if got.Attempt != 3 || got.BrokerTime.UnixMilli() != 1700000000123 {
				t.Errorf("attempt %d broker time %v", got.Attempt, got.BrokerTime)
			}
		})
	}
}

func TestMarshalPacksDeterministically(t *testing.T) {
	h := message.Headers{}
	for i := 0; i < 12; i++ {
		h[fmt.Sprintf("h%02d", i)] = "v"
	}
	enc := (&encoder{}).encode(&message.Message{ID: "x", Payload: []byte("p"), Headers: h})
	if n := len(enc.entry.MessageAttributes); n != maxAttributes {
		t.Fatalf("%d attributes; want all %d used", n, maxAttributes)
	}
	for i := 0; i < 9; i++ {
		if _, ok := enc.entry.MessageAttributes[fmt.Sprintf("h%02d", i)]; !ok {
			t.Errorf("h%02d should be native (first 9 by name)", i)
		}
	}
}

func TestMarshalSize(t *testing.T) {
	m := &message.Message{ID: "abc", Payload: []byte("hello"), Headers: message.Headers{"k": "vv"}}
	enc := (&encoder{}).encode(m)
	meta := *enc.entry.MessageAttributes[attrMeta].StringValue
	want := len("hello") + len("k") + len("String") + len("vv") + len(attrMeta) + len("String") + len(meta)
	if enc.size != want {
		t.Errorf("size = %d; want %d", enc.size, want)
	}
	bin := (&encoder{}).encode(&message.Message{ID: "abc", Payload: []byte{0, 1, 2, 3, 4, 5}})
	if body := aws.ToString(bin.entry.MessageBody); len(body) != 8 {
		t.Errorf("base64 body %q", body)
	}
}

func TestMarshalFIFO(t *testing.T) {
	e := encoder{fifo: true, defaultGroup: "dflt"}
	cases := []struct {
		m                 *message.Message
		group, dedup      string
		groupPerMsgGroups string
	}{
		{m: &message.Message{ID: "order-1", Key: "customer-7"}, group: "customer-7", dedup: "order-1"},
		{m: &message.Message{ID: "order-2"}, group: "dflt", dedup: "order-2", groupPerMsgGroups: "order-2"},
		{m: &message.Message{ID: "with space", Key: "ключ"}, group: hashedID("k-", "ключ"), dedup: hashedID("h-", "with space")},
		{m: &message.Message{ID: strings.Repeat("i", 200)}, group: "dflt", dedup: hashedID("h-", strings.Repeat("i", 200)),
			groupPerMsgGroups: hashedID("h-", strings.Repeat("i", 200))},
	}
	for _, c := range cases {
		enc := e.encode(c.m)
		if g, d := aws.ToString(enc.entry.MessageGroupId), aws.ToString(enc.entry.MessageDeduplicationId); g != c.group || d != c.dedup {
			t.Errorf("%q/%q: group %q dedup %q; want %q %q", c.m.ID, c.m.Key, g, d, c.group, c.dedup)
		}
		if !validFIFOID(aws.ToString(enc.entry.MessageGroupId)) || !validFIFOID(aws.ToString(enc.entry.MessageDeduplicationId)) {
			t.Errorf("invalid FIFO ids for %q", c.m.ID)
		}
		if c.groupPerMsgGroups != "" {
			pe := encoder{fifo: true, defaultGroup: "dflt", groupPerMessage: true}
			if g := aws.ToString(pe.encode(c.m).entry.MessageGroupId); g != c.groupPerMsgGroups {
				t.Errorf("group per message for %q: %q; want %q", c.m.ID, g, c.groupPerMsgGroups)
			}
		}
	}
	// With a publish time (always set by Publish), the time is part of the deduplication ID:
	// the same message published again (a retry) has the same one, a republished copy not.
	pt := time.Unix(1700000000, 5)
	m := &message.Message{ID: "order-1", PublishTime: pt}
	if d := aws.ToString(e.encode(m).entry.MessageDeduplicationId); d != "order-1@"+strconv.FormatInt(pt.UnixNano(), 36) {
		t.Errorf("dedup with time = %q", d)
	}
	if a, b := e.encode(m).entry.MessageDeduplicationId, e.encode(m).entry.MessageDeduplicationId; *a != *b {
		t.Errorf("dedup ID differs between two encodings of one message: %q %q", *a, *b)
	}
	if a, b := e.encode(m).entry.MessageDeduplicationId, e.encode(&message.Message{ID: "order-1", PublishTime: pt.Add(time.Nanosecond)}).entry.MessageDeduplicationId; *a == *b {
		t.Error("a republished copy (new publish time) has the same dedup ID")
	}
	byID := encoder{fifo: true, defaultGroup: "dflt", dedupByID: true}
	if d := aws.ToString(byID.encode(m).entry.MessageDeduplicationId); d != "order-1" {
		t.Errorf("dedup by ID = %q", d)
	}
	if enc := (&encoder{}).encode(&message.Message{ID: "x", Key: "k"}); enc.entry.MessageGroupId != nil {
		t.Error("standard queue entry has a MessageGroupId")
	}
}

func TestDecodeForeignAndMalformed(t *testing.T) {
	sm := &types.Message{
		MessageId: aws.String("sqs-1"),
		Body:      aws.String("plain body"),
		MessageAttributes: map[string]types.MessageAttributeValue{
			"s":   {DataType: aws.String("String"), StringValue: aws.String("sv")},
			"n":   {DataType: aws.String("Number"), StringValue: aws.String("42")},
			"c":   {DataType: aws.String("String.custom"), StringValue: aws.String("cv")},
			"bin": {DataType: aws.String("Binary"), BinaryValue: []byte{1, 2}},
		},
		Attributes: map[string]string{"MessageGroupId": "grp", "SentTimestamp": "1700000000000"},
	}
	m := &message.Message{}
	if err := decode(sm, m); err != nil {
		t.Fatal(err)
	}
	if m.ID != "sqs-1" || m.Key != "grp" || string(m.Payload) != "plain body" || m.Attempt != 1 || m.PublishTime.UnixMilli() != 1700000000000 {
		t.Errorf("foreign message decoded as %+v", m)
	}
	if want := (message.Headers{"s": "sv", "n": "42", "c": "cv"}); !maps.Equal(m.Headers, want) {
		t.Errorf("headers %v; want %v", m.Headers, want)
	}

	bads := []types.MessageAttributeValue{
		{DataType: aws.String("Binary"), BinaryValue: []byte("10")},
	}
	for _, s := range []string{"", "1", "20", "1x", "105:a", "101:a0:", "101:a0:0:1:0x", "101:a0:0:1:1", "101:a0:0:1:0trailing",
		"101:a0:0:3:abc1:0", "101:a0:4=!!!!0:1:0", "101:a0:99999999999:1:0"} {
		bads = append(bads, types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(s)})
	}
	for _, bad := range bads {
		sm := &types.Message{MessageId: aws.String("sqs-2"), Body: aws.String("b"), MessageAttributes: map[string]types.MessageAttributeValue{attrMeta: bad}}
		m := &message.Message{}
		err := decode(sm, m)
		if !errors.Is(err, errMeta) {
			t.Errorf("meta %q: err = %v; want errMeta", aws.ToString(bad.StringValue), err)
		}
		if m.ID != "sqs-2" || string(m.Payload) != "b" {
			t.Errorf("meta %q: malformed message not delivered as foreign: %+v", aws.ToString(bad.StringValue), m)
		}
	}
	// The smallest valid meta: ID "a", no key, no time, no packed headers.
	if md, err := decodeMeta("101:a0:0:1:0"); err != nil || md.id != "a" || !md.publishTime.IsZero() {
		t.Errorf("decodeMeta minimal = %+v, %v", md, err)
	}
}

func TestTextSafe(t *testing.T) {
	for s, want := range map[string]bool{
		"": true, "plain": true, "\t\n\r": true, "é👋": true, "\uFFFD": true, "\uE000": true,
		"\x00": false, "\x1f": false, "\uFFFE": false, "\uFFFF": false, "\xff": false, "a\xed\xa0\x80": false,
	} {
		if got := textSafe(s); got != want {
			t.Errorf("textSafe(%q) = %v; want %v", s, got, want)
		}
		if got := textSafeBytes([]byte(s)); got != want {
			t.Errorf("textSafeBytes(%q) = %v; want %v", s, got, want)
		}
	}
}

func TestErrorKind(t *testing.T) {
	api := func(code string, fault smithy.ErrorFault) error {
		return &smithy.OperationError{ServiceID: "SQS", OperationName: "X", Err: &smithy.GenericAPIError{Code: code, Fault: fault}}
	}
	cases := []struct {
		err  error
		want error
	}{
		{&types.QueueDoesNotExist{}, transport.ErrTopicNotFound},
		{api("com.amazonaws.sqs#QueueDoesNotExist", smithy.FaultClient), transport.ErrTopicNotFound},
		{api("AWS.SimpleQueueService.NonExistentQueue", smithy.FaultClient), transport.ErrTopicNotFound},
		{api("AccessDenied", smithy.FaultClient), transport.ErrAccessDenied},
		{api("InvalidClientTokenId", smithy.FaultClient), transport.ErrAccessDenied},
		{api("RequestThrottled", smithy.FaultClient), transport.ErrUnavailable},
		{api("ThrottlingException", smithy.FaultClient), transport.ErrUnavailable},
		{api("Whatever", smithy.FaultServer), transport.ErrUnavailable},
		{api("InvalidMessageContents", smithy.FaultClient), transport.ErrInvalidMessage},
		{api("BatchRequestTooLong", smithy.FaultClient), transport.ErrMessageTooLarge},
		{&smithy.OperationError{Err: &types.InvalidAttributeValue{Message: aws.String("MessageTooLong")}}, transport.ErrMessageTooLarge},
		{&smithyhttp.RequestSendError{Err: errors.New("dial tcp: connection refused")}, transport.ErrUnavailable},
		{&net.OpError{Op: "dial", Err: errors.New("refused")}, transport.ErrUnavailable},
		{ratelimit.QuotaExceededError{}, transport.ErrUnavailable},
		{fmt.Errorf("get identity: %w", errors.New("no EC2 IMDS role found")), transport.ErrAccessDenied},
		{api("SomethingElse", smithy.FaultClient), nil},
		{errors.New("odd"), nil},
	}
	for _, c := range cases {
		if got := errorKind(c.err); got != c.want {
			t.Errorf("errorKind(%v) = %v; want %v", c.err, got, c.want)
		}
	}
}

func FuzzDecodeMeta(f *testing.F) {
	f.Add(*(&encoder{}).encode(&message.Message{ID: "x", Key: "k\x00", Headers: message.Headers{"a b": "c"}}).entry.MessageAttributes[attrMeta].StringValue)
	f.Add("101:a0:0:1:0")
	f.Fuzz(func(t *testing.T, s string) {
		md, err := decodeMeta(s) // must not panic
		if err != nil {
			return
		}
		// What decodes re-encodes to something that decodes the same.
		m := &message.Message{ID: md.id, Key: md.key, PublishTime: md.publishTime}
		for i := 0; i+1 < len(md.packed); i += 2 {
			m.SetHeader(md.packed[i], md.packed[i+1])
		}
		enc := (&encoder{}).encode(m)
		md2, err := decodeMeta(*enc.entry.MessageAttributes[attrMeta].StringValue)
		if err != nil || md2.id != md.id || md2.key != md.key || !md2.publishTime.Equal(md.publishTime) {
			t.Errorf("re-encoded meta of %q: %+v, %v", s, md2, err)
		}
	})
}

func TestCut(t *testing.T) {
	lane := make([]int, 25)
	sizes := make([]int, 25)
	for i := range lane {
		lane[i], sizes[i] = i, 100
	}
	reqs := cut(lane, sizes)
	if len(reqs) != 3 || len(reqs[0]) != 10 || len(reqs[1]) != 10 || len(reqs[2]) != 5 || reqs[2][0] != 20 {
		t.Errorf("25 small messages cut into %v", reqs)
	}
	sizes[1], sizes[2] = MaxMessageBytes-200, 101 // 0 and 1 fit together (1 MiB - 100), 2 does not
	reqs = cut(lane[:3], sizes)
	if len(reqs) != 2 || len(reqs[0]) != 2 || len(reqs[1]) != 1 {
		t.Errorf("byte limit: cut into %v", reqs)
	}
}

// TestMarshalApplicationHeadersFirst: with more headers than native slots, the application's
// headers take the slots before Courier's own ("courier-…", e.g. a dead-letter copy's), and a
// Courier consumer still sees every header.
func TestMarshalApplicationHeadersFirst(t *testing.T) {
	h := message.Headers{"tenant": "acme", "trace-id": "t1", "region": "eu", "user": "u7", "z-last": "z"}
	for _, k := range []string{"dl-reason", "dl-topic", "dl-subscription", "dl-attempts", "dl-failed-at", "attempt", "enc-key", "seq"} {
		h[message.ReservedPrefix+k] = "v"
	}
	m := &message.Message{ID: "x", Payload: []byte("p"), Headers: h}
	got, enc := roundTrip(t, encoder{}, m)
	for _, k := range []string{"tenant", "trace-id", "region", "user", "z-last"} {
		if _, ok := enc.entry.MessageAttributes[k]; !ok {
			t.Errorf("application header %q is not a native attribute", k)
		}
	}
	if len(got.Headers) != len(h) {
		t.Errorf("decoded %d headers; want %d", len(got.Headers), len(h))
	}
}

// TestMarshalBodyEncodingAttribute: a binary or empty payload carries courier-body-encoding
// (base64 / empty) for plain consumers; a text payload does not; Courier consumers do not see
// it as a header; a plain producer's base64 body with the attribute is decoded.
func TestMarshalBodyEncodingAttribute(t *testing.T) {
	for _, tc := range []struct {
		payload []byte
		want    string
	}{{[]byte{0, 0, 0}, "base64"}, {[]byte{}, "empty"}, {[]byte("text"), ""}} {
		h := message.Headers{}
		for i := 0; i < 12; i++ {
			h[fmt.Sprintf("h%02d", i)] = "v"
		}
		got, enc := roundTrip(t, encoder{}, &message.Message{ID: "x", Payload: tc.payload, Headers: h})
		v := enc.entry.MessageAttributes[attrBodyEnc]
		if aws.ToString(v.StringValue) != tc.want {
			t.Errorf("payload %q: %s = %q; want %q", tc.payload, attrBodyEnc, aws.ToString(v.StringValue), tc.want)
		}
		if _, seen := got.Headers[attrBodyEnc]; seen || string(got.Payload) != string(tc.payload) || len(got.Headers) != len(h) {
			t.Errorf("payload %q: decoded payload %q, %d headers (%v)", tc.payload, got.Payload, len(got.Headers), seen)
		}
	}
	sm := &types.Message{MessageId: aws.String("plain"), Body: aws.String("AAEC"),
		MessageAttributes: map[string]types.MessageAttributeValue{attrBodyEnc: {DataType: aws.String("String"), StringValue: aws.String("base64")}}}
	var m message.Message
	if err := decode(sm, &m); err != nil || string(m.Payload) != "\x00\x01\x02" || len(m.Headers) != 0 {
		t.Errorf("plain producer's base64 body: payload %q headers %v err %v", m.Payload, m.Headers, err)
	}
}
