package message

import "context"

// Handler consumes one message. Returning nil acknowledges it. Returning an error rejects it:
// it is redelivered under the subscription's retry policy, or dead-lettered once attempts run
// out. An error marked with Permanent skips the retries and goes straight to dead-letter.
//
// A Handler may be called concurrently for messages with different keys; it is never called
// concurrently for two messages with the same non-empty Key on one subscriber.
type Handler func(ctx context.Context, m *Message) error

// Middleware wraps a Handler, like net/http middleware.
type Middleware func(Handler) Handler

// Chain composes middleware so that the first one listed is the outermost: Chain(a, b)(h)
// runs a, then b, then h. Nil entries are skipped (as in ChainPublish), so that optional
// middleware can be listed unconditionally.
func Chain(mw ...Middleware) Middleware {
	return func(h Handler) Handler {
		for i := len(mw) - 1; i >= 0; i-- {
			if mw[i] != nil {
				h = mw[i](h)
			}
		}
		return h
	}
}

// PublishFunc publishes a batch of messages to a topic. It is the shape publish middleware
// wraps; transport.Publisher supplies the innermost one.
type PublishFunc func(ctx context.Context, topic string, msgs []*Message) error

// PublishMiddleware wraps a PublishFunc.
type PublishMiddleware func(PublishFunc) PublishFunc

// ChainPublish composes publish middleware; the first one listed is the outermost, so it sees
// the messages first. Nil entries are skipped, as in Chain.
func ChainPublish(mw ...PublishMiddleware) PublishMiddleware {
	return func(p PublishFunc) PublishFunc {
		for i := len(mw) - 1; i >= 0; i-- {
			if mw[i] != nil {
				p = mw[i](p)
			}
		}
		return p
	}
}
