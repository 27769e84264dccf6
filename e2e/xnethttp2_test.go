package e2e

//lint:file-ignore SA1019 the tests drive the x/net/http2 server and client on purpose: users run them, and the mux must work with them.

// x/net/http2's own HTTP/2 without TLS behind the mux: its h2c handler, its
// Server.ServeConn and its Transport. The root package's tests run net/http's
// HTTP/2 (x/net/http2, bundled) instead, so that they import no
// golang.org/x/net/http2, whose x/net/idna would make every module that
// requires the library download golang.org/x/text (scripts/check-deps).
// The root package's TestH2Matrix runs the same matcher chains with more
// clients (curl, nghttp, relays that pause or send a byte per write).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmux-go/cmux"
	"github.com/cmux-go/cmux/internal/wiretest"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
)

// Kinds of x/net REST server.
const (
	xnH2C       = "h2c-handler"  // h2c.NewHandler on an http.Server
	xnServeConn = "h2-serveconn" // http2.Server.ServeConn on each connection
)

// xnLog collects what servers log; the test fails if they log anything (an
// HTTP/2 server logs a connection error when it gets an ACK it did not ask
// for).
type xnLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *xnLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *xnLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// xnServe serves l with an x/net REST server of the given kind whose
// handler answers "name proto path".
func xnServe(t *testing.T, kind string, l net.Listener, name string, logw io.Writer) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s %s\n", name, r.Proto, r.URL.Path)
	})
	errLog := log.New(logw, kind+" "+name+": ", 0)
	switch kind {
	case xnH2C:
		serveHTTP(t, l, &http.Server{Handler: h2c.NewHandler(h, &http2.Server{}), ErrorLog: errLog})
	case xnServeConn:
		s := &http2.Server{}
		serveConns(t, l, func(c net.Conn) {
			s.ServeConn(c, &http2.ServeConnOpts{Handler: h, BaseConfig: &http.Server{ErrorLog: errLog}})
		})
	case "http1":
		serveHTTP(t, l, &http.Server{Handler: h, ErrorLog: errLog})
	default:
		t.Fatalf("unknown server kind %q", kind)
	}
}

// xnChain is one of the root package's h2Chains: its listeners are "grpc",
// "rest" (HTTP/2 REST), and maybe "other" (HTTP/2, content-type
// application/other) and "h1" (HTTP/1).
type xnChain struct {
	name  string
	h1    string // the listener HTTP/1.1 requests reach; "" if none
	other bool
	build func(m cmux.CMux) (grpcL net.Listener, rest map[string]net.Listener)
}

const xnCT = "content-type"

var xnChains = []xnChain{
	{
		name: "writer-grpc,any", h1: "rest",
		build: func(m cmux.CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(xnCT, "application/grpc"))
			return g, map[string]net.Listener{"rest": m.Match(cmux.Any())}
		},
	},
	{
		name: "writer-grpc,writer-other,http2", other: true,
		build: func(m cmux.CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(xnCT, "application/grpc"))
			o := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(xnCT, "application/other"))
			return g, map[string]net.Listener{"other": o, "rest": m.Match(cmux.HTTP2())}
		},
	},
	{
		name: "plain-grpc,http1fast,any", h1: "h1",
		build: func(m cmux.CMux) (net.Listener, map[string]net.Listener) {
			g := m.Match(cmux.HTTP2HeaderField(xnCT, "application/grpc"))
			h1 := m.Match(cmux.HTTP1Fast())
			return g, map[string]net.Listener{"h1": h1, "rest": m.Match(cmux.Any())}
		},
	},
	{
		name: "writer-grpc,http1fast,any", h1: "h1",
		build: func(m cmux.CMux) (net.Listener, map[string]net.Listener) {
			g := m.MatchWithWriters(cmux.HTTP2MatchHeaderFieldSendSettings(xnCT, "application/grpc"))
			h1 := m.Match(cmux.HTTP1Fast())
			return g, map[string]net.Listener{"h1": h1, "rest": m.Match(cmux.Any())}
		},
	},
}

