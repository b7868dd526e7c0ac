package transport

import (
	"crypto/rand"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/courierhq/courier/message"
)

// idGen makes UUIDv7 message IDs (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter
// that keeps IDs from one connection in creation order within a millisecond, and 62 random
// bits. It reads randomness once per batch rather than once per message, which is what makes
// it several times cheaper than calling uuid.NewV7 per message; the uuid package formats.
type idGen struct {
	mu     sync.Mutex
	lastMS int64
	seq    uint16
}

// fill sets a fresh ID on every message of msgs whose ID is empty.
func (g *idGen) fill(msgs []*message.Message) error {
	need := 0
	for _, m := range msgs {
		if m != nil && m.ID == "" {
			need++
		}
	}
	if need == 0 {
		return nil
	}
	var small [8 * 16]byte
	rnd := small[:]
	if need > 16 {
		rnd = make([]byte, 8*need)
	} else {
		rnd = rnd[:8*need]
	}
	if _, err := rand.Read(rnd); err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range msgs {
		if m == nil || m.ID != "" {
			continue
		}
		ms := time.Now().UnixMilli()
		if ms > g.lastMS {
			g.lastMS, g.seq = ms, 0
		} else {
			g.seq++
			if g.seq > 0x0fff { // counter exhausted: borrow the next millisecond
				g.lastMS++
				g.seq = 0
			}
		}
		var u uuid.UUID
		t := g.lastMS
		u[0], u[1], u[2], u[3], u[4], u[5] = byte(t>>40), byte(t>>32), byte(t>>24), byte(t>>16), byte(t>>8), byte(t)
		u[6] = 0x70 | byte(g.seq>>8)
		u[7] = byte(g.seq)
		copy(u[8:], rnd[:8])
		rnd = rnd[8:]
		u[8] = u[8]&0x3f | 0x80 // variant 10
		m.ID = u.String()
	}
	return nil
}
