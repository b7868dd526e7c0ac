package transport

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/courierhq/courier/message"
)

type headerErr struct{ h map[string]string }

func (e headerErr) Error() string                        { return "with headers" }
func (e headerErr) DeadLetterHeaders() map[string]string { return e.h }

func TestDeadLetterMessageReasonIsAValidHeader(t *testing.T) {
	tests := []struct {
		name   string
		reason string
	}{
		{"short", "boom"},
		{"long ASCII", strings.Repeat("x", 2000)},
		{"multi-byte rune across the cut", strings.Repeat("x", 508) + "é" + strings.Repeat("y", 10)},
		{"invalid UTF-8", "bad \xff\xfe bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DeadLetterCopy(&message.Message{ID: "a"}, Failure{Err: errors.New(tc.reason)}, Capabilities{})
			got := d.Header(message.HeaderDeadLetterReason)
			if !utf8.ValidString(got) || len(got) > maxDeadLetterHeader {
				t.Fatalf("reason header is %d bytes, valid UTF-8 %v; want ≤ %d and valid", len(got), utf8.ValidString(got), maxDeadLetterHeader)
			}
			if len(tc.reason) <= maxDeadLetterHeader && utf8.ValidString(tc.reason) && got != tc.reason {
				t.Errorf("short reason changed: %q", got)
			}
			if len(tc.reason) > maxDeadLetterHeader && !strings.HasSuffix(got, "...") {
				t.Errorf("cut reason %q… does not end in ...", got[:20])
			}
		})
	}
}

func TestDeadLetterMessageErrorHeaders(t *testing.T) {
	m := &message.Message{ID: "a", Headers: message.Headers{"app": "kept"}}
	err := fmt.Errorf("wrapped: %w", headerErr{map[string]string{
		"courier-extra":                   strings.Repeat("é", 400),
		"app":                             "must not overwrite",
		message.HeaderDeadLetterPermanent: "must not overwrite",
		"":                                "ignored",
	}})
	d := DeadLetterCopy(m, Failure{Err: err, Permanent: true}, Capabilities{})
	if got := d.Header("courier-extra"); !utf8.ValidString(got) || len(got) > maxDeadLetterHeader || !strings.HasPrefix(got, "éé") {
		t.Errorf("extra header = %d bytes %q…", len(got), got[:min(10, len(got))])
	}
	if d.Header("app") != "kept" || d.Header(message.HeaderDeadLetterPermanent) != "true" {
		t.Errorf("error headers overwrote existing ones: %v", d.Headers)
	}
	if _, ok := d.Headers[""]; ok {
		t.Error("empty header name added")
	}
	if m.Headers["courier-extra"] != "" {
		t.Error("original message changed")
	}
}
