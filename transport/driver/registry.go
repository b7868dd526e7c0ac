package driver

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// OpenOptions are the connection settings transport.OpenConfig passes to an Opener.
type OpenOptions struct {
	// Logger receives the adapter's log lines. Never nil: transport fills in the connection's
	// logger (slog.Default() when the user gave none). An adapter logs through it and nothing
	// else, so that a program's one logger sees every line Courier writes.
	Logger *slog.Logger
}

// Opener creates a Driver from a parsed URL. Adapters register one per scheme. The URL may
// carry credentials: an Opener must not put it in errors or logs except through RedactURL.
type Opener func(ctx context.Context, u *url.URL, opts OpenOptions) (Driver, error)

// The scheme registry is the only package-level state in Courier.
var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes an adapter available to transport.Open under scheme. Adapters call it from
// init; a program enables an adapter by importing it (for its side effect, if nothing else).
// It panics if scheme is empty, not lower case, or already registered.
func Register(scheme string, o Opener) {
	if scheme == "" || scheme != strings.ToLower(scheme) || o == nil {
		panic(fmt.Sprintf("courier: bad registration for scheme %q", scheme))
	}
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[scheme]; dup {
		panic(fmt.Sprintf("courier: scheme %q registered twice", scheme))
	}
	registry[scheme] = o
}

// Lookup returns the Opener registered for scheme (compared in lower case).
func Lookup(scheme string) (Opener, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	o, ok := registry[strings.ToLower(scheme)]
	return o, ok
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	s := make([]string, 0, len(registry))
	for k := range registry {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// sensitiveParam matches query parameter names whose values RedactURL hides.
var sensitiveParam = regexp.MustCompile(`(?i)(pass|secret|token|key|credential|auth|sig)`)

var userinfoRe = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://)([^/?#]*)@`)

// RedactURL returns rawURL with its password and the values of sensitive-looking query
// parameters (password, secret, token, key, credentials, …) replaced by "xxxxx". It works on
// URLs that do not parse, too. Use it whenever a URL goes into an error or a log line.
func RedactURL(rawURL string) string {
	// Work on the string, not a re-serialised url.URL, so that the rest stays as written.
	s := userinfoRe.ReplaceAllStringFunc(rawURL, func(m string) string {
		sub := userinfoRe.FindStringSubmatch(m)
		if user, _, hasPass := strings.Cut(sub[2], ":"); hasPass {
			return sub[1] + user + ":xxxxx@"
		}
		return m
	})
	base, query, hasQuery := strings.Cut(s, "?")
	if !hasQuery {
		return s
	}
	query, fragment, hasFragment := strings.Cut(query, "#")
	q, err := url.ParseQuery(query)
	if err != nil {
		return base + "?xxxxx"
	}
	changed := false
	for k := range q {
		if sensitiveParam.MatchString(k) {
			q[k] = []string{"xxxxx"}
			changed = true
		}
	}
	if changed {
		query = q.Encode()
	}
	if hasFragment {
		return base + "?" + query + "#" + fragment
	}
	return base + "?" + query
}

// ValidateName checks a topic or subscription name against the rules every supported broker
// shares: non-empty, at most 249 bytes, valid UTF-8, no spaces or control characters, no "/"
// or "#" or "*" (routing and path separators). Adapters check their broker's stricter rules.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty name", ErrInvalidTopic)
	case len(name) > 249:
		return fmt.Errorf("%w: %.40q… is %d bytes; the limit is 249", ErrInvalidTopic, name, len(name))
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidTopic, name)
	}
	for _, r := range name {
		if r <= ' ' || r == 0x7f || r == '/' || r == '#' || r == '*' {
			return fmt.Errorf("%w: %q contains %q; use letters, digits, '.', '-', '_'", ErrInvalidTopic, name, r)
		}
	}
	return nil
}
