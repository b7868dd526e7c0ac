package lease

import (
	"errors"
	"fmt"
	"time"
)

// CheckTiming reports claim timings that cannot work, as both middlewares configure them: a
// negative Lease, Retention or StoreTimeout, or a Retention (how long a key's record lives)
// shorter than the Lease (how long a claim on it holds). Zero means the caller's default.
func CheckTiming(lease, retention, storeTimeout time.Duration) error {
	switch {
	case lease < 0 || retention < 0 || storeTimeout < 0:
		return errors.New("a negative Lease, Retention or StoreTimeout")
	case lease != 0 && retention != 0 && retention < lease:
		return fmt.Errorf("a Retention of %v, shorter than the Lease of %v", retention, lease)
	}
	return nil
}
