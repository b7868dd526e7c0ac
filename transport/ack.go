package transport

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/courierhq/courier/message"
	"github.com/courierhq/courier/transport/driver"
)

// Acknowledgements and give-backs: acker batches acks; nack and release give a message back.

func (e *engine) nack(m *message.Message, delay time.Duration) {
	if err := e.recv.Nack(e.opctx, m, delay); err != nil {
		e.log.Error("courier: nack failed; the broker will redeliver when its lease ends", "message_id", m.ID, "error", err)
	}
	e.finished(1)
}

// release gives back a message that was received but is not being handled now.
func (e *engine) release(m *message.Message) {
	if e.cfg.Policy.redelivery {
		e.nack(m, 0)
		return
	}
	e.finished(1) // not acked: the broker delivers it again after a restart
}

func (e *engine) releaseQueued() {
	for {
		select {
		case m := <-e.shared:
			e.release(m)
			continue
		default:
		}
		found := false
		for _, l := range e.lanes {
			select {
			case m := <-l:
				e.release(m)
				found = true
			default:
			}
		}
		if !found {
			return
		}
	}
}

// acker batches acknowledgements: workers append, one goroutine sends whatever accumulated
// while the previous batch was in flight. No timers: an idle subscriber acks at once, a busy
// one in large batches.
//
// A handled message gives its prefetch slot back as soon as it is queued here, so that
// handling goes on while a batch of acks is on its way to the broker (a Kafka commit, an SQS
// delete: a round trip). What waits here is bounded too: a worker that finds limit messages
// waiting or on their way blocks until the broker has answered for a batch. Messages received
// and not yet acknowledged are therefore at most 2 × Prefetch.
type acker struct {
	recv  driver.Receiver
	log   *slog.Logger
	ctx   context.Context
	limit int

	mu      sync.Mutex
	taken   *sync.Cond // broadcast when the broker answered for a batch (room for limit more)
	pending []*message.Message
	sending int // messages of the batch on its way to the broker
	spare   []*message.Message
	stopped bool
	wake    chan struct{}
	done    chan struct{}
	exited  chan struct{}
}

func (a *acker) init(recv driver.Receiver, log *slog.Logger, ctx context.Context, limit int) {
	a.recv, a.log, a.ctx, a.limit = recv, log, ctx, limit
	a.wake, a.done, a.exited = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	a.taken = sync.NewCond(&a.mu)
}

func (a *acker) add(m *message.Message) {
	a.mu.Lock()
	for len(a.pending)+a.sending >= a.limit && !a.stopped {
		a.taken.Wait()
	}
	a.pending = append(a.pending, m)
	first := len(a.pending) == 1
	a.mu.Unlock()
	if first {
		select {
		case a.wake <- struct{}{}:
		default:
		}
	}
}

func (a *acker) loop() {
	defer close(a.exited)
	for {
		select {
		case <-a.wake:
			a.flush()
		case <-a.done:
			a.flush()
			return
		}
	}
}

func (a *acker) flush() {
	a.mu.Lock()
	batch := a.pending
	a.pending = a.spare[:0]
	a.sending = len(batch)
	a.mu.Unlock()
	if len(batch) == 0 {
		a.spare = batch
		return
	}
	if err := a.recv.Ack(a.ctx, batch); err != nil {
		a.log.Error("courier: ack failed; the broker will redeliver these messages", "count", len(batch), "error", err)
	}
	clear(batch)
	a.spare = batch
	a.mu.Lock()
	a.sending = 0
	a.taken.Broadcast()
	a.mu.Unlock()
}

// close flushes what is pending and stops the loop. Workers still adding afterwards (ones that
// outlived the drain timeout) no longer wait; their acks are not sent.
func (a *acker) close() {
	close(a.done)
	<-a.exited
	a.mu.Lock()
	a.stopped = true
	a.taken.Broadcast()
	a.mu.Unlock()
}
