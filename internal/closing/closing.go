// Package closing holds the closed state of a component that closes once (a receiver, a
// consumer): a flag, and a channel closed with it that wakes whoever waits.
package closing

import "sync"

// Latch is a closed flag and a channel closed with it. Make it with New (a zero Latch works
// but its Done channel is nil: nothing waiting on it wakes). Close, Closed and the owner's
// state that changes with them are guarded by the owner's mutex; Done may be read anywhere.
type Latch struct {
	closed bool
	done   chan struct{}
}

// New returns an open latch.
func New() Latch { return Latch{done: make(chan struct{})} }

// Close marks the latch closed and closes Done. It reports whether this call closed it: false
// when it already was (a component's Close then returns driver.ErrClosed, as the driver
// contract asks of a second call).
func (l *Latch) Close() bool {
	if l.closed {
		return false
	}
	l.closed = true
	if l.done != nil {
		close(l.done)
	}
	return true
}

// CloseUnder is Close under the owner's mutex mu: it locks mu, closes the latch and, if this
// call closed it, runs also (the owner's state that changes with it; nil: nothing) before it
// unlocks mu. It reports whether this call closed the latch.
func (l *Latch) CloseUnder(mu sync.Locker, also func()) bool {
	mu.Lock()
	defer mu.Unlock()
	if !l.Close() {
		return false
	}
	if also != nil {
		also()
	}
	return true
}

// Closed reports whether Close was called.
func (l *Latch) Closed() bool { return l.closed }

// Done is closed by Close.
func (l *Latch) Done() <-chan struct{} { return l.done }
