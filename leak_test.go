package cmux

import (
	"testing"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// checkLeaks fails t if goroutines started during the test are still
// running when it ends (after the test's other cleanups, which run first
// when checkLeaks is called first).
func checkLeaks(t testing.TB) {
	t.Helper()
	testcheck.CheckLeaks(t)
}

func goroutineStacks() []string { return testcheck.GoroutineStacks() }
