package reqreply

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// ErrBadRequest is matched by the error a responder's handler returns for a request it
// cannot answer: no or malformed correlation ID, no reply address, or one outside
// ResponderConfig.ReplyPrefix. The error is permanent: the request is dead-lettered with the
// reason, never retried.
var ErrBadRequest = errors.New("reqreply: bad request")

// Func answers one request. It returns the reply (nil means an empty reply) or an error, which
// the caller receives as a *RemoteError (KindPermanent for message.Permanent errors; return a
// *RemoteError to choose the kind). Request headers are untrusted input.
type Func func(ctx context.Context, req *message.Message) (*message.Message, error)

// ResponderConfig configures a responder. The zero value is valid.
type ResponderConfig struct {
	// ReplyPrefix is the prefix a request's reply address must have; requests asking for a
	// reply anywhere else are dead-lettered (ErrBadRequest), so that a hostile producer cannot
	// make the responder publish to arbitrary topics. Default DefaultReplyPrefix; set it to
	// the prefix your requesters use (RequesterConfig.ReplyPrefix).
	ReplyPrefix string
}

// Validate reports a configuration that cannot work.
func (c ResponderConfig) Validate() error {
	if c.ReplyPrefix != "" {
		if err := transport.ValidateName(c.ReplyPrefix); err != nil {
			return fmt.Errorf("reply prefix: %w", err)
		}
	}
	return nil
}

// Responder returns a handler that answers requests with fn and publishes each reply with pub,
// with the default configuration; see NewResponder.
func Responder(pub Publisher, fn Func) message.Handler {
	h, _ := NewResponder(pub, fn, ResponderConfig{}) // the zero config is valid
	return h
}

// NewResponder returns a handler, for Subscriber.Run, that answers requests with fn and
// publishes each reply with pub to the request's reply address, with its correlation ID.
//
//   - fn's error becomes an error reply, and the request is acknowledged — unless the
//     handler's context ended (the subscriber is stopping): then the error is returned, and
//     the engine hands the request back to the broker for the next responder.
//   - A reply that cannot be published is an error: the engine retries the request, calling
//     fn again. A reply whose topic is gone (its requester closed: ErrTopicNotFound,
//     ErrUnroutable) is logged and the request acknowledged.
//   - A request without a valid correlation ID or reply address fails permanently
//     (ErrBadRequest): it is dead-lettered with the reason.
//
// A request may be handled more than once (a redelivery, a caller's retry with the same
// correlation ID); make fn's side effects idempotent by CorrelationID(req). Do not key the
// idempotency middleware on the correlation ID: it acknowledges a duplicate without calling
// the handler, so a retrying caller would never get its reply.
func NewResponder(pub Publisher, fn Func, cfg ResponderConfig) (message.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("reqreply: responder: %w", err)
	}
	if cfg.ReplyPrefix == "" {
		cfg.ReplyPrefix = DefaultReplyPrefix
	}
	return func(ctx context.Context, req *message.Message) error {
		id, replyTo, err := cfg.check(req)
		if err != nil {
			return message.Permanent(err)
		}
		reply, ferr := fn(ctx, req)
		if ferr != nil && ctx.Err() != nil {
			return ferr // stopping: the request goes back to the broker
		}
		reply = buildReply(reply, ferr, id)
		if err := pub.Publish(ctx, replyTo, reply); err != nil {
			if errors.Is(err, transport.ErrTopicNotFound) || errors.Is(err, transport.ErrUnroutable) {
				message.LoggerFrom(ctx).Warn("reqreply: reply dropped: the requester is gone",
					"courier.reply_to", replyTo, "courier.correlation_id", id, "error", err)
				return nil
			}
			return fmt.Errorf("reqreply: publish reply to %s: %w", replyTo, err)
		}
		return nil
	}, nil
}

// check validates a request's correlation ID and reply address (untrusted input).
func (c ResponderConfig) check(req *message.Message) (id, replyTo string, err error) {
	id = CorrelationID(req)
	if err := validCorrelationID(id); err != nil {
		return "", "", fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	replyTo = req.Header(message.HeaderReplyTo)
	switch {
	case replyTo == "":
		return "", "", fmt.Errorf("%w: no reply address (%s)", ErrBadRequest, message.HeaderReplyTo)
	case transport.ValidateName(replyTo) != nil:
		return "", "", fmt.Errorf("%w: reply address: %v", ErrBadRequest, transport.ValidateName(replyTo))
	case !strings.HasPrefix(replyTo, c.ReplyPrefix) || len(replyTo) == len(c.ReplyPrefix):
		return "", "", fmt.Errorf("%w: reply address %q outside %q", ErrBadRequest, replyTo, c.ReplyPrefix+"*")
	}
	return id, replyTo, nil
}

// buildReply makes the message published as the answer: fn's reply, or an error reply.
func buildReply(reply *message.Message, err error, id string) *message.Message {
	switch {
	case err != nil:
		re := remoteOf(err)
		reply = message.New([]byte(re.Message))
		reply.SetHeader(message.HeaderReplyError, re.Kind)
	case reply == nil:
		reply = message.New(nil)
	default:
		reply = reply.Clone()
		delete(reply.Headers, message.HeaderReplyError)
	}
	delete(reply.Headers, message.HeaderReplyTo) // a reply is not a request
	reply.SetHeader(message.HeaderCorrelationID, id)
	return reply
}
