//go:build unix

package cmux

import "testing"

// The accept loop tries every first read until missMax of them in a row
// found nothing; then it tries every probeEvery-th connection only, until
// one finds bytes.
func TestNowReaderTryFirst(t *testing.T) {
	var r nowReader
	tries := func(n int) (tried int) {
		for range n {
			if r.tryFirst() {
				tried++
				r.firstRead(false)
			}
		}
		return tried
	}
	if got := tries(missMax); got != missMax {
		t.Fatalf("tried %d of the first %d connections, want all", got, missMax)
	}
	if got := tries(10 * probeEvery); got != 10 {
		t.Fatalf("after %d misses, tried %d of %d connections, want 10", missMax, got, 10*probeEvery)
	}
	// A probe that finds bytes makes every connection tried again.
	for i := 0; !r.tryFirst(); i++ {
		if i > probeEvery {
			t.Fatalf("no probe in %d connections", i)
		}
	}
	r.firstRead(true)
	for i := range 3 * missMax {
		if !r.tryFirst() {
			t.Fatalf("connection %d after a hit not tried", i)
		}
		r.firstRead(true)
	}
}
