package transport

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// EnvURL is the conventional environment variable holding the broker URL.
const EnvURL = "COURIER_URL"

// DefaultURL is used by URLFromEnv when EnvURL is unset: the in-process broker.
const DefaultURL = "memory://"

// Opener creates a Driver from a parsed URL. Adapters register one per scheme. The URL may
// carry credentials: an Opener must not put it in errors or logs except through RedactURL.
type Opener func(ctx context.Context, u *url.URL) (Driver, error)

// The scheme registry is the only package-level state in Courier.
var (
	registryMu sync.RWMutex
	registry   = map[string]Opener{}
)

// Register makes an adapter available to Open under scheme. Adapters call it from init; a
// program enables an adapter by importing it (for its side effect, if nothing else). It
// panics if scheme is empty, not lower case, or already registered.
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

// URLFromEnv returns the value of COURIER_URL, or DefaultURL when it is unset or empty.
func URLFromEnv() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

// Open connects to the broker named by rawURL, choosing the adapter by the URL's scheme. The
// adapter must be linked in (import it, e.g. _ "github.com/courierhq/courier/adapters/memory").
//
// Errors wrap ErrInvalidURL (malformed URL, bad parameter) or ErrUnknownScheme (listing the
// registered schemes), or whatever the adapter returns; credentials never appear in them.
func Open(ctx context.Context, rawURL string) (*Conn, error) {
	return OpenConfig(ctx, rawURL, ConnConfig{})
}

// OpenConfig is Open with connection settings.
func OpenConfig(ctx context.Context, rawURL string, cfg ConnConfig) (*Conn, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, fmt.Errorf("%w: empty URL (set %s, e.g. %s)", ErrInvalidURL, EnvURL, DefaultURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error repeats the input, credentials included: report only the redacted form.
		return nil, fmt.Errorf("%w: cannot parse %q: %s", ErrInvalidURL, RedactURL(rawURL), parseProblem(err))
	}
	if u.Scheme == "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q is not of the form scheme://…; known schemes: %s", ErrInvalidURL, RedactURL(rawURL), knownSchemes())
	}
	registryMu.RLock()
	opener, ok := registry[strings.ToLower(u.Scheme)]
	registryMu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("%w %q in %q; known schemes: %s (is the adapter imported?)",
			ErrUnknownScheme, u.Scheme, RedactURL(rawURL), knownSchemes())
	}
	d, err := opener(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("courier: open %s: %w", RedactURL(rawURL), err)
	}
	return NewConn(d, cfg), nil
}

func knownSchemes() string {
	s := Schemes()
	if len(s) == 0 {
		return "none (import an adapter)"
	}
	return strings.Join(s, ", ")
}

// parseProblem extracts the reason from a url.Parse error without the URL itself.
func parseProblem(err error) string {
	var ue *url.Error
	if e, ok := err.(*url.Error); ok {
		ue = e
		return ue.Err.Error()
	}
	return "malformed"
}

// sensitiveParams are query parameter names whose values RedactURL hides.
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
