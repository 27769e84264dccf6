// Package compat runs the same scenarios against github.com/soheilhy/cmux
// v0.1.5 and github.com/cmux-go/cmux, and checks that a v0.1.5 program
// observes the same outcome with both, or the documented difference.
package compat
