// Package rabbitmq is Courier's RabbitMQ adapter, built on github.com/rabbitmq/amqp091-go.
// Importing it registers the URL schemes "amqp" and "amqps":
//
//	conn, err := transport.Open(ctx, "amqp://user:password@host:5672/vhost?queue_type=quorum")
//
// or, with a typed configuration, rabbitmq.Open(ctx, rabbitmq.Config{URL: …}). See
// ConfigFromURL for the URL parameters and Config for the defaults. The vhost is the URL's
// path ("%2F" for "/"); amqps uses TLS (Config.TLS, or the cacertfile, certfile, keyfile and
// server_name_indication parameters).
//
// It passes the whole conformance suite; no feature is declared unsupported.
//
// # Topology
//
// A topic is a durable exchange of Config.ExchangeType ("topic" by default). A subscription
// is a durable queue bound to it with "#" (every message). Both are declared when first
// used and declared again after every reconnect, so a broker that lost them (or a queue
// deleted by hand) is repaired. Queue names are global to a vhost while Courier's
// subscription names belong to a topic, so a subscription's queue is named
// "<topic>.<subscription>" (Config.QueueName changes that). Several subscribers on one
// subscription, in one process or many, consume the same queue and share its messages.
//
// Queue arguments cannot change once a queue exists: subscribing with another QueueType,
// SingleActiveConsumer or NativeDeadLetter than the queue was declared with fails with
// ErrInvalidConfig naming the queue and the argument (RabbitMQ's PRECONDITION_FAILED).
// Delete the queue or use another subscription name.
//
// # Publishing
//
// Publish returns nil only when the broker confirmed every message: publisher confirms are
// always on. A batch is published on one of Config.PublishChannels confirm-mode channels,
// with up to Config.MaxInFlight confirms outstanding: the batch is pipelined, never one
// round trip per message. Channels are shared: a call waits for its confirms without holding
// its channel, so the confirms of concurrent calls are pipelined too, and concurrent calls
// are not merged into batches (transport.PublisherConfig.CoalesceMessages defaults to 1
// here). A message no queue is bound for (a topic nobody subscribed to) is dropped by
// the broker and Publish succeeds, as on Pub/Sub and memory:// — Courier's portable
// behaviour; subscribe before publishing. With Config.ReportUnroutable every message is
// published with the mandatory flag, so such a message comes back (basic.return) and fails
// with ErrUnroutable instead. A message the broker nacks fails with ErrNacked.
// The *driver.PublishError names each failed message; the others were published. When
// ctx ends before a message's confirm arrives, the message is reported as failed (wrapping
// ErrUnavailable and ctx's error) although the broker may still have taken it: publishing it
// again can duplicate it, never lose it.
//
// Messages are persistent (delivery mode 2). The ID travels as the message-id property,
// the Key as the courier-key header and as the routing key, the publish time as the
// timestamp property, which AMQP defines in whole seconds: received messages have
// PublishTime truncated to the second unless Config.PrecisePublishTime adds the
// courier-published header (nanoseconds; about 30 bytes per message, which costs
// measurably in pipelined publishing). See marshaler.go for the full mapping.
//
// Limits: Config.MaxMessageBytes (default 16 MiB; RabbitMQ 3.10's own default
// max_message_size is 128 MiB) is checked before sending, with an error that names it; if
// the broker's limit is lower, its refusal is reported as ErrMessageTooLarge too. Header
// names are at most 255 bytes, values at most Config.MaxHeaderValueBytes, and all headers
// of a message must fit one AMQP frame (128 KiB by default): larger ones fail with
// ErrInvalidMessage instead of breaking the connection.
//
// # Consuming
//
// Each receiver has its own channel on the consuming connection with basic.qos set to the
// subscriber's Prefetch (which the engine derives from its Concurrency) and one
// basic.consume with manual acknowledgements. Acknowledgements the engine batches are sent
// as a single basic.ack with multiple=true when they cover a contiguous run of delivery
// tags, one by one otherwise. If the broker cancels the consumer (the queue was deleted,
// say), the receiver declares the queue again and consumes anew.
//
// Message.As gives the native record: pass a *amqp091.Delivery (a copy) or
// **amqp091.Delivery. transport.Conn.Driver returns the *Driver.
//
// # Delivery attempts and redelivery
//
// Quorum queues (Config.QueueType = Quorum) count deliveries: Message.Attempt comes from
// x-delivery-count and is exact across requeues and restarts. Classic queues only flag a
// redelivery, so a requeued message counts one more attempt however often it was requeued.
//
// Nack with a delay (the engine's retry of a failed message without a key) must neither
// block the queue nor lose the count, so it does not hold the message: it publishes a copy
// (same body, properties and headers, with courier-attempt = the next attempt) with a
// confirm to a delay queue "<queue>.delay.<ms>", a classic queue whose x-message-ttl is the
// delay and whose dead-letter target is the subscription's queue (through the default
// exchange). Only once the copy is confirmed is the original acknowledged: a crash in
// between duplicates the message, it does not lose it. Delays are rounded up to four
// significant bits of milliseconds (at most 12.5% longer) because RabbitMQ expires messages
// only at the head of a queue: one TTL per queue keeps short delays from waiting behind
// long ones. Delay queues delete themselves (x-expires) half an hour after their last use.
// When the copy cannot be published the message is requeued at once instead. On return,
// the copy's attempt is read from courier-attempt only when its latest x-death entry says it
// expired in this subscription's delay queue, so dead-letter copies carrying that header
// do not inherit an attempt count. Caveat: the hop from the delay queue back to the
// subscription's queue is RabbitMQ's dead-lettering, which is not publisher-confirmed
// inside the broker; a broker crash at that instant can lose the retried message.
//
// Nack without a delay (the engine releasing messages it will not handle, on shutdown) is
// basic.nack with requeue: the message keeps its place in the queue.
//
// # Ordering
//
// The engine handles one key's messages one at a time, in delivery order, within a
// subscriber; RabbitMQ delivers a queue in order. Across several subscribers of one
// subscription (competing consumers) a key's messages may be handled by different
// processes at the same time. Config.SingleActiveConsumer declares subscription queues
// with x-single-active-consumer: only one subscriber receives, the others take over if it
// goes away, and per-key order then holds across processes (Capabilities.NativeOrdering is
// true). It is off by default because it turns competing consumers into
// hot standbys; the alternative, a consistent-hash exchange with one queue per shard, was
// not chosen: it needs a plugin, fixes the number of shards in the topology, binds each
// shard to one consumer by hand and stops a shard when its consumer stops, which is more
// machinery than most users want for the same guarantee.
//
// # Dead-lettering
//
// By default the engine dead-letters (publishes a copy with courier-dlq-* headers to
// "<topic>.dlq", then acks). With SubscriberConfig.NativeDeadLetter the subscription's
// queue is declared with x-dead-letter-exchange = the dead-letter topic's exchange, the
// queue "<topic>.dlq.<subscription>.dlq" is declared and bound to it so that nothing is
// dropped, and the engine rejects failed messages (basic.reject, no requeue) to let the
// broker move them unchanged (RabbitMQ adds its x-death header, available through As).
//
// # Connections and recovery
//
// A Driver keeps two connections, as RabbitMQ recommends: one for publishing (dialled by
// Open, so a wrong address, password or vhost fails there with ErrUnavailable or
// ErrAccessDenied) and one for consuming (dialled by the first Subscribe). When one is lost
// it is re-dialled in the background with jittered exponential backoff
// (Config.ReconnectDelay up to Config.MaxReconnectDelay) for as long as the Driver is
// open; amqp091-go's own recovery is not used. Then:
//
//   - publishing: messages whose confirm had not arrived when their channel died are
//     published again on a new channel once the connection is back, within the caller's
//     ctx (duplicates are possible; a confirmed message is never lost, an unconfirmed one
//     is reported as failed). Exchanges are declared again.
//   - consuming: each receiver opens a new channel, declares its topology again and
//     consumes again. Delivery tags belong to a channel, so acks and nacks for messages
//     received before the loss are dropped; the broker redelivers those messages.
//   - blocked connections (connection.blocked: a memory or disk alarm): publishing waits
//     until the broker unblocks the connection, bounded by ctx (then ErrUnavailable
//     naming the alarm). Consuming runs on its own connection and is not blocked. The
//     synchronous AMQP calls Courier makes (opening channels, declaring) are bounded by the
//     caller's ctx too, since a blocked connection answers nothing.
//
// Driver.Stats counts lost connections, reconnects, messages published again and consumers
// restarted.
//
// # Errors
//
// Broker refusals map onto Courier's kinds: ACCESS_REFUSED (403) and NOT_ALLOWED (530, an
// unknown or forbidden vhost) → ErrAccessDenied; NOT_FOUND (404) → ErrTopicNotFound;
// PRECONDITION_FAILED (406) → ErrInvalidConfig, or ErrMessageTooLarge for an oversize
// message; lost connections and refused dials → ErrUnavailable. The *amqp091.Error stays
// in the chain for errors.As. URLs in errors are redacted; payloads and credentials are
// never logged.
package rabbitmq
