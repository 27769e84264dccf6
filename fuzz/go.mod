module github.com/cmux-go/cmux/fuzz

go 1.25.0

require (
	github.com/cmux-go/cmux v0.0.0-00010101000000-000000000000
	github.com/pires/go-proxyproto v0.15.0
)

require golang.org/x/net v0.55.0 // indirect

replace github.com/cmux-go/cmux => ../
