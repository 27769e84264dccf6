// Package testcheck holds the assertions this repository's tests use: the
// subset of github.com/stretchr/testify's assert and require functions the
// tests called, with testify's argument order (expected before actual) and
// meaning, so that the cmux module needs no test-only dependency.
//
// A test package declares
//
//	var assert, require = testcheck.Assert, testcheck.Require
//
// and calls assert.Equal(t, want, got) and require.NoError(t, err) as with
// testify. Assert reports a failure with t.Errorf and lets the test go on;
// Require reports it and stops the test with t.FailNow, so, as with
// testify's require, it must be called from the test's goroutine. Every
// check takes optional msgAndArgs: one value, printed as is, or a format
// string and its arguments.
package testcheck

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// TB is the part of testing.TB the checks use.
type TB interface {
	Helper()
	Errorf(format string, args ...any)
	FailNow()
}

// Checker runs checks; see Assert and Require.
type Checker struct {
	fatal bool
}

var (
	// Assert reports a failed check and lets the test go on.
	Assert = Checker{}
	// Require reports a failed check and stops the test (t.FailNow).
	Require = Checker{fatal: true}
)

// result reports a failure when ok is false: what, then the caller's
// message. It returns ok.
func (c Checker) result(t TB, ok bool, what string, msgAndArgs []any) bool {
	if ok {
		return true
	}
	t.Helper()
	if msg := message(msgAndArgs); msg != "" {
		what += "\nmessage: " + msg
	}
	t.Errorf("%s", what)
	if c.fatal {
		t.FailNow()
	}
	return false
}

// message formats msgAndArgs as testify does: nothing, one value, or a
// format string and its arguments.
func message(msgAndArgs []any) string {
	switch len(msgAndArgs) {
	case 0:
		return ""
	case 1:
		if s, ok := msgAndArgs[0].(string); ok {
			return s
		}
		return fmt.Sprintf("%+v", msgAndArgs[0])
	}
	if format, ok := msgAndArgs[0].(string); ok {
		return fmt.Sprintf(format, msgAndArgs[1:]...)
	}
	return fmt.Sprint(msgAndArgs...)
}

// show formats v for a failure message: strings and byte slices quoted,
// errors with their text, other values with their Go syntax.
func show(v any) string {
	switch v := v.(type) {
	case nil:
		return "nil"
	case string:
		return fmt.Sprintf("%q", v)
	case []byte:
		if v == nil {
			return "[]byte(nil)"
		}
		return fmt.Sprintf("[]byte(%q)", v)
	case error:
		return fmt.Sprintf("%T(%q)", v, v)
	case fmt.Stringer:
		return fmt.Sprintf("%T(%s)", v, v)
	}
	return fmt.Sprintf("%#v", v)
}

// gotWant formats a failure of a comparison.
func gotWant(what string, got, want any) string {
	return fmt.Sprintf("%s\n     got: %s\n    want: %s", what, show(got), show(want))
}

// objectsAreEqual is testify's ObjectsAreEqual: bytes.Equal for two byte
// slices, reflect.DeepEqual otherwise.
func objectsAreEqual(expected, actual any) bool {
	if expected == nil || actual == nil {
		return expected == actual
	}
	exp, ok := expected.([]byte)
	if !ok {
		return reflect.DeepEqual(expected, actual)
	}
	act, ok := actual.([]byte)
	if !ok {
		return false
	}
	if exp == nil || act == nil {
		return exp == nil && act == nil
	}
	return bytes.Equal(exp, act)
}

func isNumeric(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	}
	return false
}

