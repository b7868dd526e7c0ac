package ordering

import (
	"errors"
	"slices"
	"time"
)

// ErrLeaseLost is returned by Store.Commit when the caller's claim on a sequence number is
// gone: its lease ran out and another consumer claimed the key meanwhile. The store did not
// advance the key.
var ErrLeaseLost = errors.New("ordering: claim lost (lease expired)")

// Outcome is what Store.Begin decided for a sequenced message.
type Outcome int

// Outcomes of Store.Begin.
const (
	// Proceed: the message is the key's next one (or the key gave up waiting for a gap, see
	// BeginResult.Skipped); the caller now holds a claim on it and must Commit or Abort.
	Proceed Outcome = iota + 1
	// Duplicate: the key is already at or past this sequence number.
	Duplicate
	// Gap: an earlier message of the key has not been handled yet.
	Gap
	// Busy: the message is the key's next one, but another consumer holds a live claim on
	// the key (a duplicate delivery of the same message, or the one a timed-out gap skipped to).
	Busy
	// Stale: the message belongs to an earlier epoch of the key's publisher counter (the
	// counter expired and started again); the key has moved on.
	Stale
	// Late: the key gave up waiting for this message (GapTimeout) and moved on; it arrived
	// after all. The caller holds a claim on the key for it, as with Proceed; committing it
	// does not move the key.
	Late
	// NewEpoch: the message's epoch is newer than the key's, and the request did not set
	// AcceptEpoch; the store changed nothing. The caller checks the stamp against the
	// counter (Store.Issued, CheckIssued) and asks again with AcceptEpoch set, or rejects the
	// message: a stamp alone never resets a key.
	NewEpoch
)

// MaxSkipped bounds how many given-up numbers a key remembers (State.Skipped): a message
// arriving after its key skipped more than this many numbers past it is taken for a
// duplicate.
const MaxSkipped = 64

// String returns the outcome's name.
func (o Outcome) String() string {
	switch o {
	case Proceed:
		return "proceed"
	case Duplicate:
		return "duplicate"
	case Gap:
		return "gap"
	case Busy:
		return "busy"
	case Stale:
		return "stale"
	case Late:
		return "late"
	case NewEpoch:
		return "new epoch"
	}
	return "unknown"
}

// BeginRequest asks a Store to let one sequenced message through.
type BeginRequest struct {
	// Epoch and Seq are the message's sequence stamp (see HeaderSequence).
	Epoch, Seq int64
	// Owner identifies this attempt at handling; unique per call.
	Owner string
	// Lease bounds the claim: a crashed handler's claim expires after it.
	Lease time.Duration
	// GapTimeout is how long a gap may stay unfilled (no live claim on the key, and the
	// missing message not seen) before the key skips ahead to this message; 0 or less: never.
	GapTimeout time.Duration
	// Retention is how long the key's state lives after this write.
	Retention time.Duration
	// AcceptEpoch lets an Epoch newer than the key's replace the key's state (start over in
	// the new epoch). Without it such a request changes nothing and answers NewEpoch. Set it
	// only after the stamp was checked against the publisher counter (CheckIssued).
	AcceptEpoch bool
}

// BeginResult is a Store's answer to Begin.
type BeginResult struct {
	// Outcome decides what happens to the message.
	Outcome Outcome
	// Last is the key's last sequence number handled (in its current epoch).
	Last int64
	// Skipped, with Proceed, is how many sequence numbers before this one the key gave up on
	// because the gap timed out; 0 normally.
	Skipped int64
	// Wait, with Busy, is how long the other consumer's claim still runs.
	Wait time.Duration
	// InFlight, with Gap, says that another consumer holds a live claim on the key: the
	// message the key waits for is being handled now.
	InFlight bool
	// GapAge, with Gap, is how long the gap has been open.
	GapAge time.Duration
}

// State is one ordering key's consumer-side state as a Store keeps it. Store implementations
// that can run Go next to their data (package memstore; package pgstore, inside a transaction
// holding the row lock) apply Begin, Commit and Abort to it; others (package redisstore, in
// Lua) mirror the same rules, and package storetest checks that every store agrees.
//
// The zero State is a key never seen: epoch 0, nothing handled.
type State struct {
	// Epoch of the publisher counter the key's sequence numbers come from.
	Epoch int64
	// Last sequence number handled (or given up on) in Epoch; 0 for none.
	Last int64
	// ClaimSeq, ClaimOwner and ClaimUntil describe the claim on the message being handled;
	// ClaimOwner is "" when there is none.
	ClaimSeq   int64
	ClaimOwner string
	ClaimUntil time.Time
	// GapSince is when the key was first seen waiting for a missing message, or when the
	// missing message was last released after a failure; zero when no gap is open.
	GapSince time.Time
	// Skipped are numbers at or below Last that the key gave up waiting for (at most
	// MaxSkipped, the highest), in increasing order: one that arrives late is handled (Late)
	// instead of being taken for a duplicate.
	Skipped []int64
}

