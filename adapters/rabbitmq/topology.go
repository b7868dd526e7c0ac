package rabbitmq

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"github.com/courierhq/courier/transport/driver"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/courierhq/courier/transport"
)

// Topology (declared on first use, re-declared after every reconnect; all durable):
//
//	topic                  exchange <topic> of Config.ExchangeType (topic by default)
//	subscription           queue Config.QueueName(topic, subscription) bound to it with
//	                       "#" (topic exchange) or "" (fanout, direct)
//	native dead-lettering  the queue gets x-dead-letter-exchange = the dead-letter topic's
//	                       exchange, and queue QueueName(dead-letter topic, subscription +
//	                       ".dlq") is bound to that exchange, so nothing is dropped
//	delayed retry          classic queues <queue>.delay.<ms> with x-message-ttl = <ms>,
//	                       dead-lettering to the default exchange with the subscription's
//	                       queue as routing key, and x-expires = <ms> + 30 min so unused
//	                       ones disappear
type topology struct {
	exchange     string
	exchangeType string
	queue        string
	args         amqp.Table
	bindingKey   string
	dlExchange   string // native dead-lettering only
	dlQueue      string
	delayPrefix  string
	quorum       bool
}

// delayExpiryMargin is added to a delay queue's TTL to form its x-expires. A delay queue is
// re-declared (which resets its expiry) whenever its last declaration is older than
// delayRedeclare, so a queue still holding a message can never expire: the message is
// dead-lettered at the latest TTL after its publish, the queue expires at the earliest
// TTL + margin − delayRedeclare after it.
const (
	delayExpiryMargin = 30 * time.Minute
	delayRedeclare    = 5 * time.Minute
	maxDelayMillis    = 1<<31 - 1
)

// Queue arguments amqp091-go has no constant for.
const (
	argDeadLetterExchange   = "x-dead-letter-exchange"
	argDeadLetterRoutingKey = "x-dead-letter-routing-key"
	argExpires              = "x-expires"
)

// checkName applies RabbitMQ's naming rules beyond driver.ValidateName.
func checkName(what, name string) error {
	switch {
	case len(name) > maxShortString:
		return fmt.Errorf("%w: rabbitmq: %s name %.40q… is %d bytes; RabbitMQ allows %d", driver.ErrInvalidTopic, what, name, len(name), maxShortString)
	case strings.HasPrefix(name, "amq."):
		return fmt.Errorf("%w: rabbitmq: %s name %q: the \"amq.\" prefix is reserved by RabbitMQ", driver.ErrInvalidTopic, what, name)
	case name == "":
		return fmt.Errorf("%w: rabbitmq: empty %s name", driver.ErrInvalidTopic, what)
	}
	return nil
}

func (d *Driver) bindingKey() string {
	if d.cfg.ExchangeType == "topic" {
		return "#"
	}
	return ""
}

