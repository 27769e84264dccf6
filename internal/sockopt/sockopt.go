// Package sockopt sets the socket options that this repository's tests
// and benchmark servers need on their listeners. The library itself sets
// none: it leaves the listener it is given as it is.
package sockopt
