//go:build integration

package hostile

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/courierhq/courier/integration/brokers"
	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport"
)

// downFor is how long the dead-letter destination refuses every copy.
const downFor = 30 * time.Second

// flakyDestination is the subscriber's dead-letterer with its destination down until a
// moment: every attempt before it fails, as a broker refusing the dead-letter topic would.
type flakyDestination struct {
	inner transport.DeadLetterer
	until time.Time

	mu       sync.Mutex
	attempts []time.Time
	stored   time.Time
}

var errDown = errors.New("dead-letter destination down (test)")

func (d *flakyDestination) DeadLetter(ctx context.Context, m *message.Message, f transport.Failure) error {
	d.mu.Lock()
	d.attempts = append(d.attempts, time.Now())
	d.mu.Unlock()
	if time.Now().Before(d.until) {
		return errDown
	}
	if err := d.inner.DeadLetter(ctx, m, f); err != nil {
		return err
	}
	d.mu.Lock()
	d.stored = time.Now()
	d.mu.Unlock()
	return nil
}

// TestDeadLetterDestinationDown holds the dead-letter destination down for 30 s while a poison
// message waits to be dead-lettered: the attempts follow the capped backoff (one per step, one
// log line and one OnDeadLetterError call each), other keys keep flowing meanwhile, the
// poison's own key waits behind it, and the copy is stored once the destination is back.
func TestDeadLetterDestinationDown(t *testing.T) {
	urls := map[string]string{"memory": "memory://destdown"}
	for name, get := range map[string]func() string{
		"rabbitmq": func() string { return brokers.Endpoint(t, brokers.RabbitMQ) },
		"kafka":    func() string { return "kafka://" + brokers.Endpoint(t, brokers.Kafka) + "/" },
		"sqs": func() string {
			return "sqs://?region=us-east-1&wait_time=1s&endpoint=" + url.QueryEscape(brokers.Endpoint(t, brokers.SQS))
		},
		"gcppubsub": func() string { return "gcppubsub://courier-destdown?endpoint=" + brokers.Endpoint(t, brokers.PubSub) },
	} {
		urls[name] = get()
	}
	for name, u := range urls {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			topic := fmt.Sprintf("destdown-%06d", rand.IntN(1_000_000))
			if name == "sqs" {
				topic += ".fifo" // key order needs a FIFO queue
			}
			destinationDown(t, u, topic)
		})
	}
}

