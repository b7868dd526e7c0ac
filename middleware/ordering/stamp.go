package ordering

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadStamp is wrapped by ParseStamp's errors; the consume half treats a malformed stamp as
// a permanent failure (the message goes to the dead-letter destination).
var ErrBadStamp = errors.New("ordering: malformed sequence stamp")

// ErrImplausibleStamp is wrapped by CheckIssued's errors: a well-formed stamp that the key's
// publisher counter cannot have issued (a forgery, or a producer that does not share the
// consumers' store). The consume half dead-letters such a message.
var ErrImplausibleStamp = errors.New("ordering: sequence stamp not issued by the key's counter")

// CheckIssued decides whether the stamp epoch/seq can have come from a publisher counter that
// has handed out numbers up to cLast in epoch cEpoch (as Store.Issued reports it; cEpoch 0:
// no counter). Counter epochs only grow and numbers are reserved before they are published, so:
//
//   - an epoch above the counter's, or a number above cLast in the counter's epoch, was
//     never issued: ErrImplausibleStamp;
//   - an earlier epoch than the counter's cannot be checked further (its numbers are gone)
//     and passes: it can only make the key older, never block the counter's current epoch;
//   - with no counter (expired after Retention of disuse, or never used), an epoch up to now
//     passes (an old message outliving its counter); a later one cannot be a store's clock
//     reading yet: ErrImplausibleStamp.
func CheckIssued(epoch, seq, cEpoch, cLast int64, now time.Time) error {
	switch {
	case cEpoch == 0 && epoch > now.UnixMilli():
		return fmt.Errorf("%w: epoch %d lies in the future and the key has no counter", ErrImplausibleStamp, epoch)
	case cEpoch == 0:
		return nil
	case epoch > cEpoch:
		return fmt.Errorf("%w: epoch %d is newer than the counter's %d", ErrImplausibleStamp, epoch, cEpoch)
	case epoch == cEpoch && seq > cLast:
		return fmt.Errorf("%w: number %d not handed out yet (counter at %d)", ErrImplausibleStamp, seq, cLast)
	}
	return nil
}

// FormatStamp returns the value of message.HeaderSequence for sequence number seq of a
// counter's epoch: "<seq>@<epoch>", both decimal.
func FormatStamp(epoch, seq int64) string {
	var b [48]byte
	out := strconv.AppendInt(b[:0], seq, 10)
	out = append(out, '@')
	out = strconv.AppendInt(out, epoch, 10)
	return string(out)
}

// ParseStamp reads a message.HeaderSequence value written by FormatStamp. The sequence number
// is at least 1 and the epoch not negative.
func ParseStamp(s string) (epoch, seq int64, err error) {
	a, b, ok := strings.Cut(s, "@")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %.40q has no '@'", ErrBadStamp, s)
	}
	seq, err1 := strconv.ParseInt(a, 10, 64)
	epoch, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || seq < 1 || epoch < 0 {
		return 0, 0, fmt.Errorf("%w: %.40q is not <seq>@<epoch> with seq ≥ 1", ErrBadStamp, s)
	}
	return epoch, seq, nil
}
