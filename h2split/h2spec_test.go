package h2split

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// h2specVersion is the h2spec the conformance test builds when none is
// installed (h2spec.sh installs the same).
const h2specVersion = "github.com/summerwind/h2spec/cmd/h2spec@v2.2.1+incompatible"

// h2specBinary finds h2spec: $H2SPEC, the PATH, $GOPATH/bin, or a build of
// the pinned version into a temporary directory. "" if none can be had.
func h2specBinary(t *testing.T) string {
	if p := os.Getenv("H2SPEC"); p != "" {
		return p
	}
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	if gopath, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		p := filepath.Join(string(regexp.MustCompile(`\s+$`).ReplaceAll(gopath, nil)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "install", h2specVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Logf("building h2spec: %v\n%s", err, out)
		return ""
	}
	return filepath.Join(dir, "h2spec")
}

// TestH2spec runs h2spec's server tests (HTTP/2, HPACK, generic) against
// the splitter's client-facing side, with grpc-go and net/http behind it.
func TestH2spec(t *testing.T) {
	testcheck.CheckLeaks(t)
	if testing.Short() {
		t.Skip("short")
	}
	bin := h2specBinary(t)
	if bin == "" {
		t.Skip("h2spec cannot be installed here")
	}
	e := start(t, Config{})
	_, port, _ := net.SplitHostPort(e.addr)
	out := run(t, 120*time.Second, bin, "-h", "127.0.0.1", "-p", port, "-o", "2", "--strict")
	m := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	t.Logf("h2spec --strict: %s", m[0])
	assert.Equal(t, "0", m[4], out)
}
