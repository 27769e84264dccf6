package cmux

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/smtp"
	"net/textproto"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// prWait bounds every wait of these tests.
const prWait = 10 * time.Second

// First flights of real clients, captured on the wire.
var (
	prOpenSSH      = "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u10\r\n"
	prSSLRequest   = "\x00\x00\x00\x08\x04\xd2\x16/" // psql sslmode=prefer
	prGSSENC       = "\x00\x00\x00\x08\x04\xd2\x160" // libpq gssencmode=prefer
	prCancel       = "\x00\x00\x00\x10\x04\xd2\x16.\x00\x00\x04\xd2\x12\x34\x56\x78"
	prStartup      = "\x00\x00\x001\x00\x03\x00\x00user\x00u\x00database\x00d\x00application_name\x00psql\x00\x00" // psql 15
	prCurlSOCKS5   = "\x05\x02\x00\x01"                                                                            // curl --socks5
	prCurlSOCKS5UP = "\x05\x03\x00\x01\x02"                                                                        // curl --socks5 -U user:pw
	prCurlSOCKS4   = "\x04\x01\x00\t\x7f\x00\x00\x01\x00"                                                          // curl --socks4
	prCurlSOCKS4a  = "\x04\x01\x00\t\x00\x00\x00\x01\x00example.test\x00"                                          // curl --socks4a
)

// prStall yields data in reads of at most chunk bytes (all it has if chunk
// is 0), then fails with end (errPrStall if nil), noting that the matcher
// asked for more.
type prStall struct {
	data  []byte
	chunk int
	end   error
	asked bool
}

var errPrStall = errors.New("matcher asked for more bytes")

func (r *prStall) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		r.asked = true
		if r.end != nil {
			return 0, r.end
		}
		return 0, errPrStall
	}
	n := len(r.data)
	if r.chunk > 0 {
		n = min(n, r.chunk)
	}
	n = copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// prMemConn is a connection that reads from a prStall, to run matchers
// through the mux's own sniffer without a network.
type prMemConn struct {
	net.Conn // nil: the sniffer only reads
	r        *prStall
}

func (c *prMemConn) Read(p []byte) (int, error)      { return c.r.Read(p) }
func (c *prMemConn) SetReadDeadline(time.Time) error { return nil }

var prPools = newBufferPools(DefaultMaxSniffBytes)

// prSniff runs m through a sniffer that reads r.
func prSniff(m Matcher, r *prStall) bool {
	mc := &MuxConn{Conn: &prMemConn{r: r}}
	mc.sniff = prPools.newSniffer(mc, DefaultMaxSniffBytes)
	defer mc.sniff.release()
	return m(mc.sniff)
}

// prCase is a matcher's input and verdict. need is the number of bytes
// that settle the verdict (the matcher must not ask for more once it has
// them); -1 if in does not settle it (the matcher must ask for more and,
// when the connection then ends, say no).
type prCase struct {
	in   string
	want bool
	need int
}

func prRun(t *testing.T, name string, m Matcher, cases []prCase) {
	t.Helper()
	for _, c := range cases {
		in := []byte(c.in)
		for chunk := 0; chunk <= 1; chunk++ {
			r := &prStall{data: in, chunk: chunk, end: io.EOF}
			assert.Equal(t, c.want, m(r), "%s(%q), chunk %d", name, c.in, chunk)
			r = &prStall{data: in, chunk: chunk, end: io.EOF}
			assert.Equal(t, c.want, prSniff(m, r), "%s(%q) through the sniffer, chunk %d", name, c.in, chunk)
		}
		if c.need < 0 {
			// It asks for more; when that fails, it decides on what came.
			r := &prStall{data: in}
			assert.Equal(t, c.want, m(r), "%s(%q) on a stalled connection", name, c.in)
			assert.True(t, r.asked, "%s(%q) decided without the bytes it needs", name, c.in)
			continue
		}
		// The first need bytes alone, whole or byte by byte, decide.
		for chunk := 0; chunk <= 1; chunk++ {
			r := &prStall{data: in[:c.need], chunk: chunk}
			assert.Equal(t, c.want, m(r), "%s(%q) on its first %d bytes", name, c.in, c.need)
			assert.False(t, r.asked, "%s(%q) asked for more than %d bytes", name, c.in, c.need)
			r = &prStall{data: in[:c.need], chunk: chunk}
			assert.Equal(t, c.want, prSniff(m, r), "%s(%q) through the sniffer on its first %d bytes", name, c.in, c.need)
			assert.False(t, r.asked, "%s(%q) through the sniffer asked for more than %d bytes", name, c.in, c.need)
		}
		if c.need > 0 {
			// One byte less does not decide.
			r := &prStall{data: in[:c.need-1]}
			m(r)
			assert.True(t, r.asked, "%s(%q) decided on %d bytes; the case says it needs %d", name, c.in, c.need-1, c.need)
		}
	}
}

