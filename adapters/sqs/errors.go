package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/courierhq/courier/transport/driver"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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
	"AccessDenied":                driver.ErrAccessDenied,
	"AccessDeniedException":       driver.ErrAccessDenied,
	"InvalidClientTokenId":        driver.ErrAccessDenied,
	"SignatureDoesNotMatch":       driver.ErrAccessDenied,
	"UnrecognizedClientException": driver.ErrAccessDenied,
	"InvalidSecurity":             driver.ErrAccessDenied,
	"MissingAuthenticationToken":  driver.ErrAccessDenied,
	"IncompleteSignature":         driver.ErrAccessDenied,
	"ExpiredToken":                driver.ErrAccessDenied,
	"KmsAccessDenied":             driver.ErrAccessDenied,
	"KmsDisabled":                 driver.ErrAccessDenied,
	"KmsNotFound":                 driver.ErrAccessDenied,
	"KmsInvalidState":             driver.ErrAccessDenied,
	"KmsInvalidKeyUsage":          driver.ErrAccessDenied,
	"KmsOptInRequired":            driver.ErrAccessDenied,
	// Throttled or overloaded: the SDK retried already.
	"RequestThrottled":         driver.ErrUnavailable,
	"ThrottlingException":      driver.ErrUnavailable,
	"Throttling":               driver.ErrUnavailable,
	"TooManyRequestsException": driver.ErrUnavailable,
	"KmsThrottled":             driver.ErrUnavailable,
	"OverLimit":                driver.ErrUnavailable,
	"ServiceUnavailable":       driver.ErrUnavailable,
	"InternalError":            driver.ErrUnavailable,
	"InternalFailure":          driver.ErrUnavailable,
	"QueueDeletedRecently":     driver.ErrUnavailable,
	"RequestTimeout":           driver.ErrUnavailable,
	// The message.
	"MessageTooLong":         driver.ErrMessageTooLarge,
	"BatchRequestTooLong":    driver.ErrMessageTooLarge,
	"InvalidMessageContents": driver.ErrInvalidMessage,
	"InvalidAttributeName":   driver.ErrInvalidMessage,
	"InvalidAttributeValue":  driver.ErrInvalidMessage,
	"InvalidParameterValue":  driver.ErrInvalidMessage,
	// The queue.
	"QueueDoesNotExist":                       driver.ErrTopicNotFound,
	"AWS.SimpleQueueService.NonExistentQueue": driver.ErrTopicNotFound,
	"NonExistentQueue":                        driver.ErrTopicNotFound,
}

// errorKind returns the Courier error kind err falls under, or nil.
func errorKind(err error) error {
	if err == nil {
		return nil
	}
	code := errorCode(err)
	if k, ok := codeKinds[code]; ok {
		// ElasticMQ reports an oversize message as InvalidAttributeValue "MessageTooLong".
		if k == driver.ErrInvalidMessage && strings.Contains(err.Error(), "MessageTooLong") {
			return driver.ErrMessageTooLarge
		}
		return k
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if ae.ErrorFault() == smithy.FaultServer {
			return driver.ErrUnavailable
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
			return driver.ErrUnavailable
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
		return driver.ErrUnavailable
	case strings.Contains(err.Error(), "get identity"):
		// The credential chain found nothing usable (no keys, no role, IMDS unreachable).
		return driver.ErrAccessDenied
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return driver.ErrUnavailable
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
		return fmt.Errorf("sqs: %s: %w: no answer within %v (OperationTimeout): %w", op, driver.ErrUnavailable, d.cfg.OperationTimeout, err)
	}
	if k := errorKind(err); k != nil {
		return fmt.Errorf("sqs: %s: %w: %w", op, k, err)
	}
	return fmt.Errorf("sqs: %s: %w", op, err)
}
