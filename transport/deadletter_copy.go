package transport

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// This file holds the dead-letter copy and its inverse: DeadLetterCopy builds what goes to
// a dead-letter topic, UndoDeadLetterCopy gives back what Redrive republishes. Everything
// the copy changes is written down in it, so that the inverse restores what was not cut.

// Headers the dead-letter copy adds to say what it changed. Both lists are comma-separated
// Go-quoted strings (strconv.Quote).
const (
	// HeaderDeadLetterEscaped lists what was escaped with strconv.Quote because it is not
	// valid UTF-8 (or, for a header name, empty): "id", "key", "n:<name in the copy>" for a
	// header name, "v:<name in the copy>" for a header value. UndoDeadLetterCopy reverses it.
	HeaderDeadLetterEscaped = message.ReservedPrefix + "dlq-escaped"
	// HeaderDeadLetterCut lists what had to go so that the copy fits its destination:
	// "h:<name>" for a dropped header (name escaped as in the copy), "id" and "key" for an ID
	// or key replaced by the hex SHA-256 of the original, "payload" for an omitted payload,
	// and a final "+<n>" when the list itself was cut. What is cut is not restored.
	HeaderDeadLetterCut = message.ReservedPrefix + "dlq-cut"
	// HeaderDeadLetterPayloadOmitted is set, to the payload's size in bytes, on a copy whose
	// payload did not fit the destination: such a copy is a notice only (see TopicDeadLetterer).
	HeaderDeadLetterPayloadOmitted = message.ReservedPrefix + "dlq-payload-omitted"
)

// ErrMalformedDeadLetter is wrapped by UndoDeadLetterCopy's errors: the copy's annotations
// are not what DeadLetterCopy writes (a message published to the topic by someone else).
var ErrMalformedDeadLetter = errors.New("courier: malformed dead-letter annotations")

// Bounds of what the copy writes.
const (
	maxDeadLetterHeader = 512  // a courier-dlq-* value (reason, topic, …)
	maxMarkerBytes      = 1024 // the escaped and cut lists
	hashedLen           = 2 * sha256.Size
)

// DeadLetterCopy returns the copy of m that goes to a dead-letter topic on a broker with
// capabilities caps: the same ID, key, payload and headers, plus the courier-dlq-* headers
// describing f, made valid for the destination whatever m holds:
//
//   - an ID, key, header name or value that is not valid UTF-8, and an empty header name,
//     is escaped with strconv.Quote and listed in HeaderDeadLetterEscaped;
//   - a header whose name or value is longer than caps allows, and headers beyond caps'
//     count or byte budget (taken in name order), are dropped and listed in
//     HeaderDeadLetterCut; an ID or key longer than allowed is replaced by its hex SHA-256;
//   - the courier-dlq-* headers are counted first, so the copy fits caps.MaxMessageBytes;
//   - when the payload itself does not fit, it is omitted and HeaderDeadLetterPayloadOmitted
//     says so: the copy is then a notice, and the original must be kept (TopicDeadLetterer
//     does). It never truncates a payload.
//
// Headers the original carries under "courier-dlq-" are replaced by the new annotation.
// Times are RFC 3339 UTC. m is not changed; the copy shares its payload.
func DeadLetterCopy(m *message.Message, f Failure, caps Capabilities) *message.Message {
	c, _ := buildCopy(m, f, caps, false)
	return c
}

// DeadLetterMessage returns DeadLetterCopy(m, f) for a destination without limits.
//
// Deprecated: use DeadLetterCopy with the destination's Capabilities.
func DeadLetterMessage(m *message.Message, f Failure) *message.Message {
	return DeadLetterCopy(m, f, Capabilities{})
}

// copyReport says what buildCopy changed, for tests.
type copyReport struct {
	cut                   []string // original names of dropped headers
	idCut, keyCut, noBody bool
}

// copyBuild is the state of one DeadLetterCopy.
type copyBuild struct {
	lim          Capabilities
	c            *message.Message
	rep          copyReport
	escaped, cut []string // list items, quoted
	escBytes     int      // bytes of the escaped list, its header name included once it has items
	count, bytes int      // headers and header bytes still allowed (-1: no limit)
}

// cutReserve is kept for HeaderDeadLetterCut: room for "+<n>" at least.
const cutReserve = len(HeaderDeadLetterCut) + driver.HeaderOverheadBytes + 16