func TestSSHMatcher(t *testing.T) {
	checkLeaks(t)
	prRun(t, "SSH", SSH(), []prCase{
		{prOpenSSH, true, 8},
		{"SSH-2.0-", true, 8},
		{"SSH-1.99-PuTTY_Release_0.60\r\n", true, 9},
		{"SSH-1.5-old\r\n", false, 7},
		{"SSH-2.1-x\r\n", false, 7},
		{"SSH-2.0", false, -1},
		{"ssh-2.0-x", false, 1},
		{"GET / HTTP/1.1\r\n", false, 1},
		{"", false, -1},
	})
}

func TestSOCKSMatchers(t *testing.T) {
	checkLeaks(t)
	prRun(t, "SOCKS4", SOCKS4(), []prCase{
		{prCurlSOCKS4, true, 2},
		{prCurlSOCKS4a, true, 2},
		{"\x04\x02\x00\x50\x0a\x00\x00\x01\x00", true, 2}, // BIND
		{"\x04\x03", false, 2},
		{prCurlSOCKS5, false, 1},
		{"\x04", false, -1},
	})
	prRun(t, "SOCKS5", SOCKS5(), []prCase{
		{"\x05\x01\x00", true, 3},
		{prCurlSOCKS5, true, 4},
		{prCurlSOCKS5UP, true, 5},
		{"\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50", true, 3}, // greeting and request at once
		{"\x05\x00", false, 2},
		{"\x05\x01\xff", false, 3},
		{"\x05\x03\x00\xff\x02", false, 4},
		{prCurlSOCKS4, false, 1},
		{"GET ", false, 1},
		{"\x05\x02\x00", false, -1},
		{"\x05", false, -1},
	})
}

func TestPostgresMatcher(t *testing.T) {
	checkLeaks(t)
	prRun(t, "PostgreSQL", PostgreSQL(), []prCase{
		{prSSLRequest, true, 8},
		{prGSSENC, true, 8},
		{prCancel, true, 8},
		{prStartup, true, 8},
		{"\x00\x00\x001\x00\x03\x00\x02user\x00u\x00\x00", true, 8},                          // protocol 3.2
		{"\x00\x00\x00\x2c\x04\xd2\x16.\x00\x00\x00\x01" + strings.Repeat("k", 32), true, 8}, // 3.2 cancel, long key
		{"\x00\x00\x27\x10\x00\x03\x00\x00", true, 8},                                        // the longest startup
		{"\x00\x00\x001\x00\x02\x00\x00", false, 6},                                          // protocol 2.0
		{"\x00\x00\x00\x08\x00\x03\x00\x00", false, 5},                                       // startup without parameters
		{"\x00\x00\x00\x10\x04\xd2\x16/", false, 8},                                          // SSLRequest of the wrong length
		{"\x00\x00\x00\x08\x04\xd2\x16.", false, 8},                                          // CancelRequest without a key
		{"\x00\x00\x00\x08\x04\xd2\x16\x31", false, 8},
		{"\x00\x00\x01\x0d\x04", false, 5}, // too long for a request
		{"\x00\x00\x27\x11", false, 4},     // longer than a server accepts
		{"\x00\x00\x28", false, 3},
		{"\x00\x00\x00\x07", false, 4},
		{"\x00\x01", false, 2},
		{"\x16\x03\x01\x02\x00", false, 1}, // TLS, sslnegotiation=direct
		{"GET / HTTP/1.1\r\n", false, 1},
		{"\x00\x00\x00\x08\x04\xd2\x16", false, -1},
		{"\x00\x00", false, -1},
	})
}

