package cmuxgrpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"

	"google.golang.org/grpc/credentials"
)

// ErrNoTLSState is matched (errors.Is) by the error of TerminatedTLS's
// ServerHandshake for a connection without a completed TLS handshake: one
// that did not come from a mux made with cmux.TerminateTLS.
var ErrNoTLSState = errors.New("cmuxgrpc: connection has no TLS state")

// ErrNotH2 is matched (errors.Is) by the error of TerminatedTLS's
// ServerHandshake for a connection whose ALPN did not select "h2", which
// gRPC requires over TLS (as grpc-go's own TLS credentials do).
var ErrNotH2 = errors.New("cmuxgrpc: ALPN did not select h2")

// TerminatedTLS returns the server transport credentials of a grpc.Server
// that serves a child listener of a mux made with cmux.TerminateTLS:
//
//	gs := grpc.NewServer(grpc.Creds(cmuxgrpc.TerminatedTLS()))
//	go gs.Serve(m.Match(cmux.HTTP2HeaderFieldPrefix("content-type", "application/grpc")))
//
// The mux has done the TLS handshake; these credentials do none. Their
// ServerHandshake hands grpc-go the connection as it is, with a
// credentials.TLSInfo of its TLS state (client certificates, negotiated
// protocol, SPIFFE ID) and the security level PrivacyAndIntegrity, so that
// peer.FromContext(ctx).AuthInfo in a handler carries the client's
// identity, as with credentials.NewTLS. It refuses a connection without
// TLS state (ErrNoTLSState) and one that did not negotiate "h2" (ErrNotH2):
// give the mux a tls.Config whose NextProtos has "h2".
//
// ServerHandshake runs on the goroutine grpc-go starts for each connection.
// The credentials are for servers only: ClientHandshake fails.
func TerminatedTLS() credentials.TransportCredentials { return terminated{} }

type terminated struct{}

// ServerHandshake returns c and the AuthInfo of its TLS state.
func (terminated) ServerHandshake(c net.Conn) (net.Conn, credentials.AuthInfo, error) {
	cs, ok := c.(interface{ ConnectionState() tls.ConnectionState })
	if !ok {
		return nil, nil, fmt.Errorf("%w: %T from %v", ErrNoTLSState, c, c.RemoteAddr())
	}
	st := cs.ConnectionState()
	if !st.HandshakeComplete {
		return nil, nil, fmt.Errorf("%w: handshake not complete on %T from %v", ErrNoTLSState, c, c.RemoteAddr())
	}
	if st.NegotiatedProtocol != "h2" {
		return nil, nil, fmt.Errorf("%w: %q negotiated with %v", ErrNotH2, st.NegotiatedProtocol, c.RemoteAddr())
	}
	info := credentials.TLSInfo{
		State:          st,
		CommonAuthInfo: credentials.CommonAuthInfo{SecurityLevel: credentials.PrivacyAndIntegrity},
		SPIFFEID:       spiffeID(&st),
	}
	return c, info, nil
}

// spiffeID returns the SPIFFE ID of the client's certificate: its only URI
// SAN with the scheme spiffe, or nil.
func spiffeID(st *tls.ConnectionState) *url.URL {
	if len(st.PeerCertificates) == 0 {
		return nil
	}
	var id *url.URL
	for _, u := range st.PeerCertificates[0].URIs {
		if u.Scheme != "spiffe" {
			continue
		}
		if id != nil {
			return nil // more than one: none is the ID
		}
		id = u
	}
	return id
}

// errClientSide is the error of ClientHandshake.
var errClientSide = errors.New("cmuxgrpc: TerminatedTLS credentials are for servers only")

// ClientHandshake fails: the credentials are for servers only.
func (terminated) ClientHandshake(context.Context, string, net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errClientSide
}

// Info describes TLS.
func (terminated) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

// Clone returns the credentials (they have no state).
func (t terminated) Clone() credentials.TransportCredentials { return t }

// OverrideServerName does nothing: it concerns clients.
func (terminated) OverrideServerName(string) error { return nil }
