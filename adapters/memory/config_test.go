package memory

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/courierhq/courier/transport/driver"
)

func TestConfigFromURL(t *testing.T) {
	for _, tc := range []struct {
		url    string
		want   Config
		errHas string
	}{
		{url: "memory://", want: Config{}},
		{url: "memory://?max_message_bytes=100&max_header_value_bytes=10", want: Config{MaxMessageBytes: 100, MaxHeaderValueBytes: 10}},
		{url: "memory://?max_message_bytes=-1", errHas: "non-negative integer"},
		{url: "memory://?max_message_bytes=1&max_message_bytes=2", errHas: "given 2 times"},
		{url: "memory://?size=1", errHas: `unknown parameter "size" (valid: max_header_value_bytes, max_message_bytes)`},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ConfigFromURL(u)
		if tc.errHas != "" {
			if !errors.Is(err, driver.ErrInvalidURL) || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("%s: err = %v; want ErrInvalidURL containing %q", tc.url, err, tc.errHas)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v, %v", tc.url, got, err)
		}
	}
}
