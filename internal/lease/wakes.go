package lease

import (
	"sync"

	"github.com/courierhq/courier/internal/keyhash"
)

// Closed is a channel that is closed: a wake-up that already happened.
var Closed <-chan struct{} = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// RecentSlots is how many keys a registry remembers as just woken (by hash; see Wakes).
const RecentSlots = 256

// Slot returns key's place among RecentSlots.
func Slot(key string) int { return keyhash.Index(key, RecentSlots) }

// maxWaiting bounds a Wakes registry: past it, every waiter is woken and forgotten.
const maxWaiting = 4096

// Wakes lets a message waiting on a claim held in this process look again as soon as the
// claim ends, instead of after its delay. Entries are removed when woken; a key claimed by
// another process is never woken here, so its entry stays until a later claim of the same key
// in this process ends, or until the registry is cleared when it grows past 4,096 keys
// (waking everyone costs each waiting message one early look). The zero value is ready.
type Wakes struct {
	mu    sync.Mutex
	chans map[string]chan struct{}
	// recent remembers keys whose claim just ended with no one waiting yet, by hash: a
	// message told "busy" just before the end registers just after it and must not miss it.
	recent [RecentSlots]string
}

// Wait returns the channel closed when key's claim in this process ends (Closed if it ended
// just now).
func (w *Wakes) Wait(key string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i := Slot(key); w.recent[i] == key {
		w.recent[i] = "" // once: a later claim's end is waited for again
		return Closed
	}
	if w.chans == nil {
		w.chans = map[string]chan struct{}{}
	}
	ch := w.chans[key]
	if ch == nil {
		if len(w.chans) >= maxWaiting {
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

// Wake closes key's channel, if a message waits on it, or remembers that key's claim ended.
func (w *Wakes) Wake(key string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if ch := w.chans[key]; ch != nil {
		close(ch)
		delete(w.chans, key)
		return
	}
	w.recent[Slot(key)] = key
}
