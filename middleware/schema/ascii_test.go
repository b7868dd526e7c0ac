package schema

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// ascii must see a non-ASCII byte wherever it sits, in strings of every length the word-wise
// checks split differently.
func TestASCII(t *testing.T) {
	for n := 0; n <= 40; n++ {
		p := bytes.Repeat([]byte{'a'}, n)
		if !ascii(p) {
			t.Fatalf("%d ASCII bytes: not ASCII", n)
		}
		for i := 0; i < n; i++ {
			for _, c := range []byte{0x80, 0xc3, 0xff} {
				q := bytes.Clone(p)
				q[i] = c
				if ascii(q) {
					t.Fatalf("length %d, byte %#x at %d: taken for ASCII", n, c, i)
				}
				if utf8.Valid(q) { // what Validate falls back on
					t.Fatalf("length %d, byte %#x at %d: valid UTF-8", n, c, i)
				}
			}
		}
	}
}
