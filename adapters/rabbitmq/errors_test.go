package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/transport"
)

func TestMapError(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		kind      error
		retryable bool
	}{
		{"access refused", &amqp.Error{Code: 403, Reason: "ACCESS_REFUSED"}, transport.ErrAccessDenied, false},
		{"vhost", &amqp.Error{Code: 530, Reason: "NOT_ALLOWED - vhost nope not found"}, transport.ErrAccessDenied, false},
		{"not found", &amqp.Error{Code: 404, Reason: "NOT_FOUND - no exchange"}, transport.ErrTopicNotFound, false},
		{"precondition", &amqp.Error{Code: 406, Reason: "PRECONDITION_FAILED"}, transport.ErrInvalidConfig, false},
		{"forced", &amqp.Error{Code: 320, Reason: "CONNECTION_FORCED"}, transport.ErrUnavailable, true},
		{"frame", &amqp.Error{Code: 501, Reason: "EOF"}, transport.ErrUnavailable, true},
		{"closed", amqp.ErrClosed, transport.ErrUnavailable, true},
		{"refused", &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}, transport.ErrUnavailable, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := mapError("doing it", tc.err)
			if !errors.Is(err, tc.kind) {
				t.Errorf("%v does not match %v", err, tc.kind)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("%v lost the original error", err)
			}
			if retryable(tc.err) != tc.retryable {
				t.Errorf("retryable = %v; want %v", !tc.retryable, tc.retryable)
			}
		})
	}
	if err := mapError("x", context.DeadlineExceeded); !errors.Is(err, context.DeadlineExceeded) || retryable(err) {
		t.Errorf("deadline: %v", err)
	}
	if mapError("x", nil) != nil {
		t.Error("mapError(nil) != nil")
	}
}

func TestBrokerSizeLimit(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", &amqp.Error{Code: 406, Reason: "PRECONDITION_FAILED - message size 20000 is larger than configured max size 16384"})
	if n, ok := brokerSizeLimit(err); !ok || n != 16384 {
		t.Errorf("limit %d, %v", n, ok)
	}
	if _, ok := brokerSizeLimit(&amqp.Error{Code: 406, Reason: "PRECONDITION_FAILED - inequivalent arg"}); ok {
		t.Error("matched another precondition")
	}
}
