// Package keyhash is the one hash Courier uses to spread keys over a fixed number of places:
// the engine's lanes, the SQS adapter's FIFO publish lanes, and the middleware's wake-up
// slots. It is 32-bit FNV-1a over the key's bytes, written out so that it inlines and
// allocates nothing (hash/fnv needs a []byte and an interface value).
package keyhash

// Sum32 returns the 32-bit FNV-1a hash of s.
func Sum32(s string) uint32 {
	h := uint32(offset32)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime32
	}
	return h
}

// Index returns Sum32(s) mod n, a place among n for the key s. n must be positive.
func Index(s string, n int) int { return int(Sum32(s) % uint32(n)) }

const (
	offset32 = 2166136261
	prime32  = 16777619
)
