// Package kafka is Courier's Apache Kafka adapter, built on github.com/segmentio/kafka-go and
// registered as "kafka://". Import it (for its side effect, if nothing else) and open
//
//	kafka://[user:password@]host1:9092[,host2:9092][?param=value&…]
//
// with transport.Open, or build a Config and call Open. ConfigFromURL lists the parameters;
// an unknown one is an error. (*transport.Conn).Driver returns a *Driver, whose Client and
// Writer are the escape hatch to kafka-go; a received message's As accepts a *kafka.Message.
//
// # Model
//
// A Courier topic is a Kafka topic; a subscription is a consumer group whose ID names the
// topic and the subscription, "<topic>~<subscription>" (GroupID), since groups are
// cluster-wide and Courier's subscription names are per topic: one subscription name on two
// topics is two groups that neither share offsets nor rebalance together. A group named as
// the subscription alone (as Courier named them before) that has offsets committed on the
// topic is still used, so existing subscriptions keep their position. Several subscribers on one
// subscription share the topic's partitions, so a topic needs at least as many partitions
// as subscribers that should work at once.
//
// Topics are created on first use — by Publish and by Subscribe, including the engine's
// dead-letter topic <topic>.dlq — with Config.Partitions and Config.ReplicationFactor (by
// default the broker's num.partitions and default.replication.factor; Kafka 2.4 or later).
// With Config.DisableTopicCreation (URL create=false) a missing topic fails with
// driver.ErrTopicNotFound. Names follow Kafka's rules: letters, digits, '.', '_', '-'.
//
// # Publishing
//
// One kafka-go Writer serves every topic. Publish returns nil only once each partition leader
// acknowledged its records with acks=all (every in-sync replica; Config.Acks can lower it to
// the leader only). Concurrent publishes are merged into one batch per call by Courier's
// publisher; a partition's batch then waits only Config.BatchTimeout (50µs) for company, so a
// lone publish is not held for kafka-go's default second. A message's Key is the record key, and keyed records are placed
// by murmur2 of the key — the partitioner of the Java client — so every Kafka client agrees
// on which partition holds a key; records without a key are spread round-robin. kafka-go has
// no idempotent producer: its retries after a lost acknowledgement can duplicate records.
// Errors are reported per partition batch in a *driver.PublishError. Size: a message's
// message.Size must not exceed Config.MaxMessageBytes (default 1,000,000, under the broker's
// default message.max.bytes of 1 MiB, which counts record overhead too); larger ones fail
// with driver.ErrMessageTooLarge before anything is sent. A broker with a lower limit
// answers the same error, for the whole partition batch holding the record it refuses.
//
// Message ↔ record (marshaler.go): Key ↔ key, Payload ↔ value, ID ↔ header courier-id,
// Headers ↔ record headers, PublishTime ↔ record timestamp (milliseconds). A record written
// by another client, without courier-id, gets the ID "<topic>/<partition>/<offset>".
//
// # Consuming and the commit rule
//
// Each subscriber is a member of the consumer group through kafka-go's ConsumerGroup rather
// than its group Reader: the Reader has no hook at revocation, while a ConsumerGroup
// generation waits for its goroutines before the member rejoins, which is where the
// revocation below happens. For every partition assigned to it, a goroutine fetches from
// the partition leader over a kafka-go Conn (what kafka-go's Reader does internally, without
// its per-record goroutine hand-off) from the group's committed offset. A new group (a
// subscription that does not exist yet) starts where SubscriberConfig.Start says: by default
// (StartLatest, the same on every broker) Subscribe commits the topic's current end offsets
// for the group before it returns, so the subscription receives what is published after
// Subscribe and nothing older; StartEarliest reads the retained log from its oldest record.
// Config.StartOffset (URL start_offset) now only says where a group resumes when its
// committed offset is past the end of the partition (the topic was recreated). Offsets are committed explicitly
// and synchronously on acknowledgement; never automatically, never before the handler
// returned. A subscriber refused by ACLs (group or topic authorization) stops: Run returns
// an error wrapping driver.ErrAccessDenied. Everything else is retried.
//
// The engine handles records in parallel across keys, so they finish out of order. A Kafka
// commit is a single offset per partition meaning "everything below is done", so the
// subscriber commits, per partition, only the offset after the contiguous run of finished
// (acked or dead-lettered) records, as delivered. A record that is still being handled,
// retried, or was never started holds its partition's commit back; a crash or a restart at
// any moment therefore redelivers every unfinished record and skips none. Records after the
// first unfinished one that had finished are delivered again (at-least-once; the
// idempotency middleware makes handling effectively-once).
//
// Received records are handed to the engine in chunks of 64 that share one allocation: a
// message kept after its handler returned keeps its chunk in memory, so clone what you keep.
//
// Failures: Kafka cannot redeliver one record, so Capabilities.Redelivery is false and the
// engine retries a failed record in place, with backoff, keeping its partition's commit
// behind it; when retries run out, or the error is permanent, the engine publishes it to the
// dead-letter topic (<topic>.dlq by default, SubscriberConfig.DeadLetterTopic to change it)
// and acks it only once Kafka stored the copy. There is no broker-side dead-lettering
// (conformance feature native-dead-letter is unsupported).
//
// Delivery attempts: Kafka does not count deliveries (Capabilities.DeliveryCount is false).
// Message.Attempt is 1 on every delivery from the broker and grows with the engine's retries
// in place; a restart starts again from 1. The count survives where the record is copied:
// the dead-letter record carries it in courier-attempt and courier-dlq-attempts.
//
// # Rebalances
//
// kafka-go rebalances eagerly: when a member joins or leaves, every member gives up all its
// partitions and the group waits until all have rejoined. A subscriber notices within
// Config.HeartbeatInterval (1s). It then stops fetching, drops records it fetched but had not
// handed out yet, waits up to Config.RevokeTimeout (3s) for handlers in flight, commits
// what finished (the broker still accepts the old generation's commits then), and only then
// rejoins. Acks that arrive later are not committed: the partitions may have moved, and the
// broker refuses commits from an ended generation anyway. The new owner starts at the last
// commit, so records in flight at the revocation that outlived RevokeTimeout are delivered
// twice — that is the duplicate window. Closing a subscriber commits what finished and
// leaves the group, so its partitions move at once instead of after Config.SessionTimeout.
//
// # Connections, errors, security
//
// Open checks that the cluster answers (a metadata request, within Config.RequestTimeout):
// unreachable brokers fail with driver.ErrUnavailable, refused credentials with
// driver.ErrAccessDenied. After Open, kafka-go reconnects by itself: publishes during a
// broker outage fail (ErrUnavailable) after kafka-go's retries, subscribers keep retrying and
// resume from their last commit. Kafka error codes map to Courier's kinds: unknown topic →
// ErrTopicNotFound, record too large → ErrMessageTooLarge, authorization → ErrAccessDenied,
// leader or coordinator moving, too few in-sync replicas, network → ErrUnavailable, other
// refusals → ErrNacked; errors.Is also matches the kafka-go error.
//
// TLS (tls=true, CA file, client certificate) and SASL PLAIN, SCRAM-SHA-256 and
// SCRAM-SHA-512 (credentials in the URL's user part with sasl=…) apply to every connection.
// SCRAM is implemented in this package on the standard library (RFC 5802, 7677) rather than
// with an extra module. Passwords never appear in errors or logs; kafka-go's own log lines go
// to the configured slog.Logger at debug level.
//
// # Tests
//
// The package's tests run the conformance suite, with four partitions per topic, against a
// real broker when COURIER_KAFKA_BROKERS is set or COURIER_REQUIRE_BROKERS=1, and otherwise
// against franz-go's kfake cluster in process.
package kafka
