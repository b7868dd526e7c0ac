package ordering

import (
	"sync"
	"time"

	"github.com/courierhq/courier/internal/lease"
)

// waitlist knows which sequenced messages wait in this process (deferred with Hold), so that
// handling a message here wakes its successor at once instead of after a polling delay, and
// so that a message whose predecessor also waits here does not poll the store at all: it is
// woken when the predecessor is handled. Messages whose predecessor is handled by another
// process still poll.
//
// Entries are dropped when their message proceeds (or turns out a duplicate), when they are
// woken, and — for messages that left the process without either (released on shutdown,
// handed back to the broker) — once they are older than maxAge, when the list grows.
type waitlist struct {
	mu     sync.Mutex
	keys   map[string]map[int64]*waiter
	n      int
	maxAge time.Duration
	sweep  int // size that triggers the next sweep
	// recent remembers, by hash of the key, the last number handled here with no successor
	// waiting yet: a message told "wait" just before that registers just after it, and
	// must not miss it.
	recent [lease.RecentSlots]struct {
		skey       string
		epoch, seq int64
	}
}

type waiter struct {
	ch    chan struct{}
	since time.Time
}

func (w *waitlist) init(maxAge time.Duration) {
	w.keys = map[string]map[int64]*waiter{}
	w.maxAge = maxAge
	w.sweep = 1024
}

// add registers a message waiting for number need of its key (its predecessor, or itself when
// another consumer holds it) and returns its wake channel — closed already if need was just
// handled here — and whether its predecessor waits here too (recently enough to be here).
func (w *waitlist) add(skey string, epoch, seq, need int64) (wake <-chan struct{}, chained bool) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if r := &w.recent[lease.Slot(skey)]; r.skey == skey && r.epoch == epoch && r.seq >= need {
		r.skey = "" // once: a later wait is waited for again
		return lease.Closed, false
	}
	ws := w.keys[skey]
	if ws == nil {
		if w.n >= w.sweep {
			w.sweepLocked(now)
		}
		ws = map[int64]*waiter{}
		w.keys[skey] = ws
	}
	wt := ws[seq]
	if wt == nil {
		wt = &waiter{ch: make(chan struct{})}
		ws[seq] = wt
		w.n++
	}
	wt.since = now
	if p := ws[seq-1]; p != nil && now.Sub(p.since) < w.maxAge {
		chained = true
	}
	return wt.ch, chained
}

// remove drops a message's entry: it proceeds, or needs no waiting.
func (w *waitlist) remove(skey string, seq int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(skey, seq, false)
}

// advanced wakes, after seq was handled here, its duplicates and its successor; when none
// waits yet, it remembers seq for one that is about to.
func (w *waitlist) advanced(skey string, epoch, seq int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	woke := w.dropLocked(skey, seq, true)
	if w.dropLocked(skey, seq+1, true) || woke {
		return
	}
	r := &w.recent[lease.Slot(skey)]
	r.skey, r.epoch, r.seq = skey, epoch, seq
}

// released wakes, after an attempt at seq failed here, its duplicates (one may now claim it).
func (w *waitlist) released(skey string, seq int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.dropLocked(skey, seq, true)
}

// dropLocked removes seq's entry, closing its channel if wake; it reports whether there was one.
func (w *waitlist) dropLocked(skey string, seq int64, wake bool) bool {
	ws := w.keys[skey]
	wt := ws[seq]
	if wt == nil {
		return false
	}
	if wake {
		close(wt.ch)
	}
	delete(ws, seq)
	w.n--
	if len(ws) == 0 {
		delete(w.keys, skey)
	}
	return true
}

// sweepLocked wakes and drops entries older than maxAge (their messages are gone or will
// poll anyway), and sets the size that triggers the next sweep.
func (w *waitlist) sweepLocked(now time.Time) {
	for skey, ws := range w.keys {
		for seq, wt := range ws {
			if now.Sub(wt.since) >= w.maxAge {
				close(wt.ch)
				delete(ws, seq)
				w.n--
			}
		}
		if len(ws) == 0 {
			delete(w.keys, skey)
		}
	}
	w.sweep = max(1024, 2*w.n)
}
