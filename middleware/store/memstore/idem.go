package memstore

import "time"

// idemTable holds idempotency records in one map — one look-up per operation — with claims
// and handled keys on two separate lists, each bounded by max: a burst of claims never pushes
// out a handled key, nor handled keys a claim. Each list is in write order, so with one lease
// and one retention the expired records come first and the oldest goes when a list is full.
type idemTable struct {
	max          int
	recs         map[string]*idemRec
	claims, done idemList
}

type idemRec struct {
	key        string
	owner      string // "" once done
	done       bool
	exp        time.Time
	prev, next *idemRec
}

type idemList struct {
	head, tail *idemRec
	n          int
}

func newIdemTable(max int) *idemTable {
	return &idemTable{max: max, recs: make(map[string]*idemRec)}
}

func (t *idemTable) list(r *idemRec) *idemList {
	if r.done {
		return &t.done
	}
	return &t.claims
}

// get returns key's live record, or nil; an expired record is removed.
func (t *idemTable) get(key string, now time.Time) *idemRec {
	r := t.recs[key]
	if r != nil && !now.Before(r.exp) {
		t.remove(r)
		return nil
	}
	return r
}

// claim records owner's claim on key until exp (r: key's current record, or nil).
func (t *idemTable) claim(r *idemRec, key, owner string, exp time.Time) {
	if r == nil {
		r = &idemRec{key: key}
		t.recs[key] = r
	} else {
		t.list(r).unlink(r)
	}
	r.owner, r.done, r.exp = owner, false, exp
	t.push(&t.claims, r)
}

// markDone records key as handled until exp (r: key's current record, or nil).
func (t *idemTable) markDone(r *idemRec, key string, exp time.Time) {
	if r == nil {
		r = &idemRec{key: key}
		t.recs[key] = r
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

func (t *idemTable) remove(r *idemRec) {
	t.list(r).unlink(r)
	delete(t.recs, r.key)
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
