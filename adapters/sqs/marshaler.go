package sqs

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/courierhq/courier/message"
)

// The wire format (message ↔ SQS record):
//
//   - Body: the payload as is when it is non-empty text SQS accepts (valid UTF-8 of the
//     characters #x9 #xA #xD #x20–#xD7FF #xE000–#xFFFD #x10000–#x10FFFF); otherwise the payload
//     in standard base64, or "-" for an empty payload, as the meta attribute's flags say. Such
//     a message also carries the String attribute "courier-body-encoding", "base64" or
//     "empty", so that a plain SQS consumer knows the body is not the payload as is. (A
//     message from another producer with courier-body-encoding=base64 is decoded the same way.)
//   - Headers: each header whose name is a valid SQS attribute name and whose value is
//     non-empty SQS text is a String message attribute of the same name, as long as there is
//     room (SQS allows 10 attributes; the meta attribute takes one, courier-body-encoding
//     another when present). When there is not, the application's headers take the native
//     slots first and Courier's own ("courier-…": dead-letter, retry, encryption, ordering
//     headers) next, each by name order. The others — overflow, names SQS refuses (spaces,
//     non-ASCII, "AWS." prefixes, …), empty values, values with characters SQS refuses — are
//     packed into the meta attribute. A Courier consumer sees the same map either way; a
//     plain one sees the native attributes.
//   - The String message attribute "courier-meta": version, flags, message ID, key, publish
//     time (Unix nanoseconds) and the packed headers, each field written as "<length>:<text>",
//     or "<length>=<base64>" when the text has characters SQS refuses. Standard queues have no
//     field for the ID or the key, and a FIFO MessageGroupId cannot hold every key ("ключ"),
//     so they travel here. It is a String, not a Binary attribute: ElasticMQ handles Binary
//     attributes markedly slower (measured: about 0.7× the throughput of a plain send).
//   - FIFO queues: MessageGroupId is the key when it is a valid group ID (1–128 ASCII letters,
//     digits, punctuation), else "k-" and the SHA-256 of the key; unkeyed messages use
//     Config.FIFODefaultGroup (or their own group with Config.FIFOGroupPerMessage).
//     MessageDeduplicationId is "<ID>@<publish time in base 36>" (the ID alone with
//     Config.FIFODeduplicateByID), or "h-" and its SHA-256 when that is not a valid
//     deduplication ID. The publish time is part of it because SQS drops, for 5 minutes, any
//     message whose deduplication ID it has seen: a message republished under its ID (a
//     dead-letter redrive, a copy) must get through, while a retry of the same Publish (same
//     messages, whose PublishTime was set by the first attempt) is still deduplicated.
//
// Messages from other producers (no meta attribute) arrive with the body as payload, the SQS
// MessageId as ID, the MessageGroupId as key, String and Number attributes as headers (Binary
// ones only through Message.As).
const (
	attrMeta    = "courier-meta"
	attrBodyEnc = "courier-body-encoding"
	metaVersion = '1'

	flagBase64 = 1 << 0 // the body is the payload in base64
	flagEmpty  = 1 << 1 // the payload is empty; the body is a placeholder

	maxAttributes    = 10
	maxAttrNameBytes = 256
	emptyBody        = "-"
)

var (
	typeString = aws.String("String")
)

// textSafe reports whether s is text SQS accepts in a body or String attribute.
func textSafe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if !textRune(r, n) {
			return false
		}
		i += n
	}
	return true
}

// textSafeBytes is textSafe for a payload.
func textSafeBytes(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if !textRune(r, n) {
			return false
		}
		i += n
	}
	return true
}

// textRune checks a decoded non-ASCII rune: valid UTF-8 (Go rejects surrogates) and not
// U+FFFE or U+FFFF.
func textRune(r rune, n int) bool {
	return !(r == utf8.RuneError && n == 1) && r != 0xFFFE && r != 0xFFFF
}

