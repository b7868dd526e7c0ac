package memstore

import "time"

// table is a map whose entries expire, bounded in size. Entries are kept in a list in the
// order they were last written; when the table is full the entry written longest ago goes.
// With one TTL per table, which is how the middleware uses it (one lease, one retention),
// that is also the entry closest to expiring, and every expired entry sits before the live
// ones. All operations are O(1); expiry is checked on read.
type table[V any] struct {
	max        int
	items      map[string]*item[V]
	head, tail *item[V] // head: written longest ago
}

type item[V any] struct {
	key        string
	val        V
	exp        time.Time
	prev, next *item[V]
}

func newTable[V any](max int) *table[V] {
	return &table[V]{max: max, items: make(map[string]*item[V])}
}

// get returns the live entry for key, or nil; an expired entry is removed.
func (t *table[V]) get(key string, now time.Time) *item[V] {
	it := t.items[key]
	if it == nil {
		return nil
	}
	if !now.Before(it.exp) {
		t.remove(it)
		return nil
	}
	return it
}

// set stores val under key until exp, evicting to stay within max. It follows a get of key,
// whose answer it is (nil: key has no entry), so that key is not looked up twice.
func (t *table[V]) set(it *item[V], key string, val V, exp time.Time) {
	if it != nil {
		it.val, it.exp = val, exp
		if it != t.tail {
			t.unlink(it)
			t.pushBack(it)
		}
		return
	}
	for len(t.items) >= t.max && t.head != nil {
		t.remove(t.head) // expired ones first: they were written longest ago
	}
	it = &item[V]{key: key, val: val, exp: exp}
	t.items[key] = it
	t.pushBack(it)
}

// remove takes it out of the table.
func (t *table[V]) remove(it *item[V]) {
	t.unlink(it)
	delete(t.items, it.key)
}

func (t *table[V]) len() int { return len(t.items) }

func (t *table[V]) pushBack(it *item[V]) {
	it.prev, it.next = t.tail, nil
	if t.tail != nil {
		t.tail.next = it
	} else {
		t.head = it
	}
	t.tail = it
}

func (t *table[V]) unlink(it *item[V]) {
	if it.prev != nil {
		it.prev.next = it.next
	} else {
		t.head = it.next
	}
	if it.next != nil {
		it.next.prev = it.prev
	} else {
		t.tail = it.prev
	}
	it.prev, it.next = nil, nil
}