func TestRegexpMatcher(t *testing.T) {
	checkLeaks(t)
	re := regexp.MustCompile
	prRun(t, "Regexp(^SSH-2\\.0-)", Regexp(re(`^SSH-2\.0-`), 16), []prCase{
		{prOpenSSH, true, 8},
		{"SSH-2.1", false, 7},
		{"SSH-2.", false, -1},
	})
	prRun(t, "Regexp(metrics)", Regexp(re(`GET /metrics HTTP/1\.[01]\r\n`), 64), []prCase{
		{"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", true, 23},
		{"GET /other HTTP/1.1\r\n", false, 6}, // the literal prefix rules it out
		{"GET /metrics HTTP/2.0\r\n", false, 19},
		{"x GET /metrics HTTP/1.1\r\n", false, 1}, // anchored at the first byte
	})
	prRun(t, "Regexp(SOCKS5 one method)", Regexp(re(`\x05\x01\x00`), 8), []prCase{
		{"\x05\x01\x00", true, 3},
		{"\x05\x01\x02", false, 3},
	})
	// Without a literal prefix it reads until re matches or n bytes.
	prRun(t, "Regexp((?i)^get )", Regexp(re(`(?i)^get `), 8), []prCase{
		{"GeT /", true, 4},
		{"POST / H", false, 8},
		{"POST", false, -1},
	})
	// The match must lie within n bytes; it never reads beyond them.
	prRun(t, "Regexp(abcdef, 4)", Regexp(re(`abcdef`), 4), []prCase{
		{"abcdef", false, 4},
	})
	// An assertion about what follows: a match that ends with the bytes at
	// hand waits for the next byte or the end.
	prRun(t, "Regexp(^\\w+$)", Regexp(re(`^\w+$`), 4), []prCase{
		{"abcd", true, 4},
		{"ab c", false, 4},
		{"abc", true, -1}, // matches when the connection ends there...
	})
	prRun(t, "Regexp(^a\\b)", Regexp(re(`^a\b`), 10), []prCase{
		{"a b", true, 2},
		{"a", true, -1},
		{"ab", false, -1},
	})
	// Incomplete UTF-8 at the end waits for the rest of the rune.
	prRun(t, "Regexp(^é)", Regexp(re(`^é`), 4), []prCase{
		{"é", true, 2},
		{"e", false, 1},
		{"\xc3", false, -1},
	})
	prRun(t, "Regexp(^\\x{FFFD})", Regexp(re(`^\x{FFFD}`), 4), []prCase{
		{"\xc3(", true, 2},      // an invalid byte reads as U+FFFD
		{"\xc3", true, -1},      // ...but \xc3 may begin a valid rune
		{"\xc3\xa9", false, -1}, // no literal prefix: reads on
	})
	// A regexp that matches the empty string needs no byte.
	prRun(t, "Regexp(a*)", Regexp(re(`a*`), 4), []prCase{{"", true, 0}, {"xyz", true, 0}})

	assert.Panics(t, func() { Regexp(nil, 1) })
	assert.Panics(t, func() { Regexp(re(`x`), 0) })
	assert.Panics(t, func() { Silent(0) })
}

func TestRegexpLookahead(t *testing.T) {
	checkLeaks(t)
	for expr, want := range map[string]bool{
		`^abc`: false, `a\Ab`: false, `(?m)^a`: false, `[$]`: false, `\$`: false,
		`abc$`: true, `(?m)a$`: true, `a\z`: true, `a\b`: true, `a\Bb`: true, `(a|b$)c`: true,
		`\C(`: true, // does not parse: the safe answer
	} {
		assert.Equal(t, want, reLooksAhead(expr), expr)
	}
}

// A matcher decides on the bytes a client sends before it waits, through the
// mux and real TCP: none of these clients sends more until it gets an answer.
func TestSOCKSAndPostgresDecideWithoutWaiting(t *testing.T) {
	checkLeaks(t)
	x := prAllOnOnePort(t, MatchTimeout(time.Hour))
	for _, c := range []struct {
		first string
		l     net.Listener
	}{
		{"\x05\x01\x00", x.socks5},
		{prCurlSOCKS5, x.socks5},
		{prCurlSOCKS4, x.socks4},
		{prSSLRequest, x.pg},
		{prGSSENC, x.pg},
		{prCancel, x.pg},
		{"SSH-2.0-", x.ssh},
		{"\x05\x00", x.any}, // SOCKS5 says no on the second byte
	} {
		conn := prDial(t, x.addr)
		_, err := io.WriteString(conn, c.first)
		require.NoError(t, err)
		got := prAccept(t, c.l)
		assert.Equal(t, c.first, prReadN(t, got, len(c.first)), "bytes delivered for %q", c.first)
		_, err = io.WriteString(got, "ok")
		require.NoError(t, err)
		assert.Equal(t, "ok", prReadN(t, conn, 2))
	}
}

// --- one port, every protocol, real clients ---

// prPort is a mux on a TCP port with a listener per protocol. HTTP/1
// requests get "metrics" or "http" from servers on the metrics and http
// listeners; the others are for the test to accept.
type prPort struct {
	addr                                        string
	metrics, http, ssh, pg, socks4, socks5, any net.Listener
}

func prAllOnOnePort(t *testing.T, opts ...Option) *prPort {
	t.Helper()
	l := listenLoopback(t)
	m := NewWithOptions(l, opts...)
	x := &prPort{
		addr:    l.Addr().String(),
		metrics: m.Match(Regexp(regexp.MustCompile(`GET /metrics HTTP/1\.[01]\r\n`), 64)),
		http:    m.Match(HTTP1Fast()),
		ssh:     m.Match(SSH()),
		pg:      m.Match(PostgreSQL()),
		socks4:  m.Match(SOCKS4()),
		socks5:  m.Match(SOCKS5()),
		any:     m.Match(Any()),
	}
	serveMux(t, m, l)
	prServeText(t, x.metrics, "metrics")
	prServeText(t, x.http, "http")
	return x
}

