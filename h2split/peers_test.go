package h2split

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// need skips the test when a peer program is missing, except in CI,
// whose .ci/run installs it.
func need(t *testing.T, prog string) string {
	t.Helper()
	p, err := exec.LookPath(prog)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s missing in CI", prog)
		}
		t.Skipf("%s not installed", prog)
	}
	return p
}

func run(t *testing.T, timeout time.Duration, prog string, args ...string) string {
	t.Helper()
	cmd := exec.Command(prog, args...)
	done := make(chan struct{})
	timer := time.AfterFunc(timeout, func() {
		cmd.Process.Kill() //nolint:errcheck
		close(done)
	})
	outb, err := cmd.CombinedOutput()
	if !timer.Stop() {
		<-done
	}
	require.NoError(t, err, "%s %s:\n%s", prog, strings.Join(args, " "), outb)
	return string(outb)
}

func grpcBodyFile(t *testing.T, msg string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "grpc-body")
	require.NoError(t, os.WriteFile(f, grpcFrame([]byte(msg)), 0o600))
	return f
}

// curl makes gRPC and REST requests (a connection each: curl 7.88's
// reuse of an HTTP/2 prior-knowledge connection for a second transfer
// fails with "Error in the HTTP2 framing layer" against bare net/http
// too; shared connections are exercised with x/net, nghttp and h2load).
func TestCurl(t *testing.T) {
	testcheck.CheckLeaks(t)
	curl := need(t, "curl")
	e := start(t, Config{})
	body := grpcBodyFile(t, "hello over curl")
	dir := t.TempDir()
	base := "http://" + e.addr

	out := filepath.Join(dir, "g")
	run(t, 30*time.Second, curl, "-sS", "--http2-prior-knowledge", "-H", "content-type: application/grpc",
		"-H", "te: trailers", "--data-binary", "@"+body, "-D", out+".h", "-o", out, base+unaryMethod)
	b, err := os.ReadFile(out)
	require.NoError(t, err)
	msgs, err := readGRPC(strings.NewReader(string(b)))
	require.NoError(t, err)
	require.Len(t, msgs, 1)
	assert.Equal(t, "hello over curl", string(msgs[0]))
	h, err := os.ReadFile(out + ".h")
	require.NoError(t, err)
	assert.Contains(t, string(h), "grpc-status: 0")

	got := run(t, 30*time.Second, curl, "-sS", "--http2-prior-knowledge", base+"/")
	assert.Equal(t, "hello from net/http\n", got)
	got = run(t, 30*time.Second, curl, "-sS", "--http2-prior-knowledge", "--data-binary", "rest body", base+"/echo")
	assert.Equal(t, "rest body", got)
	got = run(t, 30*time.Second, curl, "-sS", "--http2-prior-knowledge", base+"/big?n=1000000")
	assert.Equal(t, string(numbered(7, 1000000)), got)
}

// nghttp fetches several REST resources on one connection, and makes a
// gRPC call.
func TestNghttp(t *testing.T) {
	testcheck.CheckLeaks(t)
	nghttp := need(t, "nghttp")
	e := start(t, Config{})
	base := "http://" + e.addr
	out := run(t, 30*time.Second, nghttp, "-nv", base+"/", base+"/big?n=200000", base+"/x")
	assert.Equal(t, 3, strings.Count(out, ":status: 200"), out)
	assert.Equal(t, 1, strings.Count(out, "Connected"), "one connection: %s", out)

	out = run(t, 30*time.Second, nghttp, "-nv", "-H", "content-type: application/grpc", "-H", "te: trailers",
		"-d", grpcBodyFile(t, "hi"), base+unaryMethod)
	assert.Contains(t, out, "grpc-status: 0")
}

// h2load drives gRPC and REST requests mixed on shared connections,
// routed by path: every request carries the same gRPC-framed body, which
// the REST backend echoes.
func TestH2loadMixed(t *testing.T) {
	testcheck.CheckLeaks(t)
	h2load := need(t, "h2load")
	e := start(t, Config{Route: func(r *Request) Backend {
		if strings.HasPrefix(r.Path, "/h2split.test.") {
			return GRPC
		}
		return Other
	}})
	uris := filepath.Join(t.TempDir(), "uris")
	base := "http://" + e.addr
	require.NoError(t, os.WriteFile(uris, []byte(base+unaryMethod+"\n"+base+"/echo\n"), 0o600))
	out := run(t, 60*time.Second, h2load, "-n", "2000", "-c", "4", "-m", "16", "-i", uris,
		"-H", "content-type: application/grpc", "-H", "te: trailers", "-d", grpcBodyFile(t, "load"))
	m := regexp.MustCompile(`requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored`).FindString(out)
	assert.NotEmpty(t, m, out)
	assert.Contains(t, out, "status codes: 2000 2xx", out)
}
