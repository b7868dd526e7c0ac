// Package sqs is Courier's Amazon SQS adapter (aws-sdk-go-v2), registered as "sqs://".
//
//	import _ "github.com/courierhq/courier/adapters/sqs"
//	conn, err := transport.Open(ctx, "sqs://?region=eu-west-1")
//
// or, typed: sqs.Open(ctx, sqs.Config{Region: "eu-west-1"}). The URL takes no host or path;
// its parameters are listed at ConfigFromURL (endpoint= for emulators and VPC endpoints,
// create=false, visibility_timeout=, …). Credentials come from the standard AWS chain
// (environment, shared files, SSO, instance or task role) or Config.Credentials — never from
// the URL, and never into errors or logs.
//
// # Topics, subscriptions
//
// A topic is an SQS queue: standard, or FIFO when its name ends in ".fifo". Names follow SQS's
// rules (1–80 letters, digits, '-', '_'); others fail with driver.ErrInvalidTopic. Publish
// and Subscribe create a missing queue (with Config's VisibilityTimeout, MaxMessageBytes,
// MessageRetention and QueueAttributes) unless Config.DisableCreate is set, in which case they
// fail with driver.ErrTopicNotFound.
//
// A queue has no subscriptions: the subscription name only labels delivered messages
// (Message.Subscription), and every consumer of a queue, whatever its subscription name,
// competes for its messages. There is no fan-out (it would need SNS, which this adapter does
// not use): Capabilities.FanOut is false and the conformance suite's fan-out test is declared
// unsupported for that reason. Publishing to a queue nobody consumes keeps the messages for the
// queue's retention period.
//
// # Publishing
//
// Publish sends SendMessageBatch requests of at most 10 entries and 1 MiB and returns nil only
// when SQS accepted every entry; refused entries are reported by their batch index in a
// *driver.PublishError, the others were stored. The size limit is the queue's
// MaximumMessageSize attribute, or Config.MaxMessageBytes (default 1 MiB) where the queue
// reports none; sizes are counted as SQS counts them (body plus attribute names, types and
// values, after any base64), and a message over the limit fails alone with
// driver.ErrMessageTooLarge naming the limit while the rest of its batch is sent.
//
// Order: a batch is spread over up to Config.PublishConcurrency lanes that send at once; a
// lane sends its requests one after another and stops at a request that fails as a whole. On a
// FIFO queue each key (and the shared group of unkeyed messages) stays in one lane, so that a
// group's messages are stored in order and without gaps; on a standard queue all keyed
// messages go through one lane, so that they at least arrive in order. Messages with no order to
// keep (unkeyed on a standard queue, or with Config.FIFOGroupPerMessage) fill requests of their
// own that whichever lane is free takes next.
//
// On FIFO queues Message.Key is the MessageGroupId, and the MessageDeduplicationId is made of
// Message.ID and Message.PublishTime (hashed when SQS would refuse them as they are; see
// marshaler.go): retrying a Publish of the same messages is deduplicated by SQS for 5
// minutes, while a message republished under its ID with a new publish time (a dead-letter
// redrive) gets through. Config.FIFODeduplicateByID deduplicates by ID alone. Unkeyed messages go to
// one default group, Config.FIFODefaultGroup ("courier-default"), so they keep their order
// among themselves — at the price of one group's throughput (SQS hands out a group's messages
// only while none of them is in flight). Config.FIFOGroupPerMessage gives each unkeyed message
// a group of its own instead.
//
// Headers become String message attributes. SQS allows 10; the adapter uses one
// ("courier-meta") for the message ID, key and publish time (standard queues have no fields for
// them) and packs into it whatever does not fit or is not allowed as an attribute: the headers
// beyond the free slots, names SQS refuses (spaces, non-ASCII, "AWS." prefixes, …), empty
// values, values with characters SQS refuses. When headers must be packed, the application's
// take the native slots first and Courier's own ("courier-…") are packed first, so that plain
// SQS consumers see the application's attributes. A Courier consumer sees the headers it was
// sent either way. A payload that is not SQS text (binary, control characters) travels in
// base64 and an empty one as "-"; such a message carries the String attribute
// "courier-body-encoding" ("base64" or "empty") so a plain consumer can tell (and a plain
// producer may set courier-body-encoding=base64 to send binary to Courier). Capabilities
// therefore declare no header size limit: headers count toward the message size.
//
// Credentials: the AWS SDK signs every request, even to an emulator (ElasticMQ, LocalStack).
// With endpoint= given and no credentials found by the standard chain (nor Config.Credentials
// or Config.AWSConfig), the adapter signs with dummy static credentials (DummyAccessKeyID),
// which emulators accept: no AWS setup is needed for one. Without endpoint=, missing
// credentials fail with ErrAccessDenied.
//
// # Consuming
//
// A subscriber keeps long polls (20 s, Config.WaitTime) of up to 10 messages in flight, as many
// as its Prefetch needs up to Config.MaxPollers (8) — except on a standard queue with ordering
// on (the default), where it keeps one, because two polls answering at once would reorder the
// messages of a key on top of what the queue does. Config.Pollers fixes the number.
//
// While the engine holds a message — received and not acked, nacked or released, including
// messages waiting for a handler — a heartbeat renews its visibility timeout once half of the
// lease has passed, so a handler may run for longer than the visibility timeout without SQS
// handing its message to another consumer. The lease is Config.VisibilityTimeout, else the
// queue's VisibilityTimeout attribute, requested on every receive.
//
// Acks are DeleteMessageBatch requests of up to 10, up to 4 in flight; a partial batch waits
// only while another deletion is in flight. A failed deletion is logged and SQS delivers the
// message again after its lease. A nack sets the message's visibility timeout to the retry
// delay, rounded up to whole seconds (so the shortest retry delay on SQS is 1 s) and capped at
// 12 h; releases (delay 0, on shutdown) are batched. Message.Attempt is SQS's
// ApproximateReceiveCount, so it survives restarts; every receive counts, releases included.
//
// Close does not cancel long polls in flight: SQS keeps serving a poll whose client went away,
// and the messages it hands to it would stay invisible for a whole lease (seen on ElasticMQ).
// The polls end on their own within WaitTime, and whatever they bring is released at once.
// Closing the connection cancels the polls still running; messages SQS hands to them meanwhile
// reappear after their lease (at-least-once holds; only latency suffers). Messages whose
// handlers outlived the drain timeout also reappear after their lease.
//
// Order on receive: a FIFO queue delivers a group's messages in order and not while earlier
// ones are in flight, so per-key order holds across any number of pollers and consumers. A
// standard queue promises no order: AWS orders on a best-effort basis, and ElasticMQ orders by
// arrival time in milliseconds, handing out messages stored in the same millisecond (several
// of one SendMessageBatch, say) in any order. Per-key order on a standard queue is therefore
// only as good as that: use a FIFO queue, or the ordering middleware, where order matters.
// Capabilities.NativeOrdering is false for that reason. (The conformance suite's key-order
// test passes on ElasticMQ standard queues because each of its requests carries ten different
// keys, and the adapter sends keyed requests one after another; it is not a guarantee.)
//
// # Dead letters
//
// By default Courier's engine dead-letters by publishing to the dead-letter queue itself. SQS
// queue names allow no ".", so the default dead-letter queue of "orders" is "orders-dlq", and
// that of "orders.fifo" is "orders-dlq.fifo" (a FIFO queue's dead-letter queue must be FIFO);
// see Driver.DeadLetterTopic. With SubscriberConfig.NativeDeadLetter, Subscribe sets the
// queue's RedrivePolicy (deadLetterTargetArn, maxReceiveCount = RetryPolicy.MaxAttempts) and SQS
// moves a message once it was received more often than that; a permanent error is then
// redelivered until the count runs out. Subscribe sets the policy but never removes one: a
// RedrivePolicy configured outside Courier stays in force.
//
// # Errors
//
// SQS errors map onto Courier's kinds: QueueDoesNotExist → ErrTopicNotFound (a subscription
// whose queue is deleted ends Run with it); access, signature, token and KMS errors and a
// credential chain that finds nothing → ErrAccessDenied; throttling, 5xx, network errors and
// an exhausted retry quota → ErrUnavailable, after the SDK's retries with backoff
// (Config.MaxAttempts); no answer within Config.OperationTimeout (30 s) → ErrUnavailable;
// refused contents → ErrInvalidMessage, too large → ErrMessageTooLarge. A subscriber retries
// failed polls with backoff (100 ms doubling to 5 s) and only gives up on ErrTopicNotFound and
// ErrAccessDenied.
//
// # The HTTP client
//
// The adapter gives the SDK an HTTP client of its own (keep-alive connections for all its
// pollers, publishers and ackers, closed by Close) and hands net/http a private copy of every
// request body: the SDK closes the body it built as soon as the response headers arrive, which
// can make net/http close the connection under the response being read (aws-sdk-go-v2#2737);
// the SDK then retries, and for a ReceiveMessage the lost answer hides its messages for a whole
// visibility timeout. Seen here as 30-second stalls in about one test run in four, gone with
// the copy.
//
// # Escape hatches
//
// Conn.Driver() is a *Driver; Driver.Client() is the *sqs.Client. A received message's
// Message.As accepts a *types.Message (the SQS record, receipt handle included).
//
// # What was verified where
//
// Everything above runs against ElasticMQ 1.7.1 with strict SQS limits (integration/brokers):
// the conformance suite on standard and FIFO queues, FIFO group order under concurrency,
// RedrivePolicy (standard and FIFO), visibility changes and heartbeats, ApproximateReceiveCount,
// the 10-attribute and 1 MiB message and batch limits. ElasticMQ
// differs from AWS in ways the tests work around: it neither reports nor enforces a queue's
// MaximumMessageSize (the tests put the attribute into its answers through a proxy), it does
// not check attribute names (the adapter applies AWS's rules itself, unit-tested), it does not
// wake a long poll on a dead-letter queue when redrive moves a message there (delivery from a
// dead-letter queue waits for the next poll, up to WaitTime), and it never answers a long poll
// that was waiting on a queue when the queue was deleted (OperationTimeout ends it). It also
// crashes a FIFO queue's actor, losing its messages, when a ReceiveRequestAttemptId is retried
// after its messages changed, so the adapter sends none: a receive whose answer is lost delays
// its FIFO group by one lease (on AWS as well). Throttling
// and error answers are injected by a proxy in the AWS JSON error shape. Nothing was run
// against AWS itself.
package sqs
