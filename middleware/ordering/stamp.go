package ordering

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadStamp is wrapped by ParseStamp's errors; the consume half treats a malformed stamp as
// a permanent failure (the message goes to the dead-letter destination).
var ErrBadStamp = errors.New("ordering: malformed sequence stamp")

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
