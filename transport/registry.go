package transport

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/courierhq/courier/transport/driver"
)

// EnvURL is the conventional environment variable holding the broker URL.
const EnvURL = "COURIER_URL"

// DefaultURL is used by URLFromEnv when EnvURL is unset: the in-process broker.
const DefaultURL = "memory://"

// Schemes returns the URL schemes of the adapters linked into the program, sorted.
func Schemes() []string { return driver.Schemes() }

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
	opener, ok := driver.Lookup(u.Scheme)
	if !ok {
		return nil, fmt.Errorf("%w %q in %q; known schemes: %s (is the adapter imported?)",
			ErrUnknownScheme, u.Scheme, RedactURL(rawURL), knownSchemes())
	}
	d, err := opener(ctx, u, driver.OpenOptions{Logger: cfg.logger()})
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

// RedactURL returns rawURL with its password and the values of sensitive-looking query
// parameters (password, secret, token, key, credentials, …) replaced by "xxxxx". It works on
// URLs that do not parse, too. Use it whenever a URL goes into an error or a log line.
func RedactURL(rawURL string) string { return driver.RedactURL(rawURL) }
