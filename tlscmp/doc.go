// Package tlscmp compares, on the same certificates and with the same
// clients, two ways of serving gRPC, HTTP/1.1 and HTTP/2 on one TLS port:
// github.com/cmux-go/cmux with TerminateTLS, and github.com/elastic/gmux.
// Its tests check what works in each (see the README's table), and its
// benchmarks measure the rate of new TLS connections each serves, against
// bare crypto/tls servers:
//
//	go -C tlscmp test -run '^$' -bench . -benchtime 2s
//
// It is a module of its own so that neither the cmux module nor its other
// nested modules depend on gmux.
package tlscmp