// xnGet makes three requests with an x/net/http2 Transport over plain TCP
// and checks that they went over one connection to listener want.
func xnGet(t *testing.T, addr, contentType, want string) {
	var dials int
	var mu sync.Mutex
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 20 * time.Second}
	for _, p := range []string{"/a", "/b", "/slow"} {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+p, nil)
		require.NoError(t, err)
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := hc.Do(req)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, want+" HTTP/2.0 "+p+"\n", string(body))
	}
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 1, dials, "connections")
}

// xnGetHTTP1 makes an HTTP/1.1 request and checks that listener want got
// it.
func xnGetHTTP1(t *testing.T, addr, want string) {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 20 * time.Second}).Get("http://" + addr + "/h1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, want+" HTTP/1.1 /h1\n", string(body))
}

// xnRun runs name with args and returns its output and exit code; it
// skips the test if name is not installed, unless in CI.
func xnRun(t *testing.T, name string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	require.NoError(t, ctx.Err(), "%s %q timed out: %s", name, args, e.String())
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("%s: %v", name, err)
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func xnURLs(addr string, paths ...string) []string {
	var us []string
	for _, p := range paths {
		us = append(us, "http://"+addr+p)
	}
	return us
}

// xnCurl runs curl --http2-prior-knowledge once per URL (one request per
// connection, which every curl can do).
func xnCurl(t *testing.T, addr string) {
	for _, p := range []string{"/a", "/b"} {
		out, errOut, code := xnRun(t, "curl", "-sS", "--noproxy", "*", "--max-time", "20", "--http2-prior-knowledge", "http://"+addr+p)
		require.Zero(t, code, "curl exit code; stderr %q", errOut)
		require.Equal(t, "rest HTTP/2.0 "+p+"\n", out)
	}
}

// xnNghttp runs nghttp (HTTP/2 with prior knowledge) with three URLs on one
// connection and checks that no side sent a GOAWAY with an error.
func xnNghttp(t *testing.T, addr, name string, paths ...string) {
	out, errOut, code := xnRun(t, "nghttp", append([]string{"-v", "-t", "20"}, xnURLs(addr, paths...)...)...)
	require.Zero(t, code, "nghttp exit code; stderr %q; output:\n%s", errOut, out)
	for _, p := range paths {
		w := name + " HTTP/2.0 " + p + "\n"
		require.Equal(t, 1, strings.Count(out, w), "nghttp output has not %q once:\n%s", w, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "error_code=") {
			require.Contains(t, line, "error_code=NO_ERROR", "nghttp output:\n%s", out)
		}
	}
	require.NotContains(t, out+errOut, "[ERROR]", "nghttp output:\n%s", out)
	require.NotContains(t, out, "recv GOAWAY", "the server went away:\n%s", out)
}

// TestXNetHTTP2 runs x/net/http2's Transport (and net/http's HTTP/1.1
// client, curl and nghttp) against x/net/http2's servers behind every matcher chain of the
// root package's TestH2Matrix, with grpc-go's health server on the gRPC
// listener. No server may log an error: a stray ACK of the mux's SETTINGS
// makes x/net/http2 servers fail the connection and log it.
func TestXNetHTTP2(t *testing.T) {
	checkLeaks(t)
	for _, ch := range xnChains {
		for _, srv := range []string{xnH2C, xnServeConn} {
			t.Run(ch.name+"/"+srv, func(t *testing.T) {
				checkLeaks(t)
				logs := &xnLog{}
				t.Cleanup(func() { assert.Empty(t, logs.String(), "server error log") })
				m, start, addr := newMux(t, cmux.MatchTimeout(20*time.Second))
				gl, rest := ch.build(m)
				serveHealth(t, gl)
				for name, l := range rest {
					kind := srv
					if name == "h1" && srv == xnServeConn {
						kind = "http1" // ServeConn does not speak HTTP/1
					}
					xnServe(t, kind, l, name, logs)
				}
				start()

				xnGet(t, addr, "", "rest")
				t.Run("curl", func(t *testing.T) { xnCurl(t, addr) })
				t.Run("nghttp", func(t *testing.T) { xnNghttp(t, addr, "rest", "/a", "/b", "/slow") })
				if ch.other {
					xnGet(t, addr, "application/other", "other")
				}
				// http2.Server.ServeConn does not speak HTTP/1.
				if ch.h1 != "" && !(ch.h1 == "rest" && srv == xnServeConn) {
					xnGetHTTP1(t, addr, ch.h1)
				}
			})
		}
	}
}

// TestXNetHTTP2StrayAckControl shows, for x/net/http2's servers, why the
// ACK of the mux's SETTINGS must never reach the server: a bare server
// fails a connection that ACKs more SETTINGS than it sent, and logs it
// (which TestXNetHTTP2 checks). The root package's TestH2StrayAckControl
// does it for net/http's.
func TestXNetHTTP2StrayAckControl(t *testing.T) {
	checkLeaks(t)
	for _, kind := range []string{xnH2C, xnServeConn} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			l := listenLoopback(t)
			logs := &xnLog{}
			xnServe(t, kind, l, "bare", logs)
			c := dialTCP(t, l.Addr().String(), 10*time.Second)
			req := wiretest.Headers(1, wiretest.Block(":method", "GET", ":scheme", "http", ":path", "/", ":authority", "localhost"), true, 0, false)
			req[4] |= 0x1 // END_STREAM
			_, err := c.Write(wiretest.Cat([]byte(wiretest.Preface), wiretest.Settings(), wiretest.SettingsAck(), wiretest.SettingsAck(), req))
			require.NoError(t, err)
			fr := http2.NewFramer(io.Discard, c)
			var ga *http2.GoAwayFrame
			for ga == nil {
				f, err := fr.ReadFrame()
				require.NoError(t, err, "reading until GOAWAY")
				ga, _ = f.(*http2.GoAwayFrame)
			}
			require.Equal(t, http2.ErrCodeProtocol, ga.ErrCode)
			require.Eventually(t, func() bool { return strings.Contains(logs.String(), "PROTOCOL_ERROR") },
				5*time.Second, 10*time.Millisecond, "server log: %q", logs.String())
		})
	}
}

