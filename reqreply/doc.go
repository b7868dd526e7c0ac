// Package reqreply is request-reply over any Courier connection: a Requester publishes a
// request and waits for its reply; a responder turns func(ctx, req) (reply, error) into a
// message.Handler that publishes the reply.
//
//	r, err := reqreply.NewRequester(ctx, conn, reqreply.RequesterConfig{})
//	defer r.Close(ctx)
//	reply, err := r.Request(ctx, "prices", message.New([]byte("sku-42")))
//
//	sub, err := conn.Subscribe(ctx, "prices", "pricer", transport.SubscriberConfig{})
//	err = sub.Run(ctx, reqreply.Responder(conn, func(ctx context.Context, req *message.Message) (*message.Message, error) {
//		return message.New(price(req.Payload)), nil
//	}))
//
// # How it works
//
// Each Requester owns one reply topic, DefaultReplyPrefix + a random ID ("courier-reply-…"),
// with one subscription, made by NewRequester and deleted by Close (the topic too, where the
// adapter implements driver.TopicDeleter). A request carries two reserved headers:
// message.HeaderCorrelationID (new random ID per request, unless WithCorrelationID) and
// message.HeaderReplyTo (the reply topic). The responder publishes its reply to that topic with
// the same correlation ID; the requester's one subscriber hands it to the caller waiting for
// that ID. An error reply carries message.HeaderReplyError (the kind) and the error text as
// payload; the caller receives a *RemoteError, matching ErrRemote (and message.ErrPermanent
// for KindPermanent).
//
// # Decisions
//
//   - One reply topic per requester, on every broker. It works with what every adapter has
//     (a topic and a subscription), so replies get the same durability, size limits,
//     middleware and tests as everything else, and a responder needs nothing but a Publisher.
//     RabbitMQ's direct reply-to (amq.rabbitmq.reply-to) would save the reply queue, but it
//     needs the consumer on the very channel that publishes the request, which the adapter's
//     pool of confirm-mode publish channels does not offer; it is left for later. On Kafka a
//     reply topic is one more topic per requester instance (deleted on Close); on SQS a queue;
//     on Pub/Sub a topic and a subscription.
//   - Names use '-' only (SQS queue names allow no '.').
//   - On brokers that create topics on publish (Kafka, SQS and Pub/Sub by default), a reply to
//     a requester that has closed creates its reply topic again. A responder whose connection
//     has topic creation off (create=false) gets ErrTopicNotFound instead, and logs and drops
//     the reply.
//   - Late replies are dropped. A reply that finds no caller waiting (the request timed out,
//     or another reply with its correlation ID came first) is acknowledged, logged at debug
//     and counted in Stats.Late; it is never delivered to another caller, since callers are
//     matched by correlation ID only. Replies without a valid correlation ID are counted in
//     Stats.Invalid.
//   - Untrusted input: correlation IDs are at most MaxCorrelationIDBytes, error kinds
//     MaxKindBytes, error text MaxErrorTextBytes. A request without a valid correlation ID,
//     without a reply address, or with one outside the responder's ReplyPrefix is
//     dead-lettered with the reason (a permanent ErrBadRequest): a hostile producer cannot
//     make the responder publish elsewhere.
//   - A responder stopping mid-request returns its error instead of an error reply, so the
//     engine hands the request back to the broker and the next responder answers it.
//
// # Retrying, and what is guaranteed
//
// A request that Request published (the broker confirmed it) is retained until a responder
// handles it. Its reply can still be lost: the responder may stop after handling the request
// and before publishing the reply, and a requester that timed out drops a reply that comes
// later. A caller that must have an answer retries on timeout with the same correlation ID:
//
//	id := reqreply.NewCorrelationID()
//	for {
//		ctx, cancel := context.WithTimeout(parent, 5*time.Second)
//		reply, err := r.Request(ctx, "prices", req, reqreply.WithCorrelationID(id))
//		cancel()
//		if !errors.Is(err, context.DeadlineExceeded) {
//			return reply, err
//		}
//	}
//
// The first reply for the ID answers the call; later ones are dropped as late. The responder
// may therefore see the same request more than once: make its side effects idempotent by
// CorrelationID(req) (an upsert keyed by it, or a stored earlier reply). Do not put the
// idempotency middleware keyed on the correlation ID in front of it: that acknowledges a
// duplicate without calling the responder, so the retry would never be answered.
package reqreply