// prServeText serves HTTP on l, answering every request with text.
func prServeText(t *testing.T, l net.Listener, text string) {
	serveHTTP(t, l, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		io.WriteString(w, text)
	})})
}

// prAccept accepts a connection from l within prWait; the cleanup closes it.
func prAccept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	type res struct {
		c   net.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := l.Accept()
		ch <- res{c, err}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		t.Cleanup(func() { r.c.Close() })
		require.NoError(t, r.c.SetDeadline(time.Now().Add(prWait)))
		return r.c
	case <-time.After(prWait):
		t.Fatal("no connection delivered")
		return nil
	}
}

func prDial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c := dialTCP(t, addr)
	require.NoError(t, c.SetDeadline(time.Now().Add(prWait)))
	return c
}

func prReadN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	b := make([]byte, n)
	_, err := io.ReadFull(r, b)
	require.NoError(t, err)
	return string(b)
}

// prBinary returns the path of a client binary; it skips t if there is
// none, unless CI is set.
func prBinary(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed: %v", name, err)
		}
		t.Skipf("%s is not installed", name)
	}
	return path
}

// prStart starts a client command; the returned function waits for it and
// returns its combined output and error.
func prStart(t *testing.T, name string, args ...string) func() (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	cmd := exec.CommandContext(ctx, prBinary(t, name), args...)
	// A private HOME and no proxy settings: the clients talk to the mux.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PGPASSWORD=", "PGSERVICEFILE=/dev/null")
	for _, v := range []string{"ALL_PROXY", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"} {
		cmd.Env = append(cmd.Env, v+"=", strings.ToLower(v)+"=")
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	var err error
	wait := func() (string, error) {
		once.Do(func() {
			err = cmd.Wait()
			cancel()
		})
		return out.String(), err
	}
	t.Cleanup(func() { wait() })
	return wait
}

func prPortOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

func TestSSHRealClient(t *testing.T) {
	checkLeaks(t)
	x := prAllOnOnePort(t)
	wait := prStart(t, "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=5", "-p", prPortOf(x.addr), "127.0.0.1", "true")
	c := prAccept(t, x.ssh)
	line, err := bufio.NewReader(c).ReadString('\n')
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(line, "SSH-2.0-"), "the SSH listener got %q", line)
	// Greet, then hang up: the client gives up.
	io.WriteString(c, "SSH-2.0-cmuxtest\r\n")
	c.Close()
	out, err := wait()
	assert.Error(t, err, "ssh output: %s", out)
	t.Logf("client sent %q; ssh said: %s", line, strings.TrimSpace(out))
}

func TestPostgresRealClient(t *testing.T) {
	checkLeaks(t)
	x := prAllOnOnePort(t)
	for _, sslmode := range []string{"prefer", "disable"} {
		t.Run(sslmode, func(t *testing.T) {
			wait := prStart(t, "psql", fmt.Sprintf("host=127.0.0.1 port=%s user=cmux dbname=test sslmode=%s gssencmode=disable connect_timeout=5",
				prPortOf(x.addr), sslmode), "-w", "-X", "-c", "select 1")
			c := prAccept(t, x.pg)
			if sslmode == "prefer" {
				require.Equal(t, prSSLRequest, prReadN(t, c, 8), "SSLRequest")
				io.WriteString(c, "N") // no TLS here: the client goes on in the clear
			}
			n := binary.BigEndian.Uint32([]byte(prReadN(t, c, 4)))
			require.True(t, n >= 8 && n < 10000, "StartupMessage length %d", n)
			msg := prReadN(t, c, int(n)-4)
			assert.Equal(t, "\x00\x03\x00\x00", msg[:4], "protocol 3.0")
			assert.Contains(t, msg, "user\x00cmux\x00")
			// Refuse, as a server would, with an ErrorResponse.
			body := "SFATAL\x00VFATAL\x00C28000\x00Mcmux test refuses\x00\x00"
			io.WriteString(c, "E"+string(binary.BigEndian.AppendUint32(nil, uint32(4+len(body))))+body)
			out, err := wait()
			assert.Error(t, err)
			assert.Contains(t, out, "cmux test refuses")
		})
	}
}