// validAttrName applies SQS's message attribute name rules: 1 to 256 of A–Z a–z 0–9 '_' '-'
// '.', no leading, trailing or doubled '.', no "AWS." or "Amazon." prefix (any case).
func validAttrName(name string) bool {
	if name == "" || len(name) > maxAttrNameBytes || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
		case c == '.':
			if name[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	lower := strings.ToLower(name)
	return !strings.HasPrefix(lower, "aws.") && !strings.HasPrefix(lower, "amazon.")
}

// nativeHeader reports whether a header can be its own String attribute.
func nativeHeader(name, value string) bool {
	return value != "" && name != attrMeta && name != attrBodyEnc && validAttrName(name) && textSafe(value)
}

// validFIFOID reports whether s is a valid MessageGroupId / MessageDeduplicationId: 1 to 128
// ASCII letters, digits and punctuation.
func validFIFOID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// hashedID returns prefix + hex SHA-256 of s: a valid FIFO ID for any s.
func hashedID(prefix, s string) string {
	sum := sha256.Sum256([]byte(s))
	return prefix + hex.EncodeToString(sum[:])
}

// encoded is one message ready for SendMessageBatch.
type encoded struct {
	entry types.SendMessageBatchRequestEntry
	size  int // as SQS counts it: body + attribute names, types and values
}

// encoder turns messages into batch entries for one queue.
type encoder struct {
	fifo            bool
	defaultGroup    string
	groupPerMessage bool
	dedupByID       bool
}

// encode turns m into a batch entry: the body, the native attributes, the meta attribute and,
// on a FIFO queue, the group and deduplication IDs.
func (e *encoder) encode(m *message.Message) encoded {
	body, flags, bodyEnc := encodeBody(m.Payload)
	slots := maxAttributes - 1
	if bodyEnc != "" {
		slots--
	}
	attrs, packed, size := nativeAttrs(m.Headers, slots)
	size += len(body)
	if bodyEnc != "" {
		size += putAttr(attrs, attrBodyEnc, bodyEnc)
	}
	meta := appendMeta(make([]byte, 0, 40+len(m.ID)+len(m.Key)+packedLen(packed)), m, flags, packed)
	metaStr := string(meta)
	attrs[attrMeta] = types.MessageAttributeValue{DataType: typeString, StringValue: &metaStr}
	size += len(attrMeta) + len(*typeString) + len(meta)

	out := encoded{size: size, entry: types.SendMessageBatchRequestEntry{MessageBody: aws.String(body), MessageAttributes: attrs}}
	if e.fifo {
		group, dedup := e.fifoIDs(m)
		out.entry.MessageGroupId = aws.String(group)
		out.entry.MessageDeduplicationId = aws.String(dedup)
	}
	return out
}

// encodeBody returns the body for a payload, the meta flags that say how it was written, and
// the value of the courier-body-encoding attribute ("" when the body is the payload as is).
func encodeBody(payload []byte) (body string, flags byte, bodyEnc string) {
	switch {
	case len(payload) == 0:
		return emptyBody, flagEmpty, "empty"
	case textSafeBytes(payload):
		return string(payload), 0, ""
	default:
		return base64.StdEncoding.EncodeToString(payload), flagBase64, "base64"
	}
}

// nativeAttrs makes the attribute map with the headers that take the native slots (at most
// slots of them) and returns the others as packed (name, value, name, value, …), with the
// size of the attributes added as SQS counts it. The map has room for two more attributes.
func nativeAttrs(headers message.Headers, slots int) (attrs map[string]types.MessageAttributeValue, packed []string, size int) {
	eligible := 0
	for k, v := range headers {
		if nativeHeader(k, v) {
			eligible++
		}
	}
	attrs = make(map[string]types.MessageAttributeValue, min(eligible, slots)+2)
	if eligible <= slots {
		for k, v := range headers {
			if nativeHeader(k, v) {
				size += putAttr(attrs, k, v)
			} else {
				packed = append(packed, k, v)
			}
		}
		return attrs, packed, size
	}
	// Deterministic choice: the application's eligible names in byte order go native
	// first, then Courier's own.
	names := make([]string, 0, len(headers))
	for k := range headers {
		names = append(names, k)
	}
	slices.SortFunc(names, headerPriority)
	for _, k := range names {
		v := headers[k]
		if len(attrs) < slots && nativeHeader(k, v) {
			size += putAttr(attrs, k, v)
		} else {
			packed = append(packed, k, v)
		}
	}
	return attrs, packed, size
}

// putAttr sets the String attribute k to v and returns its size as SQS counts it.
func putAttr(attrs map[string]types.MessageAttributeValue, k, v string) int {
	attrs[k] = types.MessageAttributeValue{DataType: typeString, StringValue: aws.String(v)}
	return len(k) + len(*typeString) + len(v)
}

// appendMeta appends the meta attribute's text for m to b: version, flags, ID, key, publish
// time and the packed headers.
func appendMeta(b []byte, m *message.Message, flags byte, packed []string) []byte {
	b = append(b, metaVersion, '0'+flags)
	b = appendField(b, m.ID)
	b = appendField(b, m.Key)
	if m.PublishTime.IsZero() {
		b = appendField(b, "")
	} else {
		b = appendDecimal(b, m.PublishTime.UnixNano())
	}
	b = appendDecimal(b, int64(len(packed)/2))
	for _, s := range packed {
		b = appendField(b, s)
	}
	return b
}

// fifoIDs returns the MessageGroupId and MessageDeduplicationId of m for a FIFO queue.
func (e *encoder) fifoIDs(m *message.Message) (group, dedup string) {
	switch {
	case m.Key != "" && validFIFOID(m.Key):
		group = m.Key
	case m.Key != "":
		group = hashedID("k-", m.Key)
	case e.groupPerMessage && validFIFOID(m.ID):
		group = m.ID
	case e.groupPerMessage:
		group = hashedID("h-", m.ID)
	default:
		group = e.defaultGroup
	}
	dedup = m.ID
	if !e.dedupByID && !m.PublishTime.IsZero() {
		dedup += "@" + strconv.FormatInt(m.PublishTime.UnixNano(), 36)
	}
	if !validFIFOID(dedup) {
		dedup = hashedID("h-", dedup)
	}
	return group, dedup
}

// headerPriority orders header names for the native attribute slots: the application's
// before Courier's own ("courier-" prefix), then by bytes.
func headerPriority(a, b string) int {
	ca, cb := strings.HasPrefix(a, message.ReservedPrefix), strings.HasPrefix(b, message.ReservedPrefix)
	switch {
	case ca && !cb:
		return 1
	case !ca && cb:
		return -1
	}
	return strings.Compare(a, b)
}

func packedLen(p []string) int {
	n := 0
	for _, s := range p {
		n += len(s) + 4
	}
	return n
}

// appendField appends s to the meta text as "<length>:<s>", or as "<length>=<base64 of s>"
// when s holds characters SQS refuses; the length is the byte length of what follows.
func appendField(b []byte, s string) []byte {
	if textSafe(s) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		return append(b, s...)
	}
	b = strconv.AppendInt(b, int64(base64.StdEncoding.EncodedLen(len(s))), 10)
	b = append(b, '=')
	return base64.StdEncoding.AppendEncode(b, []byte(s))
}

