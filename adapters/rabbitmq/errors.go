package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strconv"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP reply codes Courier tells apart.
const (
	codeConnectionForced   = 320
	codeAccessRefused      = 403
	codeNotFound           = 404
	codeResourceLocked     = 405
	codePreconditionFailed = 406
	codeNotAllowed         = 530
	codeFrameError         = 501
	codeResourceError      = 506
	codeInternalError      = 541
)

// kindOf maps an AMQP reply code onto Courier's error kinds; nil when none fits.
func kindOf(code int) error {
	switch code {
	case codeAccessRefused, codeNotAllowed:
		return driver.ErrAccessDenied
	case codeNotFound:
		return driver.ErrTopicNotFound
	case codePreconditionFailed, codeResourceLocked:
		return driver.ErrInvalidConfig
	case codeConnectionForced, codeResourceError, codeInternalError:
		return driver.ErrUnavailable
	}
	return nil
}

// brokerError is an error whose message is written for people while its chain holds both a
// Courier error kind and the client's original error (an *amqp091.Error, a net.Error).
type brokerError struct {
	msg   string
	kind  error
	cause error
}

func (e *brokerError) Error() string   { return e.msg }
func (e *brokerError) Unwrap() []error { return []error{e.kind, e.cause} }

// wrapError returns an error reading "rabbitmq: <format>: <kind>…" that matches kind and
// cause with errors.Is and errors.As.
func wrapError(kind, cause error, format string, args ...any) error {
	return &brokerError{msg: "rabbitmq: " + fmt.Sprintf(format, args...), kind: kind, cause: cause}
}

// mapError turns an error of amqp091-go or of the network into one that wraps a Courier
// error kind (errors.Is) and keeps the original (errors.As to *amqp091.Error). what says
// what was being done ("declare queue \"q\"").
func mapError(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("rabbitmq: %s: %w", what, err)
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		if ae == amqp.ErrClosed {
			return wrapError(driver.ErrUnavailable, err, "%s: %v: connection or channel closed", what, driver.ErrUnavailable)
		}
		kind := kindOf(ae.Code)
		if kind == nil {
			kind = driver.ErrUnavailable
		}
		hint := ""
		switch ae.Code {
		case codeAccessRefused:
			hint = " (check the user name, the password and the user's permissions)"
		case codeNotAllowed:
			hint = " (the vhost does not exist or the user may not use it)"
		case codeFrameError:
			hint = " (connection lost or a frame was refused)"
		}
		return wrapError(kind, err, "%s: %v: %s (AMQP %d)%s", what, kind, ae.Reason, ae.Code, hint)
	}
	return wrapError(driver.ErrUnavailable, err, "%s: %v: %v", what, driver.ErrUnavailable, err)
}

// retryable reports whether an operation that failed with err may succeed on a new
// connection or channel: lost connections yes, refusals (permissions, inequivalent
// arguments, missing entities) no.
func retryable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, driver.ErrClosed) {
		return false
	}
	var ae *amqp.Error
	if errors.As(err, &ae) {
		if ae == amqp.ErrClosed {
			return true
		}
		switch ae.Code {
		case codeAccessRefused, codeNotAllowed, codeNotFound, codePreconditionFailed, codeResourceLocked:
			return false
		}
		return true
	}
	return true
}

// codeOf returns the AMQP reply code in err's chain, or 0.
func codeOf(err error) int {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae != amqp.ErrClosed {
		return ae.Code
	}
	return 0
}

// brokerSizeRe matches RabbitMQ's refusal of a message over max_message_size.
var brokerSizeRe = regexp.MustCompile(`message size (\d+) is larger than configured max size (\d+)`)

// brokerSizeLimit returns the limit named in a channel error refusing a large message.
func brokerSizeLimit(err error) (int, bool) {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != codePreconditionFailed {
		return 0, false
	}
	m := brokerSizeRe.FindStringSubmatch(ae.Reason)
	if m == nil {
		return 0, false
	}
	n, err2 := strconv.Atoi(m[2])
	if err2 != nil {
		return 0, false
	}
	return n, true
}
