package transport

import "github.com/courierhq/courier/transport/driver"

// Error kinds. Every error Courier returns wraps one of these where it applies, so callers can
// branch with errors.Is. They are the adapter contract's kinds (package driver), re-exported:
// transport.ErrUnavailable and driver.ErrUnavailable are the same value.
var (
	// ErrClosed: the connection, publisher or subscriber was closed.
	ErrClosed = driver.ErrClosed
	// ErrInvalidMessage: a message cannot be published as given (nil, bad header, …).
	ErrInvalidMessage = driver.ErrInvalidMessage
	// ErrInvalidTopic: a topic or subscription name the broker would reject.
	ErrInvalidTopic = driver.ErrInvalidTopic
	// ErrMessageTooLarge: a message exceeds the broker's size limit.
	ErrMessageTooLarge = driver.ErrMessageTooLarge
	// ErrTopicNotFound: the topic does not exist and the adapter was told not to create it.
	ErrTopicNotFound = driver.ErrTopicNotFound
	// ErrSubscriptionNotFound: the subscription does not exist and creation is off.
	ErrSubscriptionNotFound = driver.ErrSubscriptionNotFound
	// ErrUnroutable: the broker accepted the message but had nowhere to put it.
	ErrUnroutable = driver.ErrUnroutable
	// ErrNacked: the broker refused to take responsibility for a message.
	ErrNacked = driver.ErrNacked
	// ErrAccessDenied: the credentials were refused or lack a permission.
	ErrAccessDenied = driver.ErrAccessDenied
	// ErrUnavailable: the broker could not be reached or stopped answering.
	ErrUnavailable = driver.ErrUnavailable
	// ErrUnknownScheme: Open was given a URL scheme no adapter registered.
	ErrUnknownScheme = driver.ErrUnknownScheme
	// ErrInvalidURL: Open was given a URL it cannot use (malformed, missing or bad parameter).
	ErrInvalidURL = driver.ErrInvalidURL
	// ErrInvalidConfig: a Config failed validation.
	ErrInvalidConfig = driver.ErrInvalidConfig
	// ErrUnsupported: the broker (or this topic on it) cannot do what was asked; the error
	// says what would work instead.
	ErrUnsupported = driver.ErrUnsupported
	// ErrHandlerPanic: a handler panicked; the panic is turned into a retryable error.
	ErrHandlerPanic = driver.ErrHandlerPanic
)

// FailedMessage is one message of a batch that was not published (see PublishError).
type FailedMessage = driver.FailedMessage

// PublishError reports a batch in which some or all messages were not published. Every
// message not listed in Failed was accepted by the broker. Use errors.As to get it; errors.Is
// matches the error kinds of the failed messages.
type PublishError = driver.PublishError

// Capabilities describes what the connected broker can do (Conn.Capabilities).
type Capabilities = driver.Capabilities

// StartPosition says where a new subscription begins reading its topic (SubscriberConfig.Start).
type StartPosition = driver.StartPosition

// Start positions for SubscriberConfig.Start.
const (
	// StartLatest: a new subscription receives only what is published after Subscribe
	// returned. The default on every broker.
	StartLatest = driver.StartLatest
	// StartEarliest: a new subscription also receives what the topic still holds from before
	// it existed, where the broker keeps history (Kafka).
	StartEarliest = driver.StartEarliest
)
