package testcheck

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeT records what the checks report.
type fakeT struct {
	errors []string
	failed bool // FailNow was called
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(format string, args ...any) {
	f.errors = append(f.errors, fmt.Sprintf(format, args...))
}

func (f *fakeT) FailNow() { f.failed = true }

type point struct{ x, y int }

func TestChecks(t *testing.T) {
	var nilPtr *point
	var nilErr error
	pathErr := &fs.PathError{Op: "open", Path: "x", Err: os.ErrNotExist}
	wrapped := fmt.Errorf("wrapped: %w", pathErr)
	p1, p2 := &point{1, 2}, &point{1, 2}
	ch := make(chan int, 1)

	// Each case runs one check; pass says whether it holds.
	cases := []struct {
		name  string
		check func(c Checker, t TB) bool
		pass  bool
	}{
		{"Equal ints", func(c Checker, t TB) bool { return c.Equal(t, 1, 1) }, true},
		{"Equal int and int64", func(c Checker, t TB) bool { return c.Equal(t, 1, int64(1)) }, false},
		{"Equal structs", func(c Checker, t TB) bool { return c.Equal(t, point{1, 2}, point{1, 2}) }, true},
		{"Equal bytes", func(c Checker, t TB) bool { return c.Equal(t, []byte("ab"), []byte("ab")) }, true},
		{"Equal nil and empty bytes", func(c Checker, t TB) bool { return c.Equal(t, []byte(nil), []byte{}) }, false},
		{"Equal nils", func(c Checker, t TB) bool { return c.Equal(t, nil, nil) }, true},
		{"Equal nil and typed nil", func(c Checker, t TB) bool { return c.Equal(t, nil, nilPtr) }, false},
		{"Equal funcs", func(c Checker, t TB) bool { return c.Equal(t, TestChecks, TestChecks) }, false},
		{"Equal strings", func(c Checker, t TB) bool { return c.Equal(t, "a", "b") }, false},
		{"NotEqual", func(c Checker, t TB) bool { return c.NotEqual(t, 1, 2) }, true},
		{"NotEqual same", func(c Checker, t TB) bool { return c.NotEqual(t, "a", "a") }, false},
		{"EqualValues int and int32", func(c Checker, t TB) bool { return c.EqualValues(t, 1, int32(1)) }, true},
		{"EqualValues int and uint8 overflow", func(c Checker, t TB) bool { return c.EqualValues(t, 257, uint8(1)) }, false},
		{"EqualValues different", func(c Checker, t TB) bool { return c.EqualValues(t, 2, int64(1)) }, false},
		{"EqualValues string types", func(c Checker, t TB) bool {
			type name string
			return c.EqualValues(t, "a", name("a"))
		}, true},
		{"Same", func(c Checker, t TB) bool { return c.Same(t, p1, p1) }, true},
		{"Same equal values", func(c Checker, t TB) bool { return c.Same(t, p1, p2) }, false},
		{"Same not pointers", func(c Checker, t TB) bool { return c.Same(t, 1, 1) }, false},
		{"True", func(c Checker, t TB) bool { return c.True(t, true) }, true},
		{"True false", func(c Checker, t TB) bool { return c.True(t, false) }, false},
		{"False", func(c Checker, t TB) bool { return c.False(t, false) }, true},
		{"False true", func(c Checker, t TB) bool { return c.False(t, true) }, false},
		{"Nil", func(c Checker, t TB) bool { return c.Nil(t, nil) }, true},
		{"Nil typed", func(c Checker, t TB) bool { return c.Nil(t, nilPtr) }, true},
		{"Nil value", func(c Checker, t TB) bool { return c.Nil(t, 0) }, false},
		{"NotNil", func(c Checker, t TB) bool { return c.NotNil(t, p1) }, true},
		{"NotNil typed nil", func(c Checker, t TB) bool { return c.NotNil(t, nilPtr) }, false},
		{"Empty string", func(c Checker, t TB) bool { return c.Empty(t, "") }, true},
		{"Empty slice", func(c Checker, t TB) bool { return c.Empty(t, []int{}) }, true},
		{"Empty nil map", func(c Checker, t TB) bool { return c.Empty(t, map[int]int(nil)) }, true},
		{"Empty zero struct", func(c Checker, t TB) bool { return c.Empty(t, point{}) }, true},
		{"Empty pointer to zero", func(c Checker, t TB) bool { return c.Empty(t, &point{}) }, true},
		{"Empty string not", func(c Checker, t TB) bool { return c.Empty(t, "x") }, false},
		{"Empty chan with element", func(c Checker, t TB) bool {
			ch <- 1
			defer func() { <-ch }()
			return c.Empty(t, ch)
		}, false},
		{"NotEmpty", func(c Checker, t TB) bool { return c.NotEmpty(t, []int{1}) }, true},
		{"NotEmpty empty", func(c Checker, t TB) bool { return c.NotEmpty(t, "") }, false},
		{"Zero", func(c Checker, t TB) bool { return c.Zero(t, 0) }, true},
		{"Zero nil", func(c Checker, t TB) bool { return c.Zero(t, nil) }, true},
		{"Zero not", func(c Checker, t TB) bool { return c.Zero(t, 3) }, false},
		{"Zero empty slice", func(c Checker, t TB) bool { return c.Zero(t, []int{}) }, false},
		{"NotZero", func(c Checker, t TB) bool { return c.NotZero(t, "x") }, true},
		{"NotZero zero", func(c Checker, t TB) bool { return c.NotZero(t, time.Duration(0)) }, false},
		{"Len", func(c Checker, t TB) bool { return c.Len(t, []int{1, 2}, 2) }, true},
		{"Len string", func(c Checker, t TB) bool { return c.Len(t, "abc", 3) }, true},
		{"Len map", func(c Checker, t TB) bool { return c.Len(t, map[int]bool{1: true}, 2) }, false},
		{"Len int", func(c Checker, t TB) bool { return c.Len(t, 5, 0) }, false},
		{"Contains substring", func(c Checker, t TB) bool { return c.Contains(t, "hello", "ell") }, true},
		{"Contains substring not", func(c Checker, t TB) bool { return c.Contains(t, "hello", "x") }, false},
		{"Contains element", func(c Checker, t TB) bool { return c.Contains(t, []string{"a", "b"}, "b") }, true},
		{"Contains key", func(c Checker, t TB) bool { return c.Contains(t, map[string]int{"a": 1}, "a") }, true},
		{"Contains int in string", func(c Checker, t TB) bool { return c.Contains(t, "1", 1) }, false},
		{"NotContains", func(c Checker, t TB) bool { return c.NotContains(t, "hello", "x") }, true},
		{"NotContains there", func(c Checker, t TB) bool { return c.NotContains(t, "hello", "h") }, false},
		{"NoError", func(c Checker, t TB) bool { return c.NoError(t, nilErr) }, true},
		{"NoError error", func(c Checker, t TB) bool { return c.NoError(t, io.EOF) }, false},
		{"Error", func(c Checker, t TB) bool { return c.Error(t, io.EOF) }, true},
		{"Error nil", func(c Checker, t TB) bool { return c.Error(t, nil) }, false},
		{"ErrorIs", func(c Checker, t TB) bool { return c.ErrorIs(t, wrapped, os.ErrNotExist) }, true},
		{"ErrorIs not", func(c Checker, t TB) bool { return c.ErrorIs(t, wrapped, io.EOF) }, false},
		{"ErrorAs", func(c Checker, t TB) bool {
			var pe *fs.PathError
			return c.ErrorAs(t, wrapped, &pe) && pe == pathErr
		}, true},
		{"ErrorAs not", func(c Checker, t TB) bool {
			var pe *fs.PathError
			return c.ErrorAs(t, io.EOF, &pe)
		}, false},
		{"Panics", func(c Checker, t TB) bool { return c.Panics(t, func() { panic("x") }) }, true},
		{"Panics not", func(c Checker, t TB) bool { return c.Panics(t, func() {}) }, false},
		{"Eventually", func(c Checker, t TB) bool {
			n := 0
			return c.Eventually(t, func() bool { n++; return n == 3 }, time.Second, time.Millisecond)
		}, true},
		{"Eventually never", func(c Checker, t TB) bool {
			return c.Eventually(t, func() bool { return false }, 20*time.Millisecond, time.Millisecond)
		}, false},
		{"Greater", func(c Checker, t TB) bool { return c.Greater(t, 2, 1) }, true},
		{"Greater equal", func(c Checker, t TB) bool { return c.Greater(t, 1, 1) }, false},
		{"GreaterOrEqual", func(c Checker, t TB) bool { return c.GreaterOrEqual(t, time.Second, time.Second) }, true},
		{"GreaterOrEqual less", func(c Checker, t TB) bool { return c.GreaterOrEqual(t, uint8(1), uint8(2)) }, false},
		{"Less", func(c Checker, t TB) bool { return c.Less(t, 1.5, 2.0) }, true},
		{"Less strings", func(c Checker, t TB) bool { return c.Less(t, "b", "a") }, false},
		{"Less different kinds", func(c Checker, t TB) bool { return c.Less(t, 1, int64(2)) }, false},
		{"LessOrEqual", func(c Checker, t TB) bool { return c.LessOrEqual(t, 2, 2) }, true},
		{"LessOrEqual greater", func(c Checker, t TB) bool { return c.LessOrEqual(t, 3, 2) }, false},
		{"LessOrEqual times", func(c Checker, t TB) bool {
			now := time.Now()
			return c.LessOrEqual(t, now, now.Add(time.Second))
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []Checker{Assert, Require} {
				ft := &fakeT{}
				got := tc.check(c, ft)
				if tc.pass {
					if !got || len(ft.errors) > 0 || ft.failed {
						t.Errorf("fatal=%v: failed: %q", c.fatal, ft.errors)
					}
					continue
				}
				if got || len(ft.errors) != 1 {
					t.Errorf("fatal=%v: returned %v, reported %q; want one failure", c.fatal, got, ft.errors)
				}
				if ft.failed != c.fatal {
					t.Errorf("fatal=%v: FailNow called: %v", c.fatal, ft.failed)
				}
			}
		})
	}
}

func TestMessages(t *testing.T) {
	for _, tc := range []struct {
		msgAndArgs []any
		want       string
	}{
		{nil, "not equal\n     got: \"b\"\n    want: \"a\""},
		{[]any{"plain %d"}, "\nmessage: plain %d"},
		{[]any{"n=%d s=%q", 3, "x"}, "\nmessage: n=3 s=\"x\""},
		{[]any{42}, "\nmessage: 42"},
	} {
		ft := &fakeT{}
		Assert.Equal(ft, "a", "b", tc.msgAndArgs...)
		if len(ft.errors) != 1 || !strings.HasSuffix(ft.errors[0], tc.want) {
			t.Errorf("%v: reported %q, want a message ending in %q", tc.msgAndArgs, ft.errors, tc.want)
		}
	}
	ft := &fakeT{}
	Assert.NoError(ft, io.ErrUnexpectedEOF)
	if want := `unexpected error: *errors.errorString("unexpected EOF")`; len(ft.errors) != 1 || ft.errors[0] != want {
		t.Errorf("NoError reported %q, want %q", ft.errors, want)
	}
}
