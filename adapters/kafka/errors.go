package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"

	"github.com/courierhq/courier/transport/driver"

	"github.com/segmentio/kafka-go"
)

// kindOf maps a kafka-go or network error onto Courier's error kinds; nil when none applies.
//
//   - unknown topic → ErrTopicNotFound; invalid topic name → ErrInvalidTopic;
//   - record or request too large → ErrMessageTooLarge;
//   - SASL or ACL refusals → ErrAccessDenied;
//   - connection failures, timeouts, leaderless partitions, too few in-sync replicas,
//     coordinators moving → ErrUnavailable (retrying later can succeed);
//   - io.ErrClosedPipe (a closed kafka-go writer or reader) → ErrClosed;
//   - any other broker error code → ErrNacked (the broker refused the records).
func kindOf(err error) error {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return nil
	}
	var ke kafka.Error
	if errors.As(err, &ke) {
		switch ke {
		case kafka.UnknownTopicOrPartition, kafka.UnknownTopicID:
			return driver.ErrTopicNotFound
		case kafka.InvalidTopic:
			return driver.ErrInvalidTopic
		case kafka.MessageSizeTooLarge, kafka.RecordListTooLarge, kafka.InvalidMessageSize:
			return driver.ErrMessageTooLarge
		case kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
			kafka.TransactionalIDAuthorizationFailed, kafka.SASLAuthenticationFailed, kafka.UnsupportedSASLMechanism,
			kafka.IllegalSASLState, kafka.SecurityDisabled, kafka.BrokerAuthorizationFailed,
			kafka.DelegationTokenAuthorizationFailed, kafka.PrincipalDeserializationFailure:
			return driver.ErrAccessDenied
		case kafka.LeaderNotAvailable, kafka.NotLeaderForPartition, kafka.RequestTimedOut,
			kafka.BrokerNotAvailable, kafka.ReplicaNotAvailable, kafka.NetworkException,
			kafka.GroupLoadInProgress, kafka.GroupCoordinatorNotAvailable, kafka.NotCoordinatorForGroup,
			kafka.NotEnoughReplicas, kafka.NotEnoughReplicasAfterAppend, kafka.NotController,
			kafka.KafkaStorageError, kafka.FencedLeaderEpoch, kafka.UnknownLeaderEpoch,
			kafka.PreferredLeaderNotAvailable, kafka.EligibleLeadersNotAvailable,
			kafka.ThrottlingQuotaExceeded, kafka.RebalanceInProgress:
			return driver.ErrUnavailable
		}
		if ke.Temporary() {
			return driver.ErrUnavailable
		}
		return driver.ErrNacked
	}
	var tooLarge kafka.MessageTooLargeError
	if errors.As(err, &tooLarge) {
		return driver.ErrMessageTooLarge
	}
	if errors.Is(err, io.ErrClosedPipe) {
		return driver.ErrClosed
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, net.ErrClosed) {
		return driver.ErrUnavailable
	}
	return nil
}

// wrap returns err with its error kind attached (errors.Is matches both the kind and the
// kafka-go error), prefixed with what was being done.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if kind := kindOf(err); kind != nil && !hasKind(err) {
		return fmt.Errorf("kafka: %s: %w: %w", what, kind, err)
	}
	return fmt.Errorf("kafka: %s: %w", what, err)
}

// kinds are the error kinds kindOf returns.
var kinds = []error{driver.ErrTopicNotFound, driver.ErrInvalidTopic, driver.ErrMessageTooLarge,
	driver.ErrAccessDenied, driver.ErrUnavailable, driver.ErrNacked, driver.ErrClosed}

// hasKind reports whether err already carries one of the kinds.
func hasKind(err error) bool {
	for _, k := range kinds {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// fatal reports errors a subscriber cannot recover from by waiting: refused credentials or
// permissions. Everything else (a broker restarting, a rebalance) is retried.
func fatal(err error) bool { return errors.Is(kindOf(err), driver.ErrAccessDenied) }