// buildCopy builds the copy; omit drops the payload even where it seems to fit (the broker
// refused the copy as too large).
func buildCopy(m *message.Message, f Failure, caps Capabilities, omit bool) (*message.Message, copyReport) {
	b := &copyBuild{lim: caps, c: &message.Message{Payload: m.Payload, Headers: make(message.Headers, len(m.Headers)+10)}}
	b.c.ID = b.fixID(m.ID, "id", caps.MaxIDBytes, &b.rep.idCut)
	b.c.Key = b.fixID(m.Key, "key", caps.MaxKeyBytes, &b.rep.keyCut)
	b.budget(len(m.Payload), essentials(f, b.valueCap(maxDeadLetterHeader)), omit)
	b.optionals(f)
	for _, k := range slices.Sorted(maps.Keys(m.Headers)) {
		if !strings.HasPrefix(k, deadLetterPrefix) {
			b.add(k, m.Headers[k])
		}
	}
	b.addErrorHeaders(f.Err)
	b.markers()
	return b.c, b.rep
}

// deadLetterPrefix starts the annotations of a copy.
const deadLetterPrefix = message.ReservedPrefix + "dlq-"

// valueCap is n, lowered to the destination's value limit.
func (b *copyBuild) valueCap(n int) int {
	if v := b.lim.MaxHeaderValueBytes; v > 0 && v < n {
		return v
	}
	return n
}

// fixID escapes an invalid ID or key and replaces one over limit by its hash.
func (b *copyBuild) fixID(s, item string, limit int, cut *bool) string {
	out, escaped := s, !utf8.ValidString(s)
	if escaped {
		out = strconv.Quote(s)
	}
	if limit > 0 && len(out) > limit {
		sum := sha256.Sum256([]byte(s))
		*cut = true
		b.cut = append(b.cut, strconv.Quote(item))
		return hex.EncodeToString(sum[:])[:min(hashedLen, limit)]
	}
	if escaped {
		b.addEscapes(strconv.Quote(item))
	}
	return out
}

// addEscapes records escape items and returns what they cost.
func (b *copyBuild) addEscapes(items ...string) {
	b.escBytes += escapeCost(len(b.escaped), items)
	b.escaped = append(b.escaped, items...)
}

// escapeCost is what items add to an escaped list of have items.
func escapeCost(have int, items []string) int {
	n := 0
	if have == 0 && len(items) > 0 {
		n = len(HeaderDeadLetterEscaped) + driver.HeaderOverheadBytes - 1
	}
	for _, it := range items {
		n += len(it) + 1
	}
	return n
}

// budget writes the essential annotations and sets the header count and byte allowances
// left after them and the reserve for the marker headers. When the payload does not fit
// with them (or omit is set), it omits the payload and says so.
func (b *copyBuild) budget(payload int, essential [][2]string, omit bool) {
	fixed := len(b.c.ID) + len(b.c.Key) + b.escBytes + cutReserve
	for _, h := range essential {
		fixed += len(h[0]) + len(h[1]) + driver.HeaderOverheadBytes
		b.c.Headers[h[0]] = h[1]
	}
	n := b.lim.MaxMessageBytes
	if omit || (n > 0 && fixed+payload > n) {
		b.c.Payload = nil
		b.rep.noBody = true
		b.c.Headers[HeaderDeadLetterPayloadOmitted] = strconv.Itoa(payload)
		fixed += len(HeaderDeadLetterPayloadOmitted) + len(b.c.Headers[HeaderDeadLetterPayloadOmitted]) + driver.HeaderOverheadBytes
		b.cut = append(b.cut, strconv.Quote("payload"))
	}
	b.count, b.bytes = -1, -1
	if l := b.lim.MaxHeaders; l > 0 {
		b.count = max(l-len(b.c.Headers)-2, 0) // the escaped and cut lists
	}
	if l := b.lim.MaxHeaderBytes; l > 0 {
		b.bytes = max(l-fixed, 0)
	}
	if n > 0 {
		if room := max(n-fixed-len(b.c.Payload), 0); b.bytes < 0 || room < b.bytes {
			b.bytes = room
		}
	}
}

// essentials returns the courier-dlq-* headers every copy carries (what Redrive needs and
// the counts), values at most vmax bytes.
func essentials(f Failure, vmax int) [][2]string {
	return [][2]string{
		{message.HeaderDeadLetterTopic, cutValue(f.Topic, vmax)},
		{message.HeaderDeadLetterSubscription, cutValue(f.Subscription, vmax)},
		{message.HeaderDeadLetterPermanent, strconv.FormatBool(f.Permanent)},
		{message.HeaderDeadLetterAttempts, strconv.Itoa(f.Attempts)},
		{message.HeaderAttempt, strconv.Itoa(f.Attempts)},
	}
}

