package testcheck

import (
	"bytes"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CheckLeaks fails t if goroutines started during the test are still
// running when it ends (after the test's other cleanups, which run first
// when checkLeaks is called first).
func CheckLeaks(t testing.TB) {
	t.Helper()
	before := goroutineIDs()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			leaked := leakedGoroutines(before)
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Errorf("%d goroutine(s) leaked:\n%s", len(leaked), strings.Join(leaked, "\n\n"))
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

func goroutineIDs() map[int]bool {
	ids := map[int]bool{}
	for _, g := range GoroutineStacks() {
		ids[goroutineID(g)] = true
	}
	return ids
}

// GoroutineStacks returns the stack of every goroutine, one string each.
func GoroutineStacks() []string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	return strings.Split(string(bytes.TrimSpace(buf)), "\n\n")
}

func goroutineID(stack string) int {
	// "goroutine 123 [running]:"
	f := strings.Fields(stack)
	if len(f) < 2 {
		return -1
	}
	id, _ := strconv.Atoi(f[1])
	return id
}

// ignoredGoroutines are stacks of goroutines that belong to the test
// framework or the runtime, not to the code under test.
var ignoredGoroutines = []string{
	"testing.tRunner(",
	"testing.(*T).Run(",
	"testing.(*M).",
	"testing.(*F).",
	"testing.runFuzzing",
	"internal/fuzz.",
	"os/signal.",
}

func leakedGoroutines(before map[int]bool) []string {
	var leaked []string
	for _, g := range GoroutineStacks() {
		if before[goroutineID(g)] || strings.Contains(g, "testcheck.leakedGoroutines") || ignored(g) {
			continue
		}
		leaked = append(leaked, g)
	}
	return leaked
}

func ignored(stack string) bool {
	for _, s := range ignoredGoroutines {
		if strings.Contains(stack, s) {
			return true
		}
	}
	return false
}