// appendDecimal appends a field holding n in decimal.
func appendDecimal(b []byte, n int64) []byte {
	var tmp [20]byte
	d := strconv.AppendInt(tmp[:0], n, 10)
	b = strconv.AppendInt(b, int64(len(d)), 10)
	b = append(b, ':')
	return append(b, d...)
}

// readField reads one field written by appendField.
func readField(s string) (field, rest string, ok bool) {
	i := 0
	for i < len(s) && i < 10 && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i >= len(s) {
		return "", "", false
	}
	n, err := strconv.Atoi(s[:i])
	tag := s[i]
	s = s[i+1:]
	if err != nil || n > len(s) {
		return "", "", false
	}
	field, rest = s[:n], s[n:]
	switch tag {
	case ':':
		return field, rest, true
	case '=':
		b, err := base64.StdEncoding.DecodeString(field)
		if err != nil {
			return "", "", false
		}
		return string(b), rest, true
	}
	return "", "", false
}

var errMeta = errors.New("malformed " + attrMeta + " attribute")

// meta is the decoded meta attribute.
type meta struct {
	flags       byte
	id, key     string
	publishTime time.Time
	packed      []string
}

func decodeMeta(s string) (meta, error) {
	var md meta
	if len(s) < 2 {
		return md, errMeta
	}
	if s[0] != metaVersion {
		return md, fmt.Errorf("%w: version %q (this adapter reads %q)", errMeta, s[0], metaVersion)
	}
	if s[1] < '0' || s[1] > '9' {
		return md, errMeta
	}
	md.flags = s[1] - '0'
	s = s[2:]
	var ok bool
	var pt, count string
	if md.id, s, ok = readField(s); !ok {
		return md, errMeta
	}
	if md.key, s, ok = readField(s); !ok {
		return md, errMeta
	}
	if pt, s, ok = readField(s); !ok {
		return md, errMeta
	}
	if pt != "" {
		ns, err := strconv.ParseInt(pt, 10, 64)
		if err != nil {
			return md, errMeta
		}
		md.publishTime = time.Unix(0, ns)
	}
	if count, s, ok = readField(s); !ok {
		return md, errMeta
	}
	n, err := strconv.Atoi(count)
	if err != nil || n < 0 || n > len(s) {
		return md, errMeta
	}
	if n > 0 {
		md.packed = make([]string, 0, 2*n)
		for i := 0; i < 2*n; i++ {
			var f string
			if f, s, ok = readField(s); !ok {
				return md, errMeta
			}
			md.packed = append(md.packed, f)
		}
	}
	if s != "" {
		return md, fmt.Errorf("%w: %d bytes after the last field", errMeta, len(s))
	}
	return md, nil
}

