package reqreply

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
)

// Limits on what a reply or a request carries. Both come from the broker, so both are
// untrusted: longer values are refused (correlation IDs, reply addresses) or cut (error text).
const (
	// MaxCorrelationIDBytes bounds a correlation ID. Longer ones are refused by Request and
	// treated as invalid on receipt.
	MaxCorrelationIDBytes = 128
	// MaxKindBytes bounds an error kind; a longer or malformed kind arrives as KindError.
	MaxKindBytes = 64
	// MaxErrorTextBytes bounds an error reply's text; longer text is cut at a rune boundary.
	MaxErrorTextBytes = 1024
)

// Error kinds a responder's error is sent as (RemoteError.Kind). A responder may send a kind
// of its own by returning a *RemoteError.
const (
	// KindError is an ordinary failure: the caller may try again.
	KindError = "error"
	// KindPermanent is a failure marked with message.Permanent: retrying cannot fix it. The
	// caller's error then also matches message.ErrPermanent.
	KindPermanent = "permanent"
)

// ErrRemote is matched (errors.Is) by every error reply: the responder's function failed.
var ErrRemote = errors.New("reqreply: the responder failed")

// ErrDuplicateRequest is returned by Request when a request with the same correlation ID is
// already waiting for its reply on the same Requester.
var ErrDuplicateRequest = errors.New("reqreply: a request with this correlation ID is already waiting")

// RemoteError is an error reply as the caller receives it. It matches ErrRemote, and
// message.ErrPermanent when its Kind is KindPermanent:
//
//	var re *reqreply.RemoteError
//	if errors.As(err, &re) && re.Kind == "not-found" { … }
//
// A responder's function may return a *RemoteError to choose the kind the caller sees.
type RemoteError struct {
	// Kind classifies the failure: KindError, KindPermanent or a responder's own kind
	// (letters, digits, '-', '_', '.'; at most MaxKindBytes).
	Kind string
	// Message is the responder's error text, at most MaxErrorTextBytes.
	Message string
}

// Error returns "remote <kind>: <message>".
func (e *RemoteError) Error() string { return "remote " + e.Kind + ": " + e.Message }

// Is matches ErrRemote always, and message.ErrPermanent for KindPermanent.
func (e *RemoteError) Is(target error) bool {
	return target == ErrRemote || (target == message.ErrPermanent && e.Kind == KindPermanent)
}

// validKind reports whether k is a usable kind: 1..MaxKindBytes of [A-Za-z0-9._-].
func validKind(k string) bool {
	if k == "" || len(k) > MaxKindBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// cutText makes s valid UTF-8 and at most n bytes, cut at a rune boundary.
func cutText(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// remoteOf turns a responder's error into what is sent: its kind and text.
func remoteOf(err error) *RemoteError {
	var re *RemoteError
	if errors.As(err, &re) && validKind(re.Kind) {
		return &RemoteError{Kind: re.Kind, Message: cutText(re.Message, MaxErrorTextBytes)}
	}
	kind := KindError
	if message.IsPermanent(err) {
		kind = KindPermanent
	}
	return &RemoteError{Kind: kind, Message: cutText(err.Error(), MaxErrorTextBytes)}
}

// remoteFromReply reads an error reply (untrusted): a malformed kind becomes KindError, the
// text is cut to MaxErrorTextBytes.
func remoteFromReply(kind string, payload []byte) *RemoteError {
	if !validKind(kind) {
		kind = KindError
	}
	text := string(payload[:min(len(payload), MaxErrorTextBytes+utf8.UTFMax)])
	return &RemoteError{Kind: kind, Message: cutText(text, MaxErrorTextBytes)}
}

// validCorrelationID reports whether id can be used: 1..MaxCorrelationIDBytes of valid UTF-8
// without control characters.
func validCorrelationID(id string) error {
	switch {
	case id == "":
		return errors.New("empty correlation ID")
	case len(id) > MaxCorrelationIDBytes:
		return fmt.Errorf("correlation ID is %d bytes; the limit is %d", len(id), MaxCorrelationIDBytes)
	case !utf8.ValidString(id):
		return errors.New("correlation ID is not valid UTF-8")
	}
	for _, r := range id {
		if r < ' ' || r == 0x7f {
			return fmt.Errorf("correlation ID contains %q", r)
		}
	}
	return nil
}