func destinationDown(t *testing.T, u, topic string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	logs := &syncBuffer{}
	conn, err := transport.OpenConfig(ctx, u, transport.ConnConfig{Logger: newLogger(logs)})
	must(t, err)
	defer conn.Close(context.Background())
	dest := &flakyDestination{inner: transport.TopicDeadLetterer{Conn: conn}}
	var hookCalls int
	var mu sync.Mutex
	handled := map[string][]int{} // key → payload numbers in handling order
	subName := fmt.Sprintf("dd%06d", rand.IntN(1_000_000))
	// A DeadLetterer of one's own: the dead-letter topic's retention is one's own to arrange.
	must(t, conn.EnsureSubscription(ctx, conn.DefaultDeadLetterTopic(topic), subName+".dlq"))
	sub, err := conn.Subscribe(ctx, topic, subName, transport.SubscriberConfig{
		DeadLetter: dest,
		OnDeadLetterError: func(transport.DeadLetterRetry) {
			mu.Lock()
			hookCalls++
			mu.Unlock()
		},
	})
	must(t, err)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- sub.Run(rctx, func(_ context.Context, m *message.Message) error {
			if string(m.Payload) == "poison" {
				return message.Permanent(errors.New("poison"))
			}
			var n int
			fmt.Sscanf(string(m.Payload), "%d", &n)
			mu.Lock()
			handled[m.Key] = append(handled[m.Key], n)
			mu.Unlock()
			return nil
		})
	}()
	defer func() { stop(); <-done }()

	dest.until = time.Now().Add(downFor) // set before the poison can reach the dead-letterer
	must(t, conn.Publish(ctx, topic, &message.Message{Key: "poison-key", Payload: []byte("poison")}))
	for i := 0; i < 3; i++ { // the poison's own key: waits behind it
		must(t, conn.Publish(ctx, topic, &message.Message{Key: "poison-key", Payload: []byte(fmt.Sprint(i))}))
	}
	// Other keys, published all through the outage, must be handled during it.
	const others = 60
	tick := downFor / (others + 10)
	for i := 0; i < others; i++ {
		must(t, conn.Publish(ctx, topic, &message.Message{Key: fmt.Sprintf("k%d", i%7), Payload: []byte(fmt.Sprint(i))}))
		time.Sleep(tick)
	}
	mu.Lock()
	flowed := 0
	for k, ns := range handled {
		if k != "poison-key" {
			flowed += len(ns)
		}
	}
	waited := len(handled["poison-key"])
	mu.Unlock()
	if time.Now().After(dest.until) {
		t.Fatalf("publishing took longer than the outage; the test proves nothing")
	}
	if flowed < others-5 {
		t.Errorf("only %d of %d messages of other keys handled while the destination was down", flowed, others)
	}
	if waited != 0 {
		t.Errorf("%d messages of the poison's key overtook it", waited)
	}
	// Back up: the copy is stored at the next step (at most the cap, 1 min, away).
	for {
		dest.mu.Lock()
		stored := !dest.stored.IsZero()
		dest.mu.Unlock()
		mu.Lock()
		n := len(handled["poison-key"])
		mu.Unlock()
		if stored && n == 3 {
			break
		}
		select {
		case <-ctx.Done():
			dest.mu.Lock()
			tries := len(dest.attempts)
			dest.mu.Unlock()
			t.Fatalf("the dead-letter copy was never stored after the destination came back (stored %v after %d attempts, key's messages handled %d); log:\n%s", stored, tries, n, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	dest.mu.Lock()
	attempts := append([]time.Time(nil), dest.attempts...)
	dest.mu.Unlock()
	checkBackoff(t, attempts, transport.DefaultDeadLetterBackoff)
	mu.Lock()
	defer mu.Unlock()
	failed := len(attempts) - 1
	if hookCalls != failed {
		t.Errorf("OnDeadLetterError called %d times for %d failed attempts", hookCalls, failed)
	}
	if lines := countLines(logs.String(), "dead-letter"); lines < failed || lines > failed+2 {
		t.Errorf("%d log lines about dead-lettering for %d failed attempts: want one per attempt", lines, failed)
	}
	if got := handled["poison-key"]; fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("the poison's key handled %v after it; want [0 1 2]", got)
	}
	t.Logf("destination down %v: %d attempts (%d failed), other keys handled during the outage %d/%d, copy stored %v after the outage",
		downFor, len(attempts), failed, flowed, others, attempts[len(attempts)-1].Sub(dest.until).Round(100*time.Millisecond))
}

// checkBackoff: consecutive failed attempts are spaced by the policy's delays (jitter allowed),
// so the outage costs one attempt per step.
func checkBackoff(t *testing.T, at []time.Time, p transport.RetryPolicy) {
	t.Helper()
	delay := p.InitialDelay
	for i := 1; i < len(at); i++ {
		gap := at[i].Sub(at[i-1])
		if gap < time.Duration(float64(delay)*0.75) {
			t.Errorf("attempt %d came %v after the previous; the backoff step is %v", i+1, gap, delay)
		}
		delay = min(time.Duration(float64(delay)*p.Multiplier), p.MaxDelay)
	}
	// The most attempts the outage allows: steps at their shortest (jitter) that fit in it,
	// plus the first attempt and the one that succeeds.
	most, elapsed, d := 2, time.Duration(0), p.InitialDelay
	for {
		elapsed += time.Duration(float64(d) * (1 - p.Jitter))
		if elapsed > downFor {
			break
		}
		most++
		d = min(time.Duration(float64(d)*p.Multiplier), p.MaxDelay)
	}
	if len(at) > most {
		t.Errorf("%d attempts in a %v outage; the backoff allows %d", len(at), downFor, most)
	}
}