// optionals adds the reason (cut to what room is left, at most maxDeadLetterHeader bytes)
// and the failure times where they fit.
func (b *copyBuild) optionals(f Failure) {
	reason := "unknown"
	if f.Err != nil {
		reason = f.Err.Error()
	}
	vmax := b.valueCap(maxDeadLetterHeader)
	if b.bytes >= 0 {
		vmax = min(vmax, b.bytes-len(message.HeaderDeadLetterReason)-driver.HeaderOverheadBytes)
	}
	if vmax >= 3 {
		b.put(message.HeaderDeadLetterReason, cutValue(reason, vmax))
	}
	if !f.FirstFailure.IsZero() {
		b.put(message.HeaderDeadLetterFirstFailure, f.FirstFailure.UTC().Format(time.RFC3339Nano))
	}
	if !f.LastFailure.IsZero() {
		b.put(message.HeaderDeadLetterLastFailure, f.LastFailure.UTC().Format(time.RFC3339Nano))
	}
}

// put adds a header if the allowances let it, and reports whether it did.
func (b *copyBuild) put(k, v string) bool {
	cost := len(k) + len(v) + driver.HeaderOverheadBytes
	if b.count == 0 || (b.bytes >= 0 && cost > b.bytes) {
		return false
	}
	b.c.Headers[k] = v
	if b.count > 0 {
		b.count--
	}
	if b.bytes >= 0 {
		b.bytes -= cost
	}
	return true
}

// add puts one of the original's headers into the copy, escaped where needed, or drops it
// when it does not fit.
func (b *copyBuild) add(k, v string) {
	if _, taken := b.c.Headers[k]; taken && strings.HasPrefix(k, message.ReservedPrefix) {
		return // an annotation replaces it
	}
	var items []string
	name := k
	if k == "" || !utf8.ValidString(k) {
		name = strconv.Quote(k)
		items = append(items, strconv.Quote("n:"+name))
	}
	if !utf8.ValidString(v) {
		v = strconv.Quote(v)
		items = append(items, strconv.Quote("v:"+name))
	}
	esc := escapeCost(len(b.escaped), items)
	_, taken := b.c.Headers[name]
	fits := !taken && (b.lim.MaxHeaderNameBytes <= 0 || len(name) <= b.lim.MaxHeaderNameBytes) &&
		(b.lim.MaxHeaderValueBytes <= 0 || len(v) <= b.lim.MaxHeaderValueBytes) &&
		b.escBytes+esc <= b.valueCap(maxMarkerBytes) && (b.bytes < 0 || esc <= b.bytes)
	if fits {
		limited := b.bytes >= 0
		if limited {
			b.bytes -= esc
		}
		if fits = b.put(name, v); !fits && limited {
			b.bytes += esc
		}
	}
	if !fits {
		b.rep.cut = append(b.rep.cut, k)
		b.cut = append(b.cut, strconv.Quote("h:"+name))
		return
	}
	b.addEscapes(items...)
}

// addErrorHeaders adds the headers of the first DeadLetterHeaderer in err's chain that the
// copy does not have yet, each value cut like the reason; invalid names are skipped.
func (b *copyBuild) addErrorHeaders(err error) {
	var dh DeadLetterHeaderer
	if err == nil || !errors.As(err, &dh) {
		return
	}
	extra := dh.DeadLetterHeaders()
	for _, k := range slices.Sorted(maps.Keys(extra)) {
		if _, taken := b.c.Headers[k]; taken || k == "" || !utf8.ValidString(k) || strings.HasPrefix(k, deadLetterPrefix) {
			continue
		}
		b.add(k, cutValue(extra[k], b.valueCap(maxDeadLetterHeader)))
	}
}

// markers writes the escaped and cut lists. The escaped list fits (add made sure); the cut
// list is informational and ends in "+<n>" when the room left does not hold it.
func (b *copyBuild) markers() {
	if len(b.escaped) > 0 {
		b.c.Headers[HeaderDeadLetterEscaped] = strings.Join(b.escaped, ",")
	}
	if len(b.cut) == 0 {
		return
	}
	limit := b.valueCap(maxMarkerBytes)
	if b.bytes >= 0 {
		limit = min(limit, b.bytes+cutReserve-len(HeaderDeadLetterCut)-driver.HeaderOverheadBytes)
	}
	var sb strings.Builder
	for i, it := range b.cut {
		more := "+" + strconv.Itoa(len(b.cut)-i)
		if sb.Len()+len(it)+1+len(more)+1 > limit {
			if sb.Len() > 0 {
				sb.WriteByte(',')
			}
			sb.WriteString(more)
			break
		}
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(it)
	}
	b.c.Headers[HeaderDeadLetterCut] = sb.String()
}

