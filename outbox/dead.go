package outbox

import (
	"context"
	"errors"

	"github.com/courierhq/courier/transport"
)

// Reasons recorded in courier_outbox_dead.reason and DeadLetter.Reason: why a row was moved
// out of the outbox instead of retried.
const (
	// ReasonTooLarge: the broker refused the message as too large (transport.ErrMessageTooLarge).
	ReasonTooLarge = "message_too_large"
	// ReasonInvalidMessage: the broker or adapter refused the message as given, e.g. a header
	// it cannot carry (transport.ErrInvalidMessage).
	ReasonInvalidMessage = "invalid_message"
	// ReasonInvalidTopic: the row's topic is a name the broker rejects (transport.ErrInvalidTopic).
	ReasonInvalidTopic = "invalid_topic"
	// ReasonBadHeaders: the row's stored headers are not a JSON object of strings.
	ReasonBadHeaders = "undecodable_headers"
)

// DeadLetter describes a row the relay moved to courier_outbox_dead (Config.OnDeadLetter).
type DeadLetter struct {
	// Seq is the row's outbox sequence number (also the dead table's primary key).
	Seq int64
	// ID, Topic and Key are the message's.
	ID, Topic, Key string
	// Reason is one of the Reason constants.
	Reason string
	// Err is the error that made the row permanent.
	Err error
}

// errBadHeaders is wrapped by the error of a row whose stored headers do not decode.
var errBadHeaders = errors.New("outbox: stored headers do not decode")

// verdict is what the relay does with a row it could not publish.
type verdict int

const (
	// retry: keep the row; its key waits with exponential backoff.
	retry verdict = iota
	// deadLetter: move the row to courier_outbox_dead and go on with its key's next row.
	deadLetter
	// sendAlone: a permanent error that names no message of a multi-message call; send the
	// rest of the group one message per call, so that the refused row can be told apart.
	sendAlone
)

// decide says what to do with the row at index (the first unconfirmed one) of a call of n
// messages that returned err (not nil). A *transport.PublishError entry for that index is the
// row's own error; any other error belongs to the row only when the call had one message.
// Transient kinds (broker unavailable, closed, context ended) always retry, also when the
// error matches a permanent kind as well; errors of no known kind retry. It returns the error
// that concerns the row and, for deadLetter and sendAlone, the reason.
func decide(err error, index, n int) (verdict, string, error) {
	attributed := n == 1
	var pe *transport.PublishError
	if errors.As(err, &pe) {
		for _, f := range pe.Failed {
			if f.Index == index && f.Err != nil {
				err, attributed = f.Err, true
				break
			}
		}
	}
	switch {
	case errors.Is(err, transport.ErrUnavailable), errors.Is(err, transport.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return retry, "", err
	}
	reason := ""
	switch {
	case errors.Is(err, errBadHeaders):
		reason = ReasonBadHeaders
	case errors.Is(err, transport.ErrMessageTooLarge):
		reason = ReasonTooLarge
	case errors.Is(err, transport.ErrInvalidTopic):
		reason = ReasonInvalidTopic
	case errors.Is(err, transport.ErrInvalidMessage):
		reason = ReasonInvalidMessage
	default:
		return retry, "", err
	}
	if !attributed {
		return sendAlone, reason, err
	}
	return deadLetter, reason, err
}

// deadRow is a row to move to the dead table, and why.
type deadRow struct {
	row    row
	reason string
	err    error
}

// deadSQL moves one row to the dead table, in the round's transaction.
const deadSQL = `WITH d AS (DELETE FROM courier_outbox WHERE seq = $1
		RETURNING seq, id, topic, key, payload, headers, publish_time, created_at, attempts)
	INSERT INTO courier_outbox_dead (seq, id, topic, key, payload, headers, publish_time, created_at,
		attempts, reason, error)
	SELECT seq, id, topic, key, payload, headers, publish_time, created_at, attempts + 1, $2, $3 FROM d`