// prSOCKSServe answers a SOCKS4 or SOCKS5 client on c as a proxy that
// serves the HTTP request itself, with body.
func prSOCKSServe(t *testing.T, c net.Conn, body string) {
	t.Helper()
	br := bufio.NewReader(c)
	b := []byte(prReadN(t, br, 2))
	switch b[0] {
	case 4: // VN CD DSTPORT DSTIP USERID NUL [HOST NUL]
		hdr := prReadN(t, br, 6)
		_, err := br.ReadString(0)
		require.NoError(t, err)
		if hdr[2:5] == "\x00\x00\x00" && hdr[5] != 0 { // SOCKS4a
			_, err = br.ReadString(0)
			require.NoError(t, err)
		}
		io.WriteString(c, "\x00\x5a\x00\x00\x00\x00\x00\x00")
	case 5:
		methods := prReadN(t, br, int(b[1]))
		require.Contains(t, methods, "\x00", "no-authentication offered")
		io.WriteString(c, "\x05\x00")
		req := prReadN(t, br, 4)
		require.Equal(t, "\x05\x01\x00", req[:3], "CONNECT")
		switch req[3] {
		case 1:
			prReadN(t, br, 4+2)
		case 3:
			l := prReadN(t, br, 1)
			prReadN(t, br, int(l[0])+2)
		case 4:
			prReadN(t, br, 16+2)
		}
		io.WriteString(c, "\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
	default:
		t.Fatalf("not SOCKS: %q", b)
	}
	// The tunnel: one HTTP request, answered here.
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(line, "GET "), "request line %q", line)
	_, err = tp.ReadMIMEHeader()
	require.NoError(t, err)
	fmt.Fprintf(c, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
}

func TestSOCKSRealClient(t *testing.T) {
	checkLeaks(t)
	x := prAllOnOnePort(t)
	for _, c := range []struct {
		flag, url string
		l         net.Listener
	}{
		{"--socks5", "http://127.0.0.1:9/", x.socks5},
		{"--socks5-hostname", "http://example.test:9/", x.socks5},
		{"--socks4", "http://127.0.0.1:9/", x.socks4},
		{"--socks4a", "http://example.test:9/", x.socks4},
	} {
		t.Run(c.flag, func(t *testing.T) {
			wait := prStart(t, "curl", "-sS", "--max-time", "20", c.flag, x.addr, c.url)
			prSOCKSServe(t, prAccept(t, c.l), "via "+c.flag)
			out, err := wait()
			require.NoError(t, err, out)
			assert.Equal(t, "via "+c.flag, out)
		})
	}
	// Plain HTTP on the same port, split by Regexp.
	for path, want := range map[string]string{"/metrics": "metrics", "/other": "http"} {
		out, err := prStart(t, "curl", "-sS", "--max-time", "20", "http://"+x.addr+path)()
		require.NoError(t, err, out)
		assert.Equal(t, want, out, path)
	}
}

// A Regexp whose match may depend on the next byte waits for it, or for the
// end of matching: then it decides on what came.
func TestRegexpDecidesAtDeadline(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := NewWithOptions(l, MatchTimeout(300*time.Millisecond))
	word := m.Match(Regexp(regexp.MustCompile(`^[A-Z]+$`), 64))
	other := m.Match(Any())
	serveMux(t, m, l)

	c := prDial(t, l.Addr().String())
	io.WriteString(c, "HELLO") // and waits: the match stands at the deadline
	assert.Equal(t, "HELLO", prReadN(t, prAccept(t, word), 5))

	c = prDial(t, l.Addr().String())
	io.WriteString(c, "HELLO ") // the space undoes it at once
	assert.Equal(t, "HELLO ", prReadN(t, prAccept(t, other), 6))
}

// --- server speaks first ---

// prSMTP is a tiny SMTP server that greets first and records the messages
// it receives.
type prSMTP struct {
	msgs chan string
	wg   sync.WaitGroup
}

func prServeSMTP(t *testing.T, l net.Listener) *prSMTP {
	s := &prSMTP{msgs: make(chan string, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(prWait))
				s.session(textproto.NewConn(c))
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		s.wg.Wait()
	})
	return s
}

func (s *prSMTP) session(tc *textproto.Conn) {
	tc.PrintfLine("220 cmux.test ESMTP ready")
	for {
		line, err := tc.ReadLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		switch verb {
		case "EHLO":
			tc.PrintfLine("250-cmux.test")
			tc.PrintfLine("250 8BITMIME")
		case "HELO", "MAIL", "RCPT", "NOOP", "RSET":
			tc.PrintfLine("250 OK")
		case "DATA":
			tc.PrintfLine("354 go ahead")
			b, err := tc.ReadDotBytes()
			if err != nil {
				return
			}
			s.msgs <- string(b)
			tc.PrintfLine("250 queued")
		case "QUIT":
			tc.PrintfLine("221 bye")
			return
		default:
			tc.PrintfLine("502 not implemented")
		}
	}
}

