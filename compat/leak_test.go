package compat

import (
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// leakWait bounds how long checkLeaks waits for goroutines to exit.
const leakWait = 5 * time.Second

// goroutines returns the stacks of the live goroutines by their header
// line's id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	gs := make(map[string]string)
	for _, g := range strings.Split(string(buf), "\n\n") {
		head, _, _ := strings.Cut(g, "\n")
		f := strings.Fields(head) // goroutine N [state]:
		if len(f) < 2 || f[0] != "goroutine" {
			continue
		}
		gs[f[1]] = g
	}
	return gs
}

// ignoredGoroutine reports goroutines of the runtime and the testing
// package, which come and go on their own.
func ignoredGoroutine(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run(",
		"testing.tRunner(",
		"testing.runTests(",
		"testing.(*M).",
		"runtime.goexit0",
		"os/signal.signal_recv",
		"runtime.ensureSigM",
		"runtime/trace.",
		"created by runtime.gc",
		"runtime.ReadTrace",
	} {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}

// leaked returns the stacks of goroutines that are not in before and not
// ignored.
func leaked(before map[string]string) []string {
	var out []string
	for id, g := range goroutines() {
		if _, ok := before[id]; ok || ignoredGoroutine(g) {
			continue
		}
		out = append(out, g)
	}
	sort.Strings(out)
	return out
}

// checkLeaks fails t if goroutines started during t are still running
// leakWait after t's other cleanups ran.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(leakWait)
		for {
			l := leaked(before)
			if len(l) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) leaked:\n\n%s", len(l), strings.Join(l, "\n\n"))
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// TestLeakCheckCatches: the leak check sees a goroutine that outlives the
// test, so that its silence elsewhere means something.
func TestLeakCheckCatches(t *testing.T) {
	before := goroutines()
	stop := make(chan struct{})
	go func() { <-stop }()
	if l := leaked(before); len(l) != 1 || !strings.Contains(l[0], "TestLeakCheckCatches") {
		t.Errorf("leaked() = %q, want the one goroutine started here", l)
	}
	close(stop)
	deadline := time.Now().Add(leakWait)
	for len(leaked(before)) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the goroutine did not exit")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