// TestXNetHTTP2CurlReuseControl shows, for x/net/http2's servers, that a
// curl that fails a second request over one prior-knowledge connection
// (curl/curl#10634, fixed in curl 8.0.0) does so without cmux: against
// bare servers it never sends that request, while nghttp does fine. The
// root package's TestH2CurlReuseControl does it for net/http's.
func TestXNetHTTP2CurlReuseControl(t *testing.T) {
	checkLeaks(t)
	out, _, _ := xnRun(t, "curl", "--version")
	version, _, _ := strings.Cut(out, "\n")
	for _, kind := range []string{xnH2C, xnServeConn} {
		t.Run(kind, func(t *testing.T) {
			checkLeaks(t)
			l := listenLoopback(t)
			xnServe(t, kind, l, "bare", io.Discard)
			us := xnURLs(l.Addr().String(), "/a", "/b")
			out, errOut, code := xnRun(t, "curl", append([]string{"-sS", "--noproxy", "*", "--max-time", "20", "--http2-prior-knowledge"}, us...)...)
			switch {
			case code == 0 && out == "bare HTTP/2.0 /a\nbare HTTP/2.0 /b\n":
				t.Skipf("%s reuses prior-knowledge HTTP/2 connections", version)
			case code == 16 && out == "bare HTTP/2.0 /a\n":
				require.Contains(t, errOut, "Error in the HTTP2 framing layer")
			default:
				t.Fatalf("unexpected curl result without cmux: exit %d, stdout %q, stderr %q", code, out, errOut)
			}
			xnNghttp(t, l.Addr().String(), "bare", "/a", "/b")
		})
	}
}