// prSendMail sends a message with net/smtp, which waits for the greeting.
func prSendMail(t *testing.T, addr, body string) {
	t.Helper()
	c := prDial(t, addr)
	sc, err := smtp.NewClient(c, "cmux.test")
	require.NoError(t, err, "greeting")
	require.NoError(t, sc.Hello("client.test"))
	require.NoError(t, sc.Mail("a@client.test"))
	require.NoError(t, sc.Rcpt("b@cmux.test"))
	w, err := sc.Data()
	require.NoError(t, err)
	io.WriteString(w, body)
	require.NoError(t, w.Close())
	require.NoError(t, sc.Quit())
}

// prGet returns the body of a GET of url, or the error.
func prGet(url string) string {
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: prWait}).Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestSilentSpeaksFirstSMTP(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := New(l)
	smtpL := m.Match(Silent(200 * time.Millisecond))
	httpL := m.Match(HTTP1Fast())
	sshL := m.Match(SSH())
	serveMux(t, m, l)
	srv := prServeSMTP(t, smtpL)
	prServeText(t, httpL, "http")

	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.Equal(t, "http", prGet("http://"+l.Addr().String()+"/"))
		}()
		prSendMail(t, l.Addr().String(), fmt.Sprintf("Subject: %d\r\n\r\nhello %d\r\n", i, i))
		select {
		case msg := <-srv.msgs:
			assert.Equal(t, fmt.Sprintf("Subject: %d\n\nhello %d\n", i, i), msg)
		case <-time.After(prWait):
			t.Fatal("no message")
		}
	}
	wg.Wait()
	// An SSH client that speaks first still reaches SSH.
	c := prDial(t, l.Addr().String())
	io.WriteString(c, prOpenSSH)
	assert.Equal(t, prOpenSSH, prReadN(t, prAccept(t, sshL), len(prOpenSSH)))
}

// With Silent first, talkers are matched as soon as their first byte comes,
// however long d: were they held for d, this test would time out.
func TestSilentDoesNotDelayTalkers(t *testing.T) {
	checkLeaks(t)
	l := listenLoopback(t)
	m := NewWithOptions(l, MatchTimeout(time.Hour))
	smtpL := m.Match(Silent(time.Hour))
	httpL := m.Match(HTTP1Fast())
	anyL := m.Match(Any())
	serveMux(t, m, l)
	prServeSMTP(t, smtpL)
	prServeText(t, httpL, "http")
	for range 5 {
		assert.Equal(t, "http", prGet("http://"+l.Addr().String()+"/"))
	}
	c := prDial(t, l.Addr().String())
	io.WriteString(c, "x")
	time.Sleep(50 * time.Millisecond) // the rest comes later: bytes intact
	io.WriteString(c, "yz")
	assert.Equal(t, "xyz", prReadN(t, prAccept(t, anyL), 3))
}

// The matching deadline ends Silent's wait when it comes first; registered
// first or last, Silent then gets the silent connection.
func TestSilentMatchingDeadline(t *testing.T) {
	checkLeaks(t)
	for _, last := range []bool{false, true} {
		t.Run(fmt.Sprintf("last=%v", last), func(t *testing.T) {
			l := listenLoopback(t)
			m := NewWithOptions(l, MatchTimeout(300*time.Millisecond))
			var smtpL, httpL net.Listener
			if last {
				httpL = m.Match(HTTP1Fast())
				smtpL = m.Match(Silent(time.Hour))
			} else {
				smtpL = m.Match(Silent(time.Hour))
				httpL = m.Match(HTTP1Fast())
			}
			serveMux(t, m, l)
			srv := prServeSMTP(t, smtpL)
			prServeText(t, httpL, "http")
			prSendMail(t, l.Addr().String(), "hi\r\n")
			assert.Equal(t, "hi\n", <-srv.msgs)
			assert.Equal(t, "http", prGet("http://"+l.Addr().String()+"/"))
		})
	}
}

// prTCPPair returns the two ends of a TCP connection; the server end
// wrapped for matching with a sniffer whose matching deadline is deadline.
func prTCPPair(t *testing.T, deadline time.Time) (client net.Conn, mc *MuxConn) {
	t.Helper()
	l := listenLoopback(t)
	defer l.Close()
	client = prDial(t, l.Addr().String())
	server, err := l.Accept()
	require.NoError(t, err)
	t.Cleanup(func() { server.Close() })
	mc = &MuxConn{Conn: server}
	mc.sniff = prPools.newSniffer(mc, DefaultMaxSniffBytes)
	t.Cleanup(mc.sniff.release)
	if !deadline.IsZero() {
		mc.deadline = deadline.UnixNano()
	}
	require.NoError(t, server.SetReadDeadline(deadline))
	return client, mc
}

