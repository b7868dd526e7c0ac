package memstore

import (
	"hash/maphash"
	"time"
)

// idemTable holds idempotency records in one map — one look-up per operation — with claims
// and handled keys on two separate lists, each bounded by max: a burst of claims never pushes
// out a handled key, nor handled keys a claim. Each list is in write order, so with one lease
// and one retention the expired records come first and the oldest goes when a list is full.
//
// The map is keyed by a 64-bit hash of the key (seeded per table), not by the key itself:
// growing, probing and deleting then never touch the key strings, which matters for a table
// of a million keys. Records whose keys share a hash chain through idemRec.same.
type idemTable struct {
	max          int
	seed         maphash.Seed
	recs         map[uint64]*idemRec
	claims, done idemList
}

type idemRec struct {
	key        string
	hash       uint64
	owner      string // "" once done
	done       bool
	exp        time.Time
	prev, next *idemRec
	same       *idemRec // the next record whose key has the same hash
}

type idemList struct {
	head, tail *idemRec
	n          int
}

func newIdemTable(max int) *idemTable {
	return &idemTable{max: max, seed: maphash.MakeSeed(), recs: make(map[uint64]*idemRec)}
}

// hash returns key's hash for get, claim and markDone.
func (t *idemTable) hash(key string) uint64 { return maphash.String(t.seed, key) }

func (t *idemTable) list(r *idemRec) *idemList {
	if r.done {
		return &t.done
	}
	return &t.claims
}

// get returns the live record of key (whose hash is h), or nil; an expired record is removed.
func (t *idemTable) get(key string, h uint64, now time.Time) *idemRec {
	r := t.recs[h]
	for r != nil && r.key != key {
		r = r.same
	}
	if r != nil && !now.Before(r.exp) {
		t.remove(r)
		return nil
	}
	return r
}

// claim records owner's claim on key (hash h) until exp (r: key's current record, or nil).
func (t *idemTable) claim(r *idemRec, key string, h uint64, owner string, exp time.Time) {
	if r == nil {
		r = t.insert(key, h)
	} else {
		t.list(r).unlink(r)
	}
	r.owner, r.done, r.exp = owner, false, exp
	t.push(&t.claims, r)
}

// markDone records key (hash h) as handled until exp (r: key's current record, or nil).
func (t *idemTable) markDone(r *idemRec, key string, h uint64, exp time.Time) {
	if r == nil {
		r = t.insert(key, h)
	} else {
		t.list(r).unlink(r)
	}
	r.owner, r.done, r.exp = "", true, exp
	t.push(&t.done, r)
}

func (t *idemTable) push(l *idemList, r *idemRec) {
	for l.n >= t.max && l.head != nil {
		t.remove(l.head) // the oldest: expired ones first
	}
	l.pushBack(r)
}

// insert adds a record for key, which has none, to the map (not yet to a list).
func (t *idemTable) insert(key string, h uint64) *idemRec {
	r := &idemRec{key: key, hash: h, same: t.recs[h]}
	t.recs[h] = r
	return r
}

func (t *idemTable) remove(r *idemRec) {
	t.list(r).unlink(r)
	switch first := t.recs[r.hash]; {
	case first == r && r.same == nil:
		delete(t.recs, r.hash)
	case first == r:
		t.recs[r.hash] = r.same
	default:
		for p := first; p != nil; p = p.same {
			if p.same == r {
				p.same = r.same
				break
			}
		}
	}
	r.same = nil
}

func (l *idemList) pushBack(r *idemRec) {
	r.prev, r.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = r
	} else {
		l.head = r
	}
	l.tail = r
	l.n++
}

func (l *idemList) unlink(r *idemRec) {
	if r.prev != nil {
		r.prev.next = r.next
	} else {
		l.head = r.next
	}
	if r.next != nil {
		r.next.prev = r.prev
	} else {
		l.tail = r.prev
	}
	r.prev, r.next = nil, nil
	l.n--
}