// topologyFor works out the names and arguments for a subscription.
func (d *Driver) topologyFor(spec driver.SubscriptionSpec) (*topology, error) {
	t := &topology{
		exchange:     spec.Topic,
		exchangeType: d.cfg.ExchangeType,
		queue:        d.cfg.QueueName(spec.Topic, spec.Subscription),
		args:         amqp.Table{},
		bindingKey:   d.bindingKey(),
		quorum:       d.cfg.QueueType == Quorum,
	}
	if err := checkName("exchange", t.exchange); err != nil {
		return nil, err
	}
	if err := checkName("queue", t.queue); err != nil {
		return nil, err
	}
	if t.quorum {
		t.args[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
	}
	// Not tied to spec.Ordered: a queue's arguments are fixed when it is declared, and the
	// same queue is declared by subscribers with and without ordering (and by the engine
	// when it makes sure a dead-letter subscription exists).
	if d.cfg.SingleActiveConsumer {
		t.args[amqp.SingleActiveConsumerArg] = true
	}
	if nd := spec.NativeDeadLetter; nd != nil {
		t.dlExchange = nd.Topic
		t.dlQueue = d.cfg.QueueName(nd.Topic, spec.Subscription+transport.DeadLetterSuffix)
		if err := checkName("dead-letter exchange", t.dlExchange); err != nil {
			return nil, err
		}
		if err := checkName("dead-letter queue", t.dlQueue); err != nil {
			return nil, err
		}
		t.args[argDeadLetterExchange] = t.dlExchange
	}
	t.delayPrefix = delayPrefix(t.queue)
	return t, nil
}

// delayPrefix names the delay queues of a queue: <queue>.delay.<ms>, or a hash of the queue
// name when that would be too long.
func delayPrefix(queue string) string {
	p := queue + ".delay."
	if len(p)+10 <= maxShortString {
		return p
	}
	sum := sha256.Sum256([]byte(queue))
	return "courier.delay." + hex.EncodeToString(sum[:12]) + "."
}

// delayBucket rounds a delay up to a value with at most four significant bits, in
// milliseconds (at most 12.5% longer), so that a subscription uses a few delay queues and
// each of them holds messages of one TTL: RabbitMQ expires messages only at the head of a
// queue, so mixing TTLs in one queue would hold short delays behind long ones.
func delayBucket(d time.Duration) int64 {
	ms := int64((d + time.Millisecond - 1) / time.Millisecond)
	if ms < 1 {
		ms = 1
	}
	if ms > maxDelayMillis {
		return maxDelayMillis
	}
	if shift := bits.Len64(uint64(ms)) - 4; shift > 0 {
		mant := (ms + 1<<shift - 1) >> shift
		ms = mant << shift
	}
	return min(ms, maxDelayMillis)
}

// delayQueue returns the name and arguments of the delay queue for a delay.
func (t *topology) delayQueue(delay time.Duration) (string, amqp.Table) {
	ms := delayBucket(delay)
	return t.delayPrefix + strconv.FormatInt(ms, 10), amqp.Table{
		amqp.QueueMessageTTLArg: ms,
		argDeadLetterExchange:   "",
		argDeadLetterRoutingKey: t.queue,
		argExpires:              ms + delayExpiryMargin.Milliseconds(),
	}
}

// declare declares the whole topology of a subscription on ch. A refusal closes ch.
func (t *topology) declare(ch *amqp.Channel) error {
	if err := declareExchange(ch, t.exchange, t.exchangeType); err != nil {
		return err
	}
	if t.dlExchange != "" {
		if err := declareExchange(ch, t.dlExchange, t.exchangeType); err != nil {
			return err
		}
		dlArgs := amqp.Table{}
		if t.quorum {
			dlArgs[amqp.QueueTypeArg] = amqp.QueueTypeQuorum
		}
		if err := declareQueue(ch, t.dlQueue, dlArgs); err != nil {
			return err
		}
		if err := ch.QueueBind(t.dlQueue, t.bindingKey, t.dlExchange, false, nil); err != nil {
			return mapError(fmt.Sprintf("bind queue %q to exchange %q", t.dlQueue, t.dlExchange), err)
		}
	}
	if err := declareQueue(ch, t.queue, t.args); err != nil {
		return err
	}
	if err := ch.QueueBind(t.queue, t.bindingKey, t.exchange, false, nil); err != nil {
		return mapError(fmt.Sprintf("bind queue %q to exchange %q", t.queue, t.exchange), err)
	}
	return nil
}

func declareExchange(ch *amqp.Channel, name, kind string) error {
	err := ch.ExchangeDeclare(name, kind, true, false, false, false, nil)
	if err == nil {
		return nil
	}
	if codeOf(err) == codePreconditionFailed {
		return wrapError(driver.ErrInvalidConfig, err, "%v: exchange %q already exists with another type or other arguments than a durable %q exchange (%s); exchanges cannot change after declaration: delete it or set Config.ExchangeType to match",
			driver.ErrInvalidConfig, name, kind, reasonOf(err))
	}
	return mapError(fmt.Sprintf("declare exchange %q", name), err)
}

func declareQueue(ch *amqp.Channel, name string, args amqp.Table) error {
	_, err := ch.QueueDeclare(name, true, false, false, false, args)
	if err == nil {
		return nil
	}
	if codeOf(err) == codePreconditionFailed {
		return wrapError(driver.ErrInvalidConfig, err, "%v: queue %q already exists with other arguments (%s); queue arguments cannot change after declaration: delete the queue (messages in it are lost) or use another subscription name",
			driver.ErrInvalidConfig, name, reasonOf(err))
	}
	return mapError(fmt.Sprintf("declare queue %q", name), err)
}

func reasonOf(err error) string {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Reason
	}
	return err.Error()
}