// Silent's timeout does not stick: it restores the matching deadline, and
// later matchers read what the client sends afterwards.
func TestSilentNotSticky(t *testing.T) {
	checkLeaks(t)
	for name, deadline := range map[string]time.Time{"no deadline": {}, "deadline": time.Now().Add(time.Minute)} {
		t.Run(name, func(t *testing.T) {
			client, mc := prTCPPair(t, deadline)
			s := mc.sniff
			require.True(t, Silent(20*time.Millisecond)(s), "silent client")
			require.NoError(t, s.err)
			// Had Silent left its own deadline (passed by now), this read
			// would fail at once.
			go func() {
				time.Sleep(20 * time.Millisecond)
				io.WriteString(client, "hello")
			}()
			s.rewind()
			assert.True(t, PrefixMatcher("hello")(s))
			s.rewind()
			assert.False(t, Silent(time.Hour)(s), "a client that spoke is not silent")
		})
	}
	t.Run("closed", func(t *testing.T) {
		client, mc := prTCPPair(t, time.Now().Add(time.Minute))
		client.Close()
		assert.False(t, Silent(time.Hour)(mc.sniff), "a client that closed is not silent")
	})
	t.Run("matching deadline first", func(t *testing.T) {
		_, mc := prTCPPair(t, time.Now().Add(50*time.Millisecond))
		s := mc.sniff
		assert.True(t, Silent(time.Hour)(s))
		assert.True(t, isTimeoutErr(s.err), "the matching deadline sticks: %v", s.err)
		s.rewind()
		assert.True(t, Silent(time.Hour)(s), "still silent after the deadline")
	})
	t.Run("foreign reader", func(t *testing.T) {
		assert.True(t, Silent(time.Second)(&prStall{end: os.ErrDeadlineExceeded}))
		assert.False(t, Silent(time.Second)(&prStall{end: io.EOF}))
		assert.False(t, Silent(time.Second)(&prStall{data: []byte("x")}))
	})
}

// --- fuzzing ---

// prCheckEarly checks m on in: whole, byte by byte and through the sniffer
// it says want (the verdict on in when the connection ends there); on every
// prefix of in it asks for more or already says want; and it does not ask
// for more on a prefix that settles the verdict.
func prCheckEarly(t *testing.T, name string, m Matcher, in []byte, want bool, settled func([]byte) bool) {
	t.Helper()
	for chunk := 0; chunk <= 1; chunk++ {
		if got := m(&prStall{data: in, chunk: chunk, end: io.EOF}); got != want {
			t.Fatalf("%s(%q) chunk %d = %v, want %v", name, in, chunk, got, want)
		}
		if got := prSniff(m, &prStall{data: in, chunk: chunk, end: io.EOF}); got != want {
			t.Fatalf("%s(%q) through the sniffer, chunk %d = %v, want %v", name, in, chunk, got, want)
		}
	}
	for k := 0; k <= len(in); k++ {
		r := &prStall{data: in[:k]}
		got := m(r)
		if !r.asked && got != want {
			t.Fatalf("%s(%q): said %v on the first %d bytes, %v on all", name, in, got, k, want)
		}
		if r.asked && settled(in[:k]) {
			t.Fatalf("%s(%q): asked for more than the %d bytes that settle it", name, in, k)
		}
	}
}

// prPrefixesSettled reports whether every continuation of p gives the same
// verdict of a matcher of strs: p has one of them, or begins none of them.
func prPrefixesSettled(strs ...string) func([]byte) bool {
	return func(p []byte) bool {
		for _, s := range strs {
			if strings.HasPrefix(string(p), s) || strings.HasPrefix(s, string(p)) {
				return strings.HasPrefix(string(p), s)
			}
		}
		return true
	}
}

func prHasAnyPrefix(p []byte, strs ...string) bool {
	for _, s := range strs {
		if strings.HasPrefix(string(p), s) {
			return true
		}
	}
	return false
}

func FuzzSSHSOCKS4(f *testing.F) {
	for _, s := range []string{prOpenSSH, "SSH-1.99-x", "SSH-1.5-", prCurlSOCKS4, prCurlSOCKS4a, "\x04\x03", "SSH-"} {
		f.Add([]byte(s))
	}
	ssh, socks4 := []string{"SSH-2.0-", "SSH-1.99-"}, []string{"\x04\x01", "\x04\x02"}
	f.Fuzz(func(t *testing.T, in []byte) {
		prCheckEarly(t, "SSH", SSH(), in, prHasAnyPrefix(in, ssh...), prPrefixesSettled(ssh...))
		prCheckEarly(t, "SOCKS4", SOCKS4(), in, prHasAnyPrefix(in, socks4...), prPrefixesSettled(socks4...))
	})
}