// Begin applies a BeginRequest to s at time now and reports the outcome, and whether s
// changed (and must be written back with the request's Retention).
func (s *State) Begin(now time.Time, r BeginRequest) (res BeginResult, changed bool) {
	if r.Epoch > s.Epoch {
		if !r.AcceptEpoch { // not vouched for yet: touch nothing
			return BeginResult{Outcome: NewEpoch, Last: s.Last}, false
		}
		// A new counter epoch (or a key never seen), vouched for by the counter: start over.
		*s = State{Epoch: r.Epoch}
		changed = true
	}
	res.Last = s.Last
	if r.Epoch < s.Epoch {
		res.Outcome = Stale
		return res, changed
	}
	live := s.ClaimOwner != "" && now.Before(s.ClaimUntil)
	if r.Seq <= s.Last {
		if !slices.Contains(s.Skipped, r.Seq) {
			res.Outcome = Duplicate
			return res, changed
		}
		if live && s.ClaimOwner != r.Owner {
			res.Outcome, res.Wait = Busy, s.ClaimUntil.Sub(now)
			return res, changed
		}
		s.ClaimSeq, s.ClaimOwner, s.ClaimUntil = r.Seq, r.Owner, now.Add(r.Lease)
		res.Outcome = Late
		return res, true
	}
	if live && s.ClaimOwner != r.Owner {
		if r.Seq == s.Last+1 {
			res.Outcome, res.Wait = Busy, s.ClaimUntil.Sub(now)
			return res, changed
		}
		if s.GapSince.IsZero() {
			s.GapSince, changed = now, true
		}
		res.Outcome, res.InFlight, res.GapAge = Gap, true, now.Sub(s.GapSince)
		return res, changed
	}
	if r.Seq > s.Last+1 {
		if s.GapSince.IsZero() {
			s.GapSince, changed = now, true
		}
		age := now.Sub(s.GapSince)
		if r.GapTimeout <= 0 || age < r.GapTimeout {
			res.Outcome, res.GapAge = Gap, age
			return res, changed
		}
		res.Skipped = r.Seq - s.Last - 1
	}
	s.ClaimSeq, s.ClaimOwner, s.ClaimUntil = r.Seq, r.Owner, now.Add(r.Lease)
	if res.Skipped == 0 {
		// The missing message is here: no gap. (After a skip, GapSince stays as it was, so a
		// retry of the message skipped to does not wait for the gap all over again.)
		s.GapSince = time.Time{}
	}
	res.Outcome = Proceed
	return res, true
}

// Commit records that the message with sequence number seq, claimed by owner, was handled: the
// key advances to seq. It returns ErrLeaseLost, leaving s as it was, when the claim is no
// longer owner's and seq is not simply the key's next number with no one else claiming it.
func (s *State) Commit(now time.Time, seq int64, owner string) error {
	mine := s.ClaimOwner == owner && s.ClaimSeq == seq
	free := s.ClaimOwner == "" || !now.Before(s.ClaimUntil)
	if !mine && !(free && seq == s.Last+1) {
		return ErrLeaseLost
	}
	s.ClaimSeq, s.ClaimOwner, s.ClaimUntil = 0, "", time.Time{}
	if seq <= s.Last { // a late message: the key stays where it is
		if i := slices.Index(s.Skipped, seq); i >= 0 {
			s.Skipped = slices.Delete(slices.Clone(s.Skipped), i, i+1)
		}
		return nil
	}
	if seq > s.Last+1 { // skipped ahead: remember what was given up
		sk := slices.Clone(s.Skipped)
		for n := max(s.Last+1, seq-MaxSkipped); n < seq; n++ {
			sk = append(sk, n)
		}
		s.Skipped = sk[max(len(sk)-MaxSkipped, 0):]
	}
	s.Last = seq
	s.GapSince = time.Time{}
	return nil
}

// Abort gives up owner's claim on seq after a failed attempt, so that a retry can run; it
// reports whether s changed. Aborting the key's next message restarts the gap clock: later
// messages keep waiting while the missing one is being retried.
func (s *State) Abort(now time.Time, seq int64, owner string) bool {
	if s.ClaimOwner != owner || s.ClaimSeq != seq {
		return false
	}
	s.ClaimSeq, s.ClaimOwner, s.ClaimUntil = 0, "", time.Time{}
	if seq == s.Last+1 {
		s.GapSince = now
	}
	return true
}
