package driver

import (
	"errors"
	"fmt"
	"strings"
)

// Error kinds. Every error Courier returns wraps one of these where it applies, so callers can
// branch with errors.Is. Adapters map their broker's errors onto them; package transport
// re-exports each under the same name, which is where users find them.
var (
	// ErrClosed: the connection, publisher or subscriber was closed.
	ErrClosed = errors.New("courier: closed")
	// ErrInvalidMessage: a message cannot be published as given (nil, bad header, …).
	ErrInvalidMessage = errors.New("courier: invalid message")
	// ErrInvalidTopic: a topic or subscription name the broker would reject.
	ErrInvalidTopic = errors.New("courier: invalid topic or subscription name")
	// ErrMessageTooLarge: a message exceeds the broker's size limit.
	ErrMessageTooLarge = errors.New("courier: message too large")
	// ErrTopicNotFound: the topic does not exist and the adapter was told not to create it.
	ErrTopicNotFound = errors.New("courier: topic not found")
	// ErrSubscriptionNotFound: the subscription does not exist and creation is off.
	ErrSubscriptionNotFound = errors.New("courier: subscription not found")
	// ErrUnroutable: the broker accepted the message but had nowhere to put it.
	ErrUnroutable = errors.New("courier: message unroutable")
	// ErrNacked: the broker refused to take responsibility for a message.
	ErrNacked = errors.New("courier: message rejected by broker")
	// ErrAccessDenied: the credentials were refused or lack a permission.
	ErrAccessDenied = errors.New("courier: access denied")
	// ErrUnavailable: the broker could not be reached or stopped answering.
	ErrUnavailable = errors.New("courier: broker unavailable")
	// ErrUnknownScheme: Open was given a URL scheme no adapter registered.
	ErrUnknownScheme = errors.New("courier: unknown URL scheme")
	// ErrInvalidURL: Open was given a URL it cannot use (malformed, missing or bad parameter).
	ErrInvalidURL = errors.New("courier: invalid URL")
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = errors.New("courier: invalid configuration")
	// ErrUnsupported: the broker (or this topic on it) cannot do what was asked; the error
	// says what would work instead.
	ErrUnsupported = errors.New("courier: not supported by this broker")
	// ErrHandlerPanic: a handler panicked; the panic is turned into a retryable error.
	ErrHandlerPanic = errors.New("courier: handler panicked")
)

// FailedMessage is one message of a batch that was not published.
type FailedMessage struct {
	// Index is the message's position in the batch the caller passed to Publish.
	Index int
	// ID is the message's ID (set by Publish when it was empty).
	ID string
	// Err says why; it wraps one of the error kinds above where one applies.
	Err error
}

// PublishError reports a batch in which some or all messages were not published. Every
// message not listed in Failed was accepted by the broker. Use errors.As to get it; errors.Is
// matches the error kinds of the failed messages.
type PublishError struct {
	// Topic is the topic of the batch.
	Topic string
	// Total is the number of messages in the batch.
	Total int
	// Failed lists the messages that were not published, in batch order.
	Failed []FailedMessage
}

// Error names the topic, the counts and each failed message (the first few).
func (e *PublishError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "courier: publish to %q: %d of %d messages failed", e.Topic, len(e.Failed), e.Total)
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		fmt.Fprintf(&b, "; message %d (id %s): %v", f.Index, f.ID, f.Err)
	}
	return b.String()
}

// Unwrap returns the failed messages' errors, so errors.Is(err, ErrMessageTooLarge) holds when
// any message was too large.
func (e *PublishError) Unwrap() []error {
	errs := make([]error, 0, len(e.Failed))
	for _, f := range e.Failed {
		errs = append(errs, f.Err)
	}
	return errs
}

// FailedIndexes returns the batch positions of the failed messages.
func (e *PublishError) FailedIndexes() []int {
	idx := make([]int, len(e.Failed))
	for i, f := range e.Failed {
		idx[i] = f.Index
	}
	return idx
}
