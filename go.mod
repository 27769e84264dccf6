module github.com/cmux-go/cmux

go 1.22.0

require (
	golang.org/x/crypto v0.1.0
	golang.org/x/net v0.1.0
)
