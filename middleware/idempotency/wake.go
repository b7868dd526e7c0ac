package idempotency

import (
	"sync"

	"github.com/courierhq/courier/internal/keyhash"
)

// wakeList lets a copy of a message that found its key claimed in this process look again as
// soon as the claim ends, instead of after its delay. Entries are removed when woken; a key
// claimed by another process is never woken here, so its entry stays until a later claim of
// the same key in this process ends, or until the list is swept when it grows.
type wakeList struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
	// recent remembers keys whose claim just ended with no copy waiting yet, by hash: a copy
	// told "busy" just before the end registers just after it, and must not miss it.
	recent [256]string
}

// closed is a channel that is closed: a wake-up that already happened.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func slot(key string) int { return keyhash.Index(key, 256) }

// add returns the channel closed when key's claim in this process ends (already closed if it
// ended just now).
func (w *wakeList) add(key string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := slot(key); w.recent[i] == key {
		w.recent[i] = "" // once: a later claim's end is waited for again
		return closed
	}
	if w.chans == nil {
		w.chans = map[string]chan struct{}{}
	}
	ch := w.chans[key]
	if ch == nil {
		if len(w.chans) >= 4096 {
			// Waking everyone costs each waiting copy one early look; it bounds the map.
			for k, c := range w.chans {
				close(c)
				delete(w.chans, k)
			}
		}
		ch = make(chan struct{})
		w.chans[key] = ch
	}
	return ch
}

// wake closes key's channel, if any copy waits on it, or remembers that key's claim ended.
func (w *wakeList) wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch := w.chans[key]; ch != nil {
		close(ch)
		delete(w.chans, key)
		return
	}
	w.recent[slot(key)] = key
}
