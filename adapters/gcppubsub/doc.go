// Package pubsub is Courier's adapter for Google Cloud Pub/Sub, built on
// cloud.google.com/go/pubsub/v2 and registered for URLs of the form
//
//	gcppubsub://PROJECT[?endpoint=HOST:PORT&prefix=…&create=false&…]
//
// (every parameter is listed at ConfigFromURL; Config is the typed form). Credentials come
// from the standard Google chain, never from the URL. For an emulator (the gcloud emulator,
// pstest) give its address as endpoint, or set PUBSUB_EMULATOR_HOST, which the client
// honours: the adapter then speaks plaintext gRPC without credentials.
//
// A Courier topic is a Pub/Sub topic and a Courier subscription a Pub/Sub subscription on
// it. Escape hatches: Conn.Driver().(*gcppubsub.Driver).Client() is the client, and
// Message.As(&m) with m a *pubsub.Message gives the received Pub/Sub message.
//
// # Names
//
// A topic ID is Config.Prefix followed by the Courier topic name. Pub/Sub subscription IDs
// are project-wide while Courier subscription names are per topic (as on every other
// broker), so a subscription ID names both: "<prefix><topic>~<subscription>" ("orders~billing"
// for subscription "billing" on topic "orders"). One subscription name on two topics is two
// subscriptions, and so are their "<subscription>.dlq" keepers on "<topic>.dlq"
// ("orders.dlq~billing.dlq"). An ID over 255 characters keeps its first 238 and ends in "~"
// and 16 hex digits of the SHA-256 of the whole ID: stable, and distinct. A subscription made
// before IDs included the topic ("<prefix><subscription>") is still used when it exists on the
// same topic. IDs must follow Pub/Sub's rules: 3 to 255 characters, starting with a letter,
// then letters, digits and - _ . ~ + %, not starting with "goog". A name that breaks them
// fails with driver.ErrInvalidTopic before any call is made. Messages and dead-letter headers
// carry the Courier names, without the prefix.
//
// # Creating topics and subscriptions
//
// By default the adapter creates what is missing: a topic on first publish or subscribe, a
// subscription on subscribe (with message ordering when the subscriber keeps per-key order,
// which is the default, and with a dead-letter policy for NativeDeadLetter). An existing
// subscription is used as it is, except that a requested dead-letter policy is set on it.
// Pub/Sub cannot turn message ordering on for an existing subscription; per-key order then
// holds within one subscriber only. With Config.DisableCreate (URL create=false), a missing
// topic is driver.ErrTopicNotFound on publish and a missing subscription
// driver.ErrSubscriptionNotFound on subscribe; the default dead-letter topic and its
// "<topic>.dlq~<subscription>.dlq" subscription must then exist too. A publisher allowed to publish but
// not to create topics still works: a PermissionDenied on creation is taken to mean "the
// topic probably exists", and Publish tells. A project Pub/Sub does not know is reported as
// driver.ErrInvalidConfig naming it; PermissionDenied and Unauthenticated are
// driver.ErrAccessDenied.
//
// # Publishing
//
// Each topic gets one client publisher per connection with message ordering on, batching
// tuned so a lone message goes out at once (Config.PublishDelay, default 1ms; up to
// Config.PublishBatch messages per request) and flow control set to block, not the client's
// default of ignoring its limits: beyond Config.PublishMaxOutstanding messages or
// PublishMaxOutstandingBytes not yet confirmed, Publish waits (bounded by its context).
// Publish returns once Pub/Sub has answered for every message; failures are reported per
// message in a *driver.PublishError.
//
// Message.ID travels in the attribute courier-id (Pub/Sub assigns its own message IDs),
// PublishTime in courier-published, Key as the ordering key and each header as an attribute.
// Pub/Sub's limits are the adapter's: messages up to MaxMessageBytes (10 MB less room for the
// envelope), header names up to 256 bytes, values up to 1024, at most 98 headers (100
// attributes less Courier's two), none starting with "goog", keys and IDs up to 1024 bytes.
// Received "goog…" attributes (the client's trace propagation) are not copied into Headers.
//
// Ordering keys recover from failures. When a message with key K fails, the client pauses
// K. Every later message of K in the same Publish call is then reported failed too ("not
// published, to keep key order"), so nothing of the call overtakes the failed message, and
// before Publish returns the adapter resumes K, so the next Publish on K goes out instead of
// failing forever. What this does to order: the caller learns exactly which messages failed
// and can publish them again, in order; messages on K that other goroutines publish after
// the resume may go out before that retry. Within one Publish call order is kept; across
// calls, after a failure, restoring it is the caller's choice (retry before publishing more).
//
// # Receiving
//
// A receiver runs the client's streaming pull (Config.ReceiveStreams streams) and hands each
// message to the consumer engine, keeping it leased until the engine acks or nacks it. The
// client's flow control (MaxOutstandingMessages) is the engine's Prefetch, so Pub/Sub never
// pushes more than the engine holds; for ordered subscriptions the client hands one key's
// messages over one at a time, in order. Config.AckDeadline (default 10s) is the lease: the
// client extends it while a message is held, and a message whose consumer died, or that was
// in flight on a stream when it closed, comes back after it.
//
// Closing a receiver nacks what it still holds (such messages are redelivered at once) and
// returns once the client has sent its last acks. A stream that cannot open because the
// subscription is gone or access is refused ends Run with driver.ErrSubscriptionNotFound
// or driver.ErrAccessDenied; streams the server closes, and transient errors, are
// reopened by the client without ending Run.
//
// # Retries
//
// Pub/Sub has no per-message redelivery delay: a nack redelivers at once, unless the
// subscription has a retry policy, in which case Pub/Sub waits its (exponential) backoff,
// at least the minimum. The engine's Nack(delay) is therefore done by keeping the message
// leased for the part of the delay the subscription's minimum backoff does not already
// cover, then nacking it: a message is never redelivered sooner than the engine asked, and
// a retry policy is respected, not doubled. A message waiting out its delay still counts
// toward flow control, as it does on Pub/Sub's side. Config.RetryMinBackoff and
// RetryMaxBackoff give the subscriptions the adapter creates a retry policy. Keyed messages
// on an ordered subscriber are retried in place by the engine, which keeps their order.
//
// # Delivery attempts
//
// Message.Attempt is Pub/Sub's DeliveryAttempt when the subscription has a dead-letter
// policy (NativeDeadLetter, or one set outside Courier): counted by Pub/Sub, it survives
// restarts. Without one, Pub/Sub does not count, and the adapter does: per connection, by
// Pub/Sub message ID, raised by every nack. A message redelivered to another process or
// after a restart starts again at 1. Capabilities.DeliveryCount is false for that reason.
//
// # Native dead-lettering
//
// With SubscriberConfig.NativeDeadLetter the subscription gets a dead-letter policy: Pub/Sub
// moves a message to the dead-letter topic after MaxDeliveryAttempts deliveries, which is
// the retry policy's MaxAttempts brought into Pub/Sub's range of 5 to 100. The adapter
// creates the dead-letter topic and a subscription "<subscription>.dlq" on it, since Pub/Sub
// drops messages sent to a topic nobody subscribes to. On Google, Pub/Sub's service account
// (service-PROJECT_NUMBER@gcp-sa-pubsub.iam.gserviceaccount.com) needs the publisher role on
// the dead-letter topic and the subscriber role on the subscription; the adapter does not
// grant them.
//
// # What was verified where
//
// The adapter's tests use the real v2 client over gRPC, never a hand-written fake:
//
//   - make test: the conformance suite (message counts scaled down: pstest delivers about
//     100 messages a second per stream) and the adapter's own tests against an in-process
//     pstest server, or against COURIER_PUBSUB_EMULATOR_HOST when set;
//   - make integration: the same, with the full conformance counts, against the pstest
//     server that integration/brokers/up.sh runs, plus a soak test that drops every
//     connection to an in-process pstest every second (TestSoakConnectionCuts). With
//     COURIER_REQUIRE_BROKERS=1 and no COURIER_PUBSUB_EMULATOR_HOST, integration/brokers
//     starts the gcloud emulator container when a Docker engine answers; that path compiles
//     but was not run (no Docker engine where this adapter was written);
//   - pstest's error injection (reactors) drives the ordered-publish recovery, permission,
//     unknown-project and flow-control tests.
//
// pstest stores retry policies but does not enforce them, and does not simulate
// exactly-once delivery: the tests verify that the adapter stores the policy and skips the
// hold it covers (TestRetryPolicy), and that held nacks respect the delay (pstest, like
// Pub/Sub without a policy, redelivers at once). Exactly-once subscriptions work, but
// Courier does not wait for acknowledgement results, so it adds no guarantee of its own.
// pstest's gRPC server accepts requests up to 4 MB, so messages were tried up to 3 MB
// (TestLargeMessage), not up to Pub/Sub's 10 MB. Nothing here was run against Google's
// service.
//
// Every conformance feature is supported; none is declared Unsupported.
package gcppubsub