// objectsAreEqualValues is testify's ObjectsAreEqualValues: equal, or equal
// once expected is converted to the type of actual; two numbers are
// compared in the larger of their types.
func objectsAreEqualValues(expected, actual any) bool {
	if objectsAreEqual(expected, actual) {
		return true
	}
	ev, av := reflect.ValueOf(expected), reflect.ValueOf(actual)
	if !ev.IsValid() || !av.IsValid() {
		return false
	}
	et, at := ev.Type(), av.Type()
	if !et.ConvertibleTo(at) {
		return false
	}
	if !isNumeric(et) || !isNumeric(at) {
		return reflect.DeepEqual(ev.Convert(at).Interface(), actual)
	}
	if et.Size() >= at.Size() {
		return av.Convert(et).Interface() == expected
	}
	return ev.Convert(at).Interface() == actual
}

func isFunc(v any) bool {
	return v != nil && reflect.TypeOf(v).Kind() == reflect.Func
}

// Equal checks that actual equals expected (bytes.Equal for byte slices,
// reflect.DeepEqual otherwise).
func (c Checker) Equal(t TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if isFunc(expected) || isFunc(actual) {
		return c.result(t, false, fmt.Sprintf("cannot compare functions: %T and %T", expected, actual), msgAndArgs)
	}
	return c.result(t, objectsAreEqual(expected, actual), gotWant("not equal", actual, expected), msgAndArgs)
}

// NotEqual checks that actual does not equal expected.
func (c Checker) NotEqual(t TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if isFunc(expected) || isFunc(actual) {
		return c.result(t, false, fmt.Sprintf("cannot compare functions: %T and %T", expected, actual), msgAndArgs)
	}
	return c.result(t, !objectsAreEqual(expected, actual), "should not be "+show(actual), msgAndArgs)
}

// EqualValues checks that actual equals expected, or expected converted to
// the type of actual.
func (c Checker) EqualValues(t TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, objectsAreEqualValues(expected, actual), gotWant("not equal values", actual, expected), msgAndArgs)
}

// Same checks that expected and actual are pointers of one type to the
// same object.
func (c Checker) Same(t TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	ev, av := reflect.ValueOf(expected), reflect.ValueOf(actual)
	ok := ev.Kind() == reflect.Pointer && av.Kind() == reflect.Pointer &&
		ev.Type() == av.Type() && expected == actual
	return c.result(t, ok, fmt.Sprintf("not the same pointer\n     got: %p %T\n    want: %p %T", actual, actual, expected, expected), msgAndArgs)
}

// True checks that value is true.
func (c Checker) True(t TB, value bool, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, value, "should be true", msgAndArgs)
}

// False checks that value is false.
func (c Checker) False(t TB, value bool, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, !value, "should be false", msgAndArgs)
}

// isNil reports whether object is nil or a nil chan, func, interface, map,
// pointer or slice.
func isNil(object any) bool {
	if object == nil {
		return true
	}
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice, reflect.UnsafePointer:
		return v.IsNil()
	}
	return false
}

// Nil checks that object is nil (a nil interface, or a nil value of a type
// that has one).
func (c Checker) Nil(t TB, object any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, isNil(object), "should be nil: "+show(object), msgAndArgs)
}

// NotNil checks that object is not nil.
func (c Checker) NotNil(t TB, object any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, !isNil(object), "should not be nil", msgAndArgs)
}

// isEmpty is testify's ObjectsAreEmpty: nil, a chan, map or slice of length
// 0, a pointer to something empty, or a zero value.
func isEmpty(object any) bool {
	if object == nil {
		return true
	}
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.Chan, reflect.Map, reflect.Slice:
		return v.Len() == 0
	case reflect.Pointer:
		if v.IsNil() {
			return true
		}
		return isEmpty(v.Elem().Interface())
	}
	return reflect.DeepEqual(object, reflect.Zero(v.Type()).Interface())
}

// Empty checks that object is empty: nil, of length 0, or a zero value.
func (c Checker) Empty(t TB, object any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, isEmpty(object), "should be empty: "+show(object), msgAndArgs)
}

// NotEmpty checks that object is not empty.
func (c Checker) NotEmpty(t TB, object any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, !isEmpty(object), "should not be empty: "+show(object), msgAndArgs)
}

