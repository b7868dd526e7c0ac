package transport

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"
)

// RetryPolicy decides how often and how far apart a failed message is tried again. Zero fields
// take the documented defaults, so RetryPolicy{} is DefaultRetryPolicy.
//
// The delay before attempt n+1 is InitialDelay·Multiplierⁿ⁻¹, capped at MaxDelay, then spread
// by ±Jitter (a fraction) so that a burst of failures does not come back as a burst. A handler
// can ask for a specific delay with message.RetryAfter. The computation is closed-form, so the
// engine keeps no per-message backoff state.
type RetryPolicy struct {
	// MaxAttempts is the number of deliveries, the first included, before a message is
	// dead-lettered. 1 means no retries. Default 5.
	MaxAttempts int
	// InitialDelay before the second attempt. Default 100ms.
	InitialDelay time.Duration
	// MaxDelay caps the delay, jitter included. Default 30s.
	MaxDelay time.Duration
	// Multiplier grows the delay per attempt; at least 1. Default 2.
	Multiplier float64
	// Jitter spreads each delay uniformly by ±Jitter·delay; from 0 to 1. Default 0.2. Use a
	// negative value for no jitter.
	Jitter float64
}

// DefaultRetryPolicy is the policy a zero RetryPolicy stands for.
var DefaultRetryPolicy = RetryPolicy{
	MaxAttempts:  5,
	InitialDelay: 100 * time.Millisecond,
	MaxDelay:     30 * time.Second,
	Multiplier:   2,
	Jitter:       0.2,
}

// DefaultDeadLetterBackoff spaces the attempts to store a dead-letter copy that could not be
// stored (SubscriberConfig.DeadLetterBackoff): 1s, 2s, 4s, … capped at one minute, ±20%.
// MaxAttempts does not apply: the message is kept and tried until its copy is stored.
var DefaultDeadLetterBackoff = RetryPolicy{
	InitialDelay: time.Second,
	MaxDelay:     time.Minute,
	Multiplier:   2,
	Jitter:       0.2,
}

// withDefaults fills zero fields from DefaultRetryPolicy.
func (r RetryPolicy) withDefaults() RetryPolicy { return r.withDefaultsFrom(DefaultRetryPolicy) }

// withDefaultsFrom fills zero fields from d.
func (r RetryPolicy) withDefaultsFrom(d RetryPolicy) RetryPolicy {
	if r.MaxAttempts != 0 {
		d.MaxAttempts = r.MaxAttempts
	}
	if r.InitialDelay != 0 {
		d.InitialDelay = r.InitialDelay
	}
	if r.MaxDelay != 0 {
		d.MaxDelay = r.MaxDelay
	}
	if r.Multiplier != 0 {
		d.Multiplier = r.Multiplier
	}
	if r.Jitter > 0 {
		d.Jitter = r.Jitter
	} else if r.Jitter < 0 {
		d.Jitter = 0
	}
	return d
}

// Validate reports a policy that cannot work.
func (r RetryPolicy) Validate() error {
	switch {
	case r.MaxAttempts < 0:
		return fmt.Errorf("%w: RetryPolicy.MaxAttempts %d is negative", ErrInvalidConfig, r.MaxAttempts)
	case r.InitialDelay < 0 || r.MaxDelay < 0:
		return fmt.Errorf("%w: RetryPolicy delays must not be negative", ErrInvalidConfig)
	case r.Multiplier != 0 && r.Multiplier < 1:
		return fmt.Errorf("%w: RetryPolicy.Multiplier %v is below 1", ErrInvalidConfig, r.Multiplier)
	case r.Jitter > 1:
		return fmt.Errorf("%w: RetryPolicy.Jitter %v is above 1", ErrInvalidConfig, r.Jitter)
	case r.MaxDelay != 0 && r.InitialDelay > r.MaxDelay:
		return fmt.Errorf("%w: RetryPolicy.InitialDelay %v exceeds MaxDelay %v", ErrInvalidConfig, r.InitialDelay, r.MaxDelay)
	}
	return nil
}

// Delay returns the wait after the given failed attempt (1 for the first delivery), with
// jitter. Zero fields are read as their defaults.
func (r RetryPolicy) Delay(attempt int) time.Duration {
	r = r.withDefaults()
	return r.delay(attempt)
}

func (r *RetryPolicy) delay(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	d := float64(r.InitialDelay) * math.Pow(r.Multiplier, float64(attempt-1))
	if d > float64(r.MaxDelay) || math.IsInf(d, 0) || math.IsNaN(d) {
		d = float64(r.MaxDelay)
	}
	if r.Jitter > 0 {
		d *= 1 + r.Jitter*(2*rand.Float64()-1)
	}
	return time.Duration(min(d, float64(r.MaxDelay))) // the cap holds after the jitter too
}