// cutValue makes s a header value every broker carries: valid UTF-8, at most n bytes, cut
// at a rune boundary with "..." when longer.
func cutValue(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := max(n-3, 0)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."[:min(3, n)]
}

// DeadLetterCopyStripped reports whether UndoDeadLetterCopy removes header name: the
// dead-letter annotations, message.HeaderAttempt and message.HeaderSchemaViolation.
func DeadLetterCopyStripped(name string) bool {
	return strings.HasPrefix(name, deadLetterPrefix) || name == message.HeaderAttempt || name == message.HeaderSchemaViolation
}

// UndoDeadLetterCopy is DeadLetterCopy's inverse: it returns the message the copy c was made
// from, with ID, key, payload and headers as they were (escapes reversed), without the
// annotations (DeadLetterCopyStripped). What the copy cut stays cut: a dropped header is
// absent, a hashed ID or key stays hashed, and a copy whose payload was omitted has none.
// It fails with ErrMalformedDeadLetter when HeaderDeadLetterEscaped cannot be parsed or
// names what c does not hold. c is not changed.
func UndoDeadLetterCopy(c *message.Message) (*message.Message, error) {
	items, err := ParseDeadLetterList(c.Headers[HeaderDeadLetterEscaped])
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrMalformedDeadLetter, HeaderDeadLetterEscaped, err)
	}
	o := &message.Message{ID: c.ID, Key: c.Key, Payload: c.Payload, Headers: make(message.Headers, len(c.Headers))}
	for k, v := range c.Headers {
		if !DeadLetterCopyStripped(k) {
			o.Headers[k] = v
		}
	}
	// Values first (by the name in the copy), then names.
	first := func(s string) string { return s[:min(len(s), 1)] }
	slices.SortStableFunc(items, func(a, b string) int { return cmp.Compare(first(b), first(a)) })
	for _, it := range items {
		if err := undoItem(o, it); err != nil {
			return nil, fmt.Errorf("%w: %s: %q: %w", ErrMalformedDeadLetter, HeaderDeadLetterEscaped, it, err)
		}
	}
	return o, nil
}

// undoItem reverses one escape.
func undoItem(o *message.Message, it string) error {
	var err error
	switch {
	case it == "id":
		o.ID, err = strconv.Unquote(o.ID)
	case it == "key":
		o.Key, err = strconv.Unquote(o.Key)
	case strings.HasPrefix(it, "v:"), strings.HasPrefix(it, "n:"):
		name := it[2:]
		v, ok := o.Headers[name]
		if !ok {
			return errors.New("no such header")
		}
		if it[0] == 'v' {
			o.Headers[name], err = strconv.Unquote(v)
			break
		}
		var orig string
		if orig, err = strconv.Unquote(name); err == nil {
			if _, dup := o.Headers[orig]; dup {
				return errors.New("the unescaped name is taken")
			}
			delete(o.Headers, name)
			o.Headers[orig] = v
		}
	default:
		err = errors.New("unknown item")
	}
	return err
}

// ParseDeadLetterList parses the value of HeaderDeadLetterEscaped or HeaderDeadLetterCut:
// comma-separated Go-quoted strings, possibly ending in "+<n>" (kept as is). An empty value
// is an empty list.
func ParseDeadLetterList(s string) ([]string, error) {
	var items []string
	for s != "" {
		if s[0] == '+' {
			if _, err := strconv.ParseUint(s[1:], 10, 31); err != nil {
				return nil, fmt.Errorf("bad count %q", s)
			}
			return append(items, s), nil
		}
		q, err := strconv.QuotedPrefix(s)
		if err != nil || q[0] != '"' {
			return nil, fmt.Errorf("item %d is not a quoted string", len(items))
		}
		it, _ := strconv.Unquote(q)
		items = append(items, it)
		s = s[len(q):]
		if s == "" {
			break
		}
		if s[0] != ',' || len(s) == 1 {
			return nil, fmt.Errorf("item %d is not followed by a comma and another item", len(items)-1)
		}
		s = s[1:]
	}
	return items, nil
}