// isZero reports whether i is nil or the zero value of its type.
func isZero(i any) bool {
	return i == nil || reflect.DeepEqual(i, reflect.Zero(reflect.TypeOf(i)).Interface())
}

// Zero checks that i is the zero value of its type.
func (c Checker) Zero(t TB, i any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, isZero(i), "should be zero: "+show(i), msgAndArgs)
}

// NotZero checks that i is not the zero value of its type.
func (c Checker) NotZero(t TB, i any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, !isZero(i), "should not be zero: "+show(i), msgAndArgs)
}

// Len checks that object (a string, slice, array, map or chan) has length
// length.
func (c Checker) Len(t TB, object any, length int, msgAndArgs ...any) bool {
	t.Helper()
	v := reflect.ValueOf(object)
	switch v.Kind() {
	case reflect.String, reflect.Slice, reflect.Array, reflect.Map, reflect.Chan:
	default:
		return c.result(t, false, fmt.Sprintf("cannot take the length of %s", show(object)), msgAndArgs)
	}
	n := v.Len()
	return c.result(t, n == length, fmt.Sprintf("length %d, want %d: %s", n, length, show(object)), msgAndArgs)
}

// contains reports whether list (a string, slice, array or map) contains
// element (a substring, an element, or a key); ok is false if list is none
// of those.
func contains(list, element any) (ok, found bool) {
	lv := reflect.ValueOf(list)
	switch lv.Kind() {
	case reflect.String:
		ev := reflect.ValueOf(element)
		if ev.Kind() != reflect.String {
			return false, false
		}
		return true, strings.Contains(lv.String(), ev.String())
	case reflect.Map:
		for _, k := range lv.MapKeys() {
			if objectsAreEqual(k.Interface(), element) {
				return true, true
			}
		}
		return true, false
	case reflect.Slice, reflect.Array:
		for i := range lv.Len() {
			if objectsAreEqual(lv.Index(i).Interface(), element) {
				return true, true
			}
		}
		return true, false
	}
	return false, false
}

// Contains checks that s (a string, slice, array or map) contains element
// (a substring, an element, or a key).
func (c Checker) Contains(t TB, s, element any, msgAndArgs ...any) bool {
	t.Helper()
	ok, found := contains(s, element)
	if !ok {
		return c.result(t, false, fmt.Sprintf("cannot look for %s in %s", show(element), show(s)), msgAndArgs)
	}
	return c.result(t, found, fmt.Sprintf("%s does not contain %s", show(s), show(element)), msgAndArgs)
}

// NotContains checks that s (a string, slice, array or map) does not
// contain element.
func (c Checker) NotContains(t TB, s, element any, msgAndArgs ...any) bool {
	t.Helper()
	ok, found := contains(s, element)
	if !ok {
		return c.result(t, false, fmt.Sprintf("cannot look for %s in %s", show(element), show(s)), msgAndArgs)
	}
	return c.result(t, !found, fmt.Sprintf("%s contains %s", show(s), show(element)), msgAndArgs)
}

// NoError checks that err is nil.
func (c Checker) NoError(t TB, err error, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, err == nil, "unexpected error: "+show(err), msgAndArgs)
}

// Error checks that err is not nil.
func (c Checker) Error(t TB, err error, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, err != nil, "an error is expected, got nil", msgAndArgs)
}

// ErrorIs checks that errors.Is(err, target).
func (c Checker) ErrorIs(t TB, err, target error, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, errors.Is(err, target), gotWant("error is not the target (errors.Is)", err, target), msgAndArgs)
}

// ErrorAs checks that errors.As(err, target), which sets target.
func (c Checker) ErrorAs(t TB, err error, target any, msgAndArgs ...any) bool {
	t.Helper()
	return c.result(t, errors.As(err, target),
		fmt.Sprintf("no error in the chain of %s is a %s (errors.As)", show(err), reflect.TypeOf(target).Elem()), msgAndArgs)
}

