package transport_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/courierhq/courier/transport/driver"

	_ "github.com/courierhq/courier/adapters/memory"
	"github.com/courierhq/courier/transport"
)

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		url        string
		wantErr    error
		mustSay    []string
		mustNotSay []string
	}{
		{"empty", "", transport.ErrInvalidURL, []string{"empty URL", "COURIER_URL"}, nil},
		{"no scheme", "localhost:5672", transport.ErrInvalidURL, nil, nil},
		{"unknown scheme lists known", "nats://u:hunter2@host:4222", transport.ErrUnknownScheme,
			[]string{`"nats"`, "memory"}, []string{"hunter2"}},
		{"malformed hides password", "amqp://user:hunter2@host:bad port/", transport.ErrInvalidURL,
			[]string{"user:xxxxx@"}, []string{"hunter2"}},
		{"adapter rejects parameter", "memory://?bogus=1", transport.ErrInvalidURL, []string{`"bogus"`}, nil},
		{"adapter rejects value, secret param hidden", "memory://?max_message_bytes=-5&token=s3cret", transport.ErrInvalidURL,
			nil, []string{"s3cret"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := transport.Open(ctx, tc.url)
			if c != nil {
				t.Fatalf("Open(%q) returned a connection", tc.url)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Open(%q) err = %v; want %v", tc.url, err, tc.wantErr)
			}
			for _, s := range tc.mustSay {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not say %q", err, s)
				}
			}
			for _, s := range tc.mustNotSay {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q leaks %q", err, s)
				}
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"amqp://guest:guest@localhost:5672/vh", "amqp://guest:xxxxx@localhost:5672/vh"},
		{"kafka://h1:9092?sasl_password=pw&topic_partitions=3", "kafka://h1:9092?sasl_password=xxxxx&topic_partitions=3"},
		{"sqs://?region=eu-west-1&secret_key=abc", "sqs://?region=eu-west-1&secret_key=xxxxx"},
		{"memory://", "memory://"},
		{"amqp://user:p%zz@host/", "amqp://user:xxxxx@host/"},
		{"amqp://user:pw@host:bad/?token=t", "amqp://user:xxxxx@host:bad/?token=xxxxx"},
		{"amqp://user:p@ss@host/", "amqp://user:xxxxx@host/"},
	}
	for _, tc := range tests {
		if got := transport.RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q; want %q", tc.in, got, tc.want)
		}
	}
}

func TestRegisterRejectsDuplicatesAndBadSchemes(t *testing.T) {
	opener := func(context.Context, *url.URL, driver.OpenOptions) (driver.Driver, error) { return nil, nil }
	for _, scheme := range []string{"memory", "", "UPPER"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", scheme)
				}
			}()
			driver.Register(scheme, opener)
		}()
	}
	found := false
	for _, s := range transport.Schemes() {
		found = found || s == "memory"
	}
	if !found {
		t.Errorf("Schemes() = %v; want memory listed", transport.Schemes())
	}
}

func TestURLFromEnv(t *testing.T) {
	t.Setenv(transport.EnvURL, "")
	if got := transport.URLFromEnv(); got != transport.DefaultURL {
		t.Errorf("URLFromEnv() with COURIER_URL empty = %q; want %q", got, transport.DefaultURL)
	}
	t.Setenv(transport.EnvURL, "amqp://h/")
	if got := transport.URLFromEnv(); got != "amqp://h/" {
		t.Errorf("URLFromEnv() = %q", got)
	}
}
