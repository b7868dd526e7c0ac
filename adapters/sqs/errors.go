package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/courierhq/courier/transport"
)

// errorCode returns the SQS error code of err without a namespace ("QueueDoesNotExist" for
// "com.amazonaws.sqs#QueueDoesNotExist"), or "".
func errorCode(err error) string {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return ""
	}
	return sanitizeCode(ae.ErrorCode())
}

func sanitizeCode(code string) string {
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	code, _, _ = strings.Cut(code, ":")
	return code
}

func isNotFound(err error) bool {
	var nf *types.QueueDoesNotExist
	if errors.As(err, &nf) {
		return true
	}
	switch errorCode(err) {
	case "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "NonExistentQueue":
		return true
	}
	return false
}

// codeKinds maps SQS error codes onto Courier's error kinds.
var codeKinds = map[string]error{
	// Access.
	"AccessDenied":                transport.ErrAccessDenied,
	"AccessDeniedException":       transport.ErrAccessDenied,
	"InvalidClientTokenId":        transport.ErrAccessDenied,
	"SignatureDoesNotMatch":       transport.ErrAccessDenied,
	"UnrecognizedClientException": transport.ErrAccessDenied,
	"InvalidSecurity":             transport.ErrAccessDenied,
	"MissingAuthenticationToken":  transport.ErrAccessDenied,
	"IncompleteSignature":         transport.ErrAccessDenied,
	"ExpiredToken":                transport.ErrAccessDenied,
	"KmsAccessDenied":             transport.ErrAccessDenied,
	"KmsDisabled":                 transport.ErrAccessDenied,
	"KmsNotFound":                 transport.ErrAccessDenied,
	"KmsInvalidState":             transport.ErrAccessDenied,
	"KmsInvalidKeyUsage":          transport.ErrAccessDenied,
	"KmsOptInRequired":            transport.ErrAccessDenied,
	// Throttled or overloaded: the SDK retried already.
	"RequestThrottled":         transport.ErrUnavailable,
	"ThrottlingException":      transport.ErrUnavailable,
	"Throttling":               transport.ErrUnavailable,
	"TooManyRequestsException": transport.ErrUnavailable,
	"KmsThrottled":             transport.ErrUnavailable,
	"OverLimit":                transport.ErrUnavailable,
	"ServiceUnavailable":       transport.ErrUnavailable,
	"InternalError":            transport.ErrUnavailable,
	"InternalFailure":          transport.ErrUnavailable,
	"QueueDeletedRecently":     transport.ErrUnavailable,
	"RequestTimeout":           transport.ErrUnavailable,
	// The message.
	"MessageTooLong":         transport.ErrMessageTooLarge,
	"BatchRequestTooLong":    transport.ErrMessageTooLarge,
	"InvalidMessageContents": transport.ErrInvalidMessage,
	"InvalidAttributeName":   transport.ErrInvalidMessage,
	"InvalidAttributeValue":  transport.ErrInvalidMessage,
	"InvalidParameterValue":  transport.ErrInvalidMessage,
	// The queue.
	"QueueDoesNotExist":                       transport.ErrTopicNotFound,
	"AWS.SimpleQueueService.NonExistentQueue": transport.ErrTopicNotFound,
	"NonExistentQueue":                        transport.ErrTopicNotFound,
}

// errorKind returns the Courier error kind err falls under, or nil.
func errorKind(err error) error {
	if err == nil {
		return nil
	}
	code := errorCode(err)
	if k, ok := codeKinds[code]; ok {
		// ElasticMQ reports an oversize message as InvalidAttributeValue "MessageTooLong".
		if k == transport.ErrInvalidMessage && strings.Contains(err.Error(), "MessageTooLong") {
			return transport.ErrMessageTooLarge
		}
		return k
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if ae.ErrorFault() == smithy.FaultServer {
			return transport.ErrUnavailable
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return transport.ErrUnavailable
		}
		return nil
	}
	var (
		send  *smithyhttp.RequestSendError
		quota ratelimit.QuotaExceededError
		nerr  net.Error
	)
	switch {
	case errors.As(err, &send), errors.As(err, &quota), errors.As(err, &nerr):
		return transport.ErrUnavailable
	case strings.Contains(err.Error(), "get identity"):
		// The credential chain found nothing usable (no keys, no role, IMDS unreachable).
		return transport.ErrAccessDenied
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return transport.ErrUnavailable
	}
	return nil
}

// opError wraps err from operation op (e.g. `send to queue "orders"`) with its error kind.
// parent is the caller's context: its cancellation is reported as such, while the adapter's
// own OperationTimeout counts as the broker not answering.
func (d *Driver) opError(parent context.Context, op string, err error) error {
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("sqs: %s: %w", op, perr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("sqs: %s: %w: no answer within %v (OperationTimeout): %w", op, transport.ErrUnavailable, d.cfg.OperationTimeout, err)
	}
	if k := errorKind(err); k != nil {
		return fmt.Errorf("sqs: %s: %w: %w", op, k, err)
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}