// Panics checks that f panics.
func (c Checker) Panics(t TB, f func(), msgAndArgs ...any) bool {
	t.Helper()
	panicked := func() (panicked bool) {
		defer func() {
			if recover() != nil {
				panicked = true
			}
		}()
		f()
		return false
	}()
	return c.result(t, panicked, "the function should panic, and did not", msgAndArgs)
}

// Eventually checks that condition returns true, calling it every tick
// (the first time after one tick) for up to waitFor.
func (c Checker) Eventually(t TB, condition func() bool, waitFor, tick time.Duration, msgAndArgs ...any) bool {
	t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	for {
		select {
		case <-deadline.C:
			return c.result(t, false, fmt.Sprintf("condition not met within %v", waitFor), msgAndArgs)
		case <-ticker.C:
			if condition() {
				return true
			}
		}
	}
}

// order compares two values of one ordered kind (integers, floats,
// strings): -1, 0 or +1; ok is false if they are not of one such kind.
func order(e1, e2 any) (cmp int, ok bool) {
	v1, v2 := reflect.ValueOf(e1), reflect.ValueOf(e2)
	if !v1.IsValid() || !v2.IsValid() || v1.Kind() != v2.Kind() {
		return 0, false
	}
	if t1, ok := e1.(time.Time); ok {
		t2, ok := e2.(time.Time)
		if !ok {
			return 0, false
		}
		return t1.Compare(t2), true
	}
	sign := func(less, greater bool) int {
		switch {
		case less:
			return -1
		case greater:
			return 1
		}
		return 0
	}
	switch v1.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		a, b := v1.Int(), v2.Int()
		return sign(a < b, a > b), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		a, b := v1.Uint(), v2.Uint()
		return sign(a < b, a > b), true
	case reflect.Float32, reflect.Float64:
		a, b := v1.Float(), v2.Float()
		return sign(a < b, a > b), true
	case reflect.String:
		a, b := v1.String(), v2.String()
		return sign(a < b, a > b), true
	}
	return 0, false
}

// compare checks that e1 and e2 are ordered and that their order is one of
// allowed.
func (c Checker) compare(t TB, e1, e2 any, relation string, allowed func(int) bool, msgAndArgs []any) bool {
	t.Helper()
	cmp, ok := order(e1, e2)
	if !ok {
		return c.result(t, false, fmt.Sprintf("cannot order %s and %s (%T and %T)", show(e1), show(e2), e1, e2), msgAndArgs)
	}
	return c.result(t, allowed(cmp), fmt.Sprintf("%s is not %s %s", show(e1), relation, show(e2)), msgAndArgs)
}

// Greater checks that e1 > e2.
func (c Checker) Greater(t TB, e1, e2 any, msgAndArgs ...any) bool {
	t.Helper()
	return c.compare(t, e1, e2, "greater than", func(c int) bool { return c > 0 }, msgAndArgs)
}

// GreaterOrEqual checks that e1 >= e2.
func (c Checker) GreaterOrEqual(t TB, e1, e2 any, msgAndArgs ...any) bool {
	t.Helper()
	return c.compare(t, e1, e2, "greater than or equal to", func(c int) bool { return c >= 0 }, msgAndArgs)
}

// Less checks that e1 < e2.
func (c Checker) Less(t TB, e1, e2 any, msgAndArgs ...any) bool {
	t.Helper()
	return c.compare(t, e1, e2, "less than", func(c int) bool { return c < 0 }, msgAndArgs)
}

// LessOrEqual checks that e1 <= e2.
func (c Checker) LessOrEqual(t TB, e1, e2 any, msgAndArgs ...any) bool {
	t.Helper()
	return c.compare(t, e1, e2, "less than or equal to", func(c int) bool { return c <= 0 }, msgAndArgs)
}
