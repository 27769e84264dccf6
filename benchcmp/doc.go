// Package benchcmp holds side-by-side benchmarks of github.com/cmux-go/cmux
// and github.com/soheilhy/cmux v0.1.5. It has no API: everything is in its
// tests.
//
// Each benchmark iteration is one connection on its full path: the root
// listener's Accept, the mux, the matchers, the child listener's Accept and
// the server's Close without reading. Both libraries run through the same
// harness (an in-memory listener and connection) and the same cases, named
// BenchmarkFullPath/case=<case>/lib=<v015|cmux|cmuxca> (cmuxca: with
// ConcurrentAccept), so that benchstat can pair them with -col /lib.
// BenchmarkTCPPath runs the same cases over loopback
// TCP, with a client dialing each connection, where a connection's first
// bytes may be there when the mux accepts it. BenchmarkIdleConns measures
// the memory and the goroutines the mux keeps per connection that has sent
// nothing yet.
//
// run.sh runs the benchmarks, benchstat and callgrind and writes RESULTS.md.
package benchcmp