// prSOCKS5Greeting is the reference: in starts with a whole greeting.
func prSOCKS5Greeting(in []byte) bool {
	if len(in) < 2 || in[0] != 5 || in[1] == 0 || len(in) < 2+int(in[1]) {
		return false
	}
	return !bytes.Contains(in[2:2+int(in[1])], []byte{0xff})
}

func FuzzSOCKS5(f *testing.F) {
	for _, s := range []string{"\x05\x01\x00", prCurlSOCKS5, prCurlSOCKS5UP, "\x05\x00", "\x05\x02\x00\xff", "\x05\xff" + strings.Repeat("\x00", 255)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		settled := func(p []byte) bool {
			if len(p) >= 1 && p[0] != 5 || len(p) >= 2 && p[1] == 0 {
				return true
			}
			if len(p) < 2 {
				return false
			}
			end := 2 + int(p[1])
			return len(p) >= end || bytes.IndexByte(p[2:], 0xff) >= 0
		}
		prCheckEarly(t, "SOCKS5", SOCKS5(), in, prSOCKS5Greeting(in), settled)
	})
}

// prPGValid is the reference: h (8 bytes) is the header of a message a
// PostgreSQL client may start with.
func prPGValid(h []byte) bool {
	length, code := binary.BigEndian.Uint32(h), binary.BigEndian.Uint32(h[4:])
	switch {
	case code == 80877103, code == 80877104: // SSLRequest, GSSENCRequest
		return length == 8
	case code == 80877102: // CancelRequest
		return length >= 16 && length <= 12+256
	case code>>16 == 3: // StartupMessage 3.x
		return length > 8 && length <= 10000
	}
	return false
}

// prPGViable reports whether some valid header begins with p.
func prPGViable(p []byte) bool {
	if len(p) >= 8 {
		return prPGValid(p[:8])
	}
	var h [8]byte
	for length := 8; length <= 10000; length++ {
		binary.BigEndian.PutUint32(h[:], uint32(length))
		if !bytes.HasPrefix(h[:], p[:min(len(p), 4)]) {
			continue
		}
		for _, code := range []uint32{80877102, 80877103, 80877104, 3 << 16} {
			binary.BigEndian.PutUint32(h[4:], code)
			if code == 3<<16 && len(p) > 6 { // any minor version
				copy(h[6:], p[6:])
			}
			if bytes.HasPrefix(h[:], p) && prPGValid(h[:]) {
				return true
			}
		}
	}
	return false
}

func FuzzPostgreSQL(f *testing.F) {
	for _, s := range []string{prSSLRequest, prGSSENC, prCancel, prStartup, "\x00\x00\x001\x00\x02\x00\x00", "\x00\x00\x01\x0d\x04\xd2\x16.", "\x16\x03\x01"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		want := len(in) >= 8 && prPGValid(in[:8])
		settled := func(p []byte) bool { return len(p) >= 8 || !prPGViable(p) }
		prCheckEarly(t, "PostgreSQL", PostgreSQL(), in, want, settled)
	})
}

func FuzzRegexp(f *testing.F) {
	for _, c := range []struct {
		expr string
		in   string
		n    uint8
	}{
		{`^SSH-2\.0-`, prOpenSSH, 16},
		{`GET /metrics HTTP/1\.[01]\r\n`, "GET /metrics HTTP/1.1\r\n", 64},
		{`^\w+$`, "abc", 4},
		{`^a\b`, "a b", 8},
		{`(?m)a$`, "a\nb", 8},
		{`^\x{FFFD}`, "\xc3(", 4},
		{`é+\B`, "ééé", 8},
		{`a*`, "", 1},
		{`(?s).*?END`, "xxEND", 16},
		{`^(a|ab)(c|bcd)(d*)$`, "abcd", 10},
	} {
		f.Add(c.expr, []byte(c.in), c.n)
	}
	f.Fuzz(func(t *testing.T, expr string, in []byte, n uint8) {
		if len(expr) > 64 || n == 0 {
			return
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		text := in[:min(len(in), int(n))]
		loc := re.FindIndex(text)
		want := loc != nil && loc[0] == 0
		prefix, _ := re.LiteralPrefix()
		endSensitive := reLooksAhead(expr)
		settled := func(p []byte) bool {
			if len(p) >= int(n) {
				return true
			}
			k := min(len(p), len(prefix))
			if string(p[:k]) != prefix[:k] {
				return true
			}
			if endSensitive || len(p) < len(prefix) {
				return false
			}
			loc := re.FindIndex(completeRunes(p))
			return loc != nil && loc[0] == 0
		}
		prCheckEarly(t, "Regexp("+strconv.Quote(expr)+", "+strconv.Itoa(int(n))+")", Regexp(re, int(n)), in, want, settled)
	})
}
