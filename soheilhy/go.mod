// This module is github.com/cmux-go/cmux under the module path of
// github.com/soheilhy/cmux, for programs that get soheilhy/cmux through a
// dependency: see doc.go. It lives at github.com/cmux-go/cmux/soheilhy and
// is tagged soheilhy/vX.Y.Z with each release of the main module.
module github.com/soheilhy/cmux

go 1.22.0

require github.com/cmux-go/cmux v0.0.0-00010101000000-000000000000

require (
	golang.org/x/crypto v0.1.0 // indirect
	golang.org/x/net v0.1.0 // indirect
)

replace github.com/cmux-go/cmux => ../