// decode fills m from an SQS message. It returns an error (and still fills m, treating the
// record as one from another producer) when the meta attribute is malformed.
func decode(sm *types.Message, m *message.Message) error {
	body := aws.ToString(sm.Body)
	var md meta
	var err error
	ma, courier := sm.MessageAttributes[attrMeta]
	if courier {
		if ma.StringValue == nil || !strings.HasPrefix(aws.ToString(ma.DataType), "String") {
			err = fmt.Errorf("%w: not a String attribute", errMeta)
		} else {
			md, err = decodeMeta(*ma.StringValue)
		}
		if err != nil {
			courier = false
		}
	}
	sent := time.Time{}
	if ms, perr := strconv.ParseInt(sm.Attributes[string(types.MessageSystemAttributeNameSentTimestamp)], 10, 64); perr == nil {
		sent = time.UnixMilli(ms)
	}
	m.BrokerTime = sent
	m.Attempt = 1
	if n, perr := strconv.Atoi(sm.Attributes[string(types.MessageSystemAttributeNameApproximateReceiveCount)]); perr == nil && n > 0 {
		m.Attempt = n
	}
	if courier {
		m.ID, m.Key, m.PublishTime = md.id, md.key, md.publishTime
		switch {
		case md.flags&flagEmpty != 0:
			m.Payload = []byte{}
		case md.flags&flagBase64 != 0:
			p, derr := base64.StdEncoding.DecodeString(body)
			if derr != nil {
				err = fmt.Errorf("%w: body is not base64 as flagged", errMeta)
				p = []byte(body)
			}
			m.Payload = p
		default:
			m.Payload = []byte(body)
		}
	} else {
		m.ID = aws.ToString(sm.MessageId)
		m.Key = sm.Attributes[string(types.MessageSystemAttributeNameMessageGroupId)]
		m.PublishTime = sent
		m.Payload = []byte(body)
		if enc := sm.MessageAttributes[attrBodyEnc]; aws.ToString(enc.StringValue) == "base64" {
			if p, derr := base64.StdEncoding.DecodeString(body); derr == nil {
				m.Payload = p
			}
		}
	}
	n := len(sm.MessageAttributes) + len(md.packed)/2
	if courier {
		n--
	}
	if n > 0 {
		h := make(message.Headers, n)
		for k, v := range sm.MessageAttributes {
			if (k == attrMeta && courier) || k == attrBodyEnc {
				continue
			}
			dt := aws.ToString(v.DataType)
			if v.StringValue != nil && (strings.HasPrefix(dt, "String") || strings.HasPrefix(dt, "Number")) {
				h[k] = *v.StringValue
			}
		}
		for i := 0; i+1 < len(md.packed); i += 2 {
			h[md.packed[i]] = md.packed[i+1]
		}
		m.Headers = h
	}
	return err
}
