package keyhash

import (
	"hash/fnv"
	"testing"
)

func TestSum32MatchesHashFNV(t *testing.T) {
	for _, s := range []string{"", "a", "customer-7", "ключ", string([]byte{0xff, 0, 0x80}), "a much longer key with spaces"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if got, want := Sum32(s), h.Sum32(); got != want {
			t.Errorf("Sum32(%q) = %#x; hash/fnv says %#x", s, got, want)
		}
	}
}

func TestIndexInRange(t *testing.T) {
	for n := 1; n <= 17; n++ {
		for _, s := range []string{"", "x", "customer-1", "customer-2"} {
			if i := Index(s, n); i < 0 || i >= n {
				t.Fatalf("Index(%q, %d) = %d", s, n, i)
			}
		}
	}
}

func TestSum32Allocates(t *testing.T) {
	s := "customer-42"
	if n := testing.AllocsPerRun(100, func() { _ = Sum32(s) }); n != 0 {
		t.Fatalf("Sum32 allocates %v times", n)
	}
}
