package storetest

import (
	"strconv"
	"testing"
	"time"
)

// BenchKeys makes, before a benchmark's clock starts, what b.N store calls need to be each a
// new one: per[i] = each(i) for i below min(b.N, 2^18), and rounds, fresh names
// ("bench-<run>-<n>") enough to go through per b.N times. Call n uses per[n%len(per)] in
// round rounds[n/len(per)].
func BenchKeys(b *testing.B, each func(i int) string) (per, rounds []string) {
	per = make([]string, min(b.N, 1<<18))
	for i := range per {
		per[i] = each(i)
	}
	run := strconv.FormatInt(time.Now().UnixNano(), 36)
	rounds = make([]string, b.N/len(per)+1)
	for n := range rounds {
		rounds[n] = "bench-" + run + "-" + strconv.Itoa(n)
	}
	return per, rounds
}

// Bench reports allocations and bytes (size per call), starts the clock and runs call(n) for
// n below b.N, failing the benchmark on the first error.
func Bench(b *testing.B, size int64, call func(n int) error) {
	b.ReportAllocs()
	b.SetBytes(size)
	b.ResetTimer()
	for n := 0; n < b.N; n++ {
		if err := call(n); err != nil {
			b.Fatal(err)
		}
	}
}
