package testcheck

import (
	"strings"
	"testing"
	"time"
)

// TestLeakedGoroutines: a goroutine started after the snapshot is reported
// until it ends, and one running before is not.
func TestLeakedGoroutines(t *testing.T) {
	stop := make(chan struct{})
	before := goroutineIDs()
	go func() { <-stop }()
	time.Sleep(10 * time.Millisecond)
	leaked := leakedGoroutines(before)
	if len(leaked) != 1 || !strings.Contains(leaked[0], "TestLeakedGoroutines") {
		t.Fatalf("leaked = %q, want the test's goroutine", leaked)
	}
	close(stop)
	for deadline := time.Now().Add(5 * time.Second); len(leakedGoroutines(before)) > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the goroutine is still reported after it ended")
		}
	}
}
