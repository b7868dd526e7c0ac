package memory

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/courierhq/courier/internal/urlparam"
	"github.com/courierhq/courier/transport/driver"
)

// Defaults for Config.
const (
	DefaultMaxMessageBytes     = 10 << 20
	DefaultMaxHeaderValueBytes = 64 << 10
)

// Config configures a Broker. The zero value is valid.
type Config struct {
	// MaxMessageBytes is the largest message (message.Size) accepted. Default 10 MiB.
	MaxMessageBytes int
	// MaxHeaderValueBytes is the longest header value accepted. Default 64 KiB, so that
	// code that works here does not meet its first header limit in production.
	MaxHeaderValueBytes int
}

// Validate reports a configuration that cannot work.
func (c Config) Validate() error {
	if c.MaxMessageBytes < 0 || c.MaxHeaderValueBytes < 0 {
		return fmt.Errorf("%w: memory: MaxMessageBytes and MaxHeaderValueBytes must not be negative", driver.ErrInvalidConfig)
	}
	return nil
}

// urlParams are the query parameters ConfigFromURL understands.
var urlParams = urlparam.Table[Config]{
	Scheme: "memory",
	Params: []urlparam.Param[Config]{
		{Name: "max_message_bytes", Kind: urlparam.Int, Default: strconv.Itoa(DefaultMaxMessageBytes), Doc: "largest message accepted",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.MaxMessageBytes })},
		{Name: "max_header_value_bytes", Kind: urlparam.Int, Default: strconv.Itoa(DefaultMaxHeaderValueBytes), Doc: "longest header value accepted",
			Set: urlparam.SetInt(func(c *Config) *int { return &c.MaxHeaderValueBytes })},
	},
}

// ConfigFromURL reads a Config from a memory:// URL:
// memory://[?max_message_bytes=N&max_header_value_bytes=N]. Unknown parameters and bad
// values are errors wrapping driver.ErrInvalidURL.
func ConfigFromURL(u *url.URL) (Config, error) {
	var cfg Config
	if u == nil {
		return cfg, fmt.Errorf("%w: memory: nil URL", driver.ErrInvalidURL)
	}
	if _, _, err := urlParams.Parse(u.Query(), &cfg); err != nil {
		return Config{}, fmt.Errorf("%w: %w", driver.ErrInvalidURL, err)
	}
	return cfg, cfg.Validate()
}
