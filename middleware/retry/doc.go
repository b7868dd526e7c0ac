// Package retry decides which handler errors are worth retrying, and retries calls to
// downstreams inside a handler.
//
// The consumer engine owns the retry policy of a subscription (transport.RetryPolicy:
// exponential backoff with jitter, at most MaxAttempts deliveries, then dead-letter). This
// package does not duplicate it; it adds what the engine cannot know:
//
//   - per-error classification: a Classifier's consume middleware looks at the error a handler
//     returned and marks it permanent (dead-letter now, no retries) or gives it a specific delay
//     (message.RetryAfter), by errors.Is / errors.As rules or a function. The first rule that
//     matches decides; an error no rule matches is left as it is, so the engine's policy applies.
//   - a schedule from a backoff.BackOff (github.com/cenkalti/backoff/v5), when the engine's
//     closed-form exponential is not the shape you want: Config.BackOff computes the delay of
//     each retryable failure from the message's attempt number, replacing the engine's delay;
//     backoff.Stop makes the failure permanent. The number of attempts stays the engine's.
//   - Do, a retry loop for one call to a downstream inside a handler (backoff/v5's Retry with
//     short defaults), which understands message.Permanent and message.RetryAfter.
//
// # Where it sits in the chain
//
// Innermost, just around the handler (see package chain): its rules are about the handler's
// errors. Placed outside the idempotency or decryption middleware, a broad rule ("everything is
// permanent") would also turn a store outage, which retrying fixes, into dead-letters.
//
// An error already marked permanent stays permanent, and a deferral (message.Defer: "not now",
// from the ordering or idempotency middleware) is never classified: rules classify only the
// errors the handler left undecided, and a Retryable rule only stops later rules from matching.
package retry
