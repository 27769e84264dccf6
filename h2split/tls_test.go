//lint:file-ignore SA1019 the x/net HTTP/2 client is one of the clients the splitter must serve.

package h2split

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"golang.org/x/net/http2"
)

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TLS terminated in front of the splitter (ALPN h2): gRPC and REST on one
// TLS connection.
func TestTLS(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{selfSigned(t)}, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	served := make(chan struct{})
	go func() { e.split.Serve(l); close(served) }() //nolint:errcheck
	t.Cleanup(func() { l.Close(); <-served })

	addr := l.Addr().String()
	nc, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	require.NoError(t, err)
	require.Equal(t, "h2", nc.ConnectionState().NegotiatedProtocol)
	cc, err := (&http2.Transport{}).NewClientConn(nc)
	require.NoError(t, err)
	defer cc.Close()
	msgs, tr, err := grpcOverH2TLS(cc, addr, []byte("over tls"))
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "over tls", string(msgs[0]))
	assert.Equal(t, "0", tr.Get("grpc-status"))
	req, _ := http.NewRequest("POST", "https://"+addr+"/echo", bytes.NewReader([]byte("rest over tls")))
	resp, err := cc.RoundTrip(req)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "rest over tls", string(b))
}

func grpcOverH2TLS(cc *http2.ClientConn, addr string, msg []byte) ([][]byte, http.Header, error) {
	req, _ := http.NewRequest("POST", "https://"+addr+unaryMethod, bytes.NewReader(grpcFrame(msg)))
	req.Header.Set("content-type", "application/grpc")
	req.Header.Set("te", "trailers")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	msgs, err := readGRPC(resp.Body)
	return msgs, resp.Trailer, err
}

// Memory per client connection with both backends in use, idle: logged
// for the record, and bounded loosely.
func TestMemoryPerConnection(t *testing.T) {
	testcheck.CheckLeaks(t)
	e := start(t, Config{})
	const conns = 40
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapInuse
	}
	before := heap()
	var ccs []*http2.ClientConn
	for range conns {
		cc := e.h2Conn(t)
		ccs = append(ccs, cc)
		_, _, err := grpcOverH2(cc, e.addr, unaryMethod, bytes.NewReader(grpcFrame([]byte("x"))))
		require.NoError(t, err)
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://"+e.addr+"/", nil)
		resp, err := cc.RoundTrip(req)
		require.NoError(t, err)
		io.ReadAll(resp.Body) //nolint:errcheck
		resp.Body.Close()
	}
	per := (heap() - before) / conns
	t.Logf("heap per idle client connection, with its two backend connections, both servers' state and the x/net client's included: %d KiB", per>>10)
	assert.Less(t, per, uint64(1<<20))
	for _, cc := range ccs {
		cc.Close()
	}
}
