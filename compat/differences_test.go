package compat

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// A difference is an outcome of a scenario that v0.1.5 and this library do
// not share. Scenarios that differ assert each library's outcome from this
// table (see expectDifference), so the table is the list of every
// difference the suite knows, and each entry is checked by its scenario.
type difference struct {
	// Scenario is the test's name without "Test" and without its lib=
	// element, e.g. "Shutdown/CMuxClose".
	Scenario string
	V015     string // what v0.1.5 does
	Ours     string // what we do by default (or with Restore, for "opt-in")
	// Why: the divergence rule's reason, one of "hang", "crash",
	// "protocol", "unbounded"; or "extension" for something v0.1.5 does
	// not do at all and no v0.1.5 program can rely on the absence of; or
	// "opt-in" for a behaviour that only an Option turns on.
	Why string
	// Restore is the Option that restores v0.1.5's behaviour ("" if none);
	// for "opt-in", the Option that turns the behaviour on.
	Restore string
}

var documentedDifferences = []difference{
	{
		Scenario: "RealClients/H2CBehindGRPCSendSettings",
		V015:     "HTTP2MatchHeaderFieldSendSettings answers the SETTINGS of every HTTP/2 client, h2c clients of the HTTP server too; their ACK of it reaches net/http's HTTP/2 server, which fails the connection (requests on it error)",
		Ours:     "no SETTINGS is written to a client whose first flight holds its HEADERS, and the ACK of a SETTINGS the mux wrote never reaches the child: h2c requests succeed",
		Why:      "protocol",
	},
	{
		Scenario: "MoreShutdown/CloseBeforeServe",
		V015:     "Serve after Close runs an accept loop anyway (accepting, matching and dropping or queueing connections) until the root listener is closed",
		Ours:     "Serve after Close returns at once with an error matching net.ErrClosed and ErrServerClosed",
		Why:      "hang",
	},
	{
		Scenario: "MoreShutdown/IndependentListeners",
		V015:     "closing a child listener closes the root listener (children embed it): Serve returns",
		Ours:     "by default the same (see Shutdown/HTTPServerShutdown); with IndependentListeners a child's Close stops deliveries to it alone (its connections are closed), Serve and the other children go on",
		Why:      "opt-in",
		Restore:  "IndependentListeners()",
	},
	{
		Scenario: "MatchingEdges/HTTP2HeaderField/FrameOverDefaultMaxSize",
		V015:     "reads frames up to 16 MiB while looking for HEADERS: a 20000-byte frame before HEADERS is skipped and the HEADERS match",
		Ours:     "a frame larger than the default SETTINGS_MAX_FRAME_SIZE (16384), which the client may not send before the server raises it, is a no-match at once",
		Why:      "protocol",
	},
	{
		Scenario: "MatchingEdges/HTTP2HeaderField/TruncatedHPACK",
		V015:     "matches on a field decoded before a header block whose HPACK ends mid-field (it never checks the block is complete)",
		Ours:     "a header block that does not decode completely is a no-match (every server fails such a connection with COMPRESSION_ERROR)",
		Why:      "protocol",
	},
	{
		Scenario: "MatchingEdges/HTTP2HeaderField/EvenStreamID",
		V015:     "matches HEADERS on an even stream id (2), which a client may not open",
		Ours:     "HEADERS on an even stream id is a no-match at once",
		Why:      "protocol",
	},
	{
		Scenario: "MatchingEdges/HTTP1/ControlCharInTarget",
		V015:     "HTTP1() checks only the version after the second space: a request line with a control byte in its target matches; a binary protocol behind HTTP1() (TLS, SOCKS, PostgreSQL) waits for a line end that never comes",
		Ours:     "a control byte (or DEL) before the version rules a request line out at once, so binary protocols fall through without waiting",
		Why:      "hang",
	},
	{
		Scenario: "MatchingEdges/HTTP1HeaderField/MalformedLineAfterField",
		V015:     "http.ReadRequest reads the whole head, without a bound, and a malformed line anywhere in it is a no-match",
		Ours:     "decides at the field, within MaxSniffBytes: what follows it is the server's to reject",
		Why:      "unbounded",
	},
	{
		Scenario: "MatchingEdges/HTTP1HeaderField/DuplicateHost",
		V015:     "http.ReadRequest rejects two Host fields anywhere in the head: no match",
		Ours:     "decides at the field, within MaxSniffBytes: what follows it is the server's to reject",
		Why:      "unbounded",
	},
	{
		Scenario: "MatchingEdges/HTTP1HeaderField/BadContentLength",
		V015:     "http.ReadRequest rejects an invalid Content-Length anywhere in the head: no match",
		Ours:     "decides at the field, within MaxSniffBytes: what follows it is the server's to reject",
		Why:      "unbounded",
	},
	{
		Scenario: "Matching/HTTP1Fast/PATCH",
		V015:     "HTTP1Fast() does not match PATCH: a PATCH request on a fresh connection goes to the next listener, or is closed",
		Ours:     "HTTP1Fast() matches PATCH",
		Why:      "protocol",
		Restore:  "",
	},
	{
		Scenario: "Defaults/MatchTimeout",
		V015:     "no read timeout unless SetReadTimeout: a silent client holds a goroutine and its buffer forever",
		Ours:     "matching is bounded by DefaultMatchTimeout (30 s), then matchers read a timeout error and the connection may still go to Any(); a silent client is not dropped within 1 s in either",
		Why:      "unbounded",
		Restore:  "MatchTimeout(0) or SetReadTimeout(0)",
	},
	{
		Scenario: "MatchingBounds/PrefixDecidesEarly",
		V015:     "prefix matchers (PrefixMatcher, HTTP1Fast, TLS) wait for the longest prefix plus one byte: a 3-byte SOCKS5 greeting behind HTTP1Fast() waits forever",
		Ours:     "a prefix matcher says no on the first byte that rules it out: the greeting goes to PrefixMatcher(\"\\x05\") at once",
		Why:      "hang",
	},
	{
		Scenario: "MatchingBounds/SniffLimit",
		V015:     "matchers may read any number of bytes while matching (a 100 KiB read matches)",
		Ours:     "matchers read at most DefaultMaxSniffBytes (64 KiB), then ErrSniffLimit: the 100 KiB matcher says no and the connection goes to Any()",
		Why:      "unbounded",
		Restore:  "MaxSniffBytes(n)",
	},
	{
		Scenario: "MatchingBounds/WriterBoundedByReadTimeout",
		V015:     "SetReadTimeout sets only a read deadline: a writer matcher blocked writing to a client that does not read blocks forever",
		Ours:     "the matching deadline bounds writes too: the write fails, the matcher says no, the connection goes to Any()",
		Why:      "hang",
	},
	{
		Scenario: "ErrorValues/ErrorsIsNetErrClosed/ErrListenerClosed",
		V015:     "errors.Is(ErrListenerClosed, net.ErrClosed) is false",
		Ours:     "true, so that the shutdown checks of code written for net listeners work on child listeners",
		Why:      "extension",
	},
	{
		Scenario: "ErrorValues/ErrorsIsNetErrClosed/ErrServerClosed",
		V015:     "errors.Is(ErrServerClosed, net.ErrClosed) is false",
		Ours:     "true",
		Why:      "extension",
	},
	{
		Scenario: "Crash/NewNil",
		V015:     "Serve of New(nil) dereferences the nil listener: the process crashes",
		Ours:     "Serve returns an error naming the nil listener; children's Accept returns ErrListenerClosed",
		Why:      "crash",
	},
	{
		Scenario: "Crash/ServeTwice",
		V015:     "two Serve calls run two accept loops; when the root closes, the second to return closes the children's channels again: the process crashes (close of closed channel)",
		Ours:     "the second Serve returns an error at once; the first goes on",
		Why:      "crash",
	},
	{
		Scenario: "Crash/MatcherPanics",
		V015:     "a matcher's panic, in the mux's goroutine, crashes the process",
		Ours:     "the connection is closed, the error handler gets an error matching ErrMatcherPanic, Serve goes on",
		Why:      "crash",
	},
	{
		Scenario: "Crash/HandleErrorNil",
		V015:     "HandleError(nil), then any error (an unmatched connection): the nil handler is called and the process crashes",
		Ours:     "a nil handler is the default one: keep serving",
		Why:      "crash",
	},
	{
		Scenario: "HTTP2InvalidFirstFrames/SettingsAckFirst",
		V015:     "HTTP2HeaderField reads past a SETTINGS ACK sent as the client's first frame and matches on the HEADERS that follow",
		Ours:     "a SETTINGS ACK as the first frame is a no-match at once (no server accepts such a connection; README: decide early on real impossibilities); the connection goes to the next listener",
		Why:      "protocol",
	},
	{
		Scenario: "HTTP2InvalidFirstFrames/DataBeforeHeaders",
		V015:     "HTTP2HeaderField reads past DATA on a stream not yet opened and matches on the HEADERS that follow",
		Ours:     "DATA before HEADERS is a no-match at once (a stream error in every server); the connection goes to the next listener",
		Why:      "protocol",
	},
	{
		Scenario: "HTTP2HeaderFieldWaitingClient",
		V015:     "HTTP2HeaderField (without SendSettings) writes nothing: a client that waits for the server's SETTINGS before its HEADERS, as grpc-go does, waits forever",
		Ours:     "once it has the preface and a client SETTINGS frame and would wait, the mux writes one SETTINGS frame (SETTINGS_NO_RFC7540_PRIORITIES=1); the child still reads exactly what the client sent",
		Why:      "hang",
	},
	{
		Scenario: "HTTP2HeaderFieldGRPCClient",
		V015:     "a grpc-go client behind HTTP2HeaderField never sends its HEADERS: the call times out",
		Ours:     "the call is served",
		Why:      "hang",
	},
	{
		Scenario: "HTTP2SendSettings/FirstFlightHasHeaders",
		V015:     "HTTP2MatchHeaderFieldSendSettings writes an empty SETTINGS frame for every client SETTINGS it reads, even when the HEADERS frame already arrived; the client ACKs SETTINGS the real server never sent",
		Ours:     "nothing is written when the first flight already holds the HEADERS",
		Why:      "protocol",
	},
	{
		Scenario: "HTTP2SendSettings/ClientWaits",
		V015:     "the mux's SETTINGS frame is empty and the client's ACK of it reaches the child's server, which never sent those SETTINGS (golang.org/x/net/http2 may answer PROTOCOL_ERROR)",
		Ours:     "the mux's SETTINGS declares SETTINGS_NO_RFC7540_PRIORITIES=1 and the child does not read the client's ACK of it",
		Why:      "protocol",
	},
	{
		Scenario: "ExposeConnectionState/Protocols",
		V015:     "the delivered connection of a tls.NewListener root has no ConnectionState: r.TLS is nil and net/http serves h2c (http.Protocols with SetUnencryptedHTTP2) inside the decrypted stream",
		Ours:     "by default the same (see TLSRoot); with ExposeConnectionState r.TLS is set and net/http no longer serves h2c inside TLS (it reads the preface as an HTTP/1 request)",
		Why:      "opt-in",
		Restore:  "ExposeConnectionState()",
	},
	{
		Scenario: "ExposeConnectionState/H2CHandler",
		V015:     "the delivered connection of a tls.NewListener root has no ConnectionState: r.TLS is nil and h2c.NewHandler serves HTTP/2 with prior knowledge inside the decrypted stream",
		Ours:     "by default the same (see TLSRoot); with ExposeConnectionState r.TLS is set on HTTP/1 requests; h2c.NewHandler still serves h2c inside TLS (it hijacks the \"PRI\" request whatever the connection)",
		Why:      "opt-in",
		Restore:  "ExposeConnectionState()",
	},
	{
		Scenario: "Shutdown/CMuxClose/RealServers",
		V015:     "the servers' Accept returns ErrServerClosed, they close their child listeners, which closes the root: Serve returns the root's accept error \"accept tcp ADDR: use of closed network connection\"",
		Ours:     "the same, except that Serve returns as soon as Close is called, with \"accept tcp ADDR: mux: server closed: use of closed network connection\" (matches net.ErrClosed and ErrServerClosed)",
		Why:      "hang",
	},
	{
		Scenario: "Shutdown/CMuxClose/ChildrenLeftOpen",
		V015:     "Close closes the children (their Accept returns ErrServerClosed) but Serve goes on accepting, matching and closing connections until the root listener is closed",
		Ours:     "Serve returns at once with an error that contains \"use of closed network connection\" and matches net.ErrClosed and ErrServerClosed; children's Accept returns ErrServerClosed; the root listener stays open for its owner to close, without error",
		Why:      "hang",
	},
	{
		Scenario: "Shutdown/QueuedConnections/CMuxClose",
		V015:     "connections queued for a child that never accepts stay open after Close until the root listener is closed: their clients hang",
		Ours:     "Close closes the queued connections at once",
		Why:      "hang",
	},
	{
		Scenario: "Shutdown/RootCloseWhileMatching",
		V015:     "after the root listener closes, Serve waits for every connection still being matched: a silent client holds Serve forever (no default read timeout)",
		Ours:     "Serve closes the connections being matched and returns at once",
		Why:      "hang",
	},
}

var validWhy = map[string]bool{"hang": true, "crash": true, "protocol": true, "unbounded": true, "extension": true, "opt-in": true}

var usedDifferences sync.Map // Scenario -> true

// scenarioName is t's name without the leading "Test" and the lib= element.
func scenarioName(t *testing.T) string {
	var parts []string
	for _, p := range strings.Split(strings.TrimPrefix(t.Name(), "Test"), "/") {
		if !strings.HasPrefix(p, "lib=") {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "/")
}

// expectDifference returns the documented difference of t's scenario and
// fails t at once if there is none: a scenario may assert different
// outcomes only where the table says so.
func expectDifference(t *testing.T) difference {
	t.Helper()
	name := scenarioName(t)
	for _, d := range documentedDifferences {
		if d.Scenario == name {
			usedDifferences.Store(name, true)
			return d
		}
	}
	t.Fatalf("scenario %q asserts a difference that documentedDifferences does not list", name)
	panic("unreachable")
}

func TestDocumentedDifferences(t *testing.T) {
	seen := map[string]bool{}
	for _, d := range documentedDifferences {
		if d.Scenario == "" || d.V015 == "" || d.Ours == "" {
			t.Errorf("%+v: scenario, v0.1.5 and ours must be described", d)
		}
		if !validWhy[d.Why] {
			t.Errorf("%s: why %q is not one of hang, crash, protocol, unbounded, extension, opt-in", d.Scenario, d.Why)
		}
		if d.Why == "opt-in" && d.Restore == "" {
			t.Errorf("%s: an opt-in difference must name its Option", d.Scenario)
		}
		if seen[d.Scenario] {
			t.Errorf("%s listed twice", d.Scenario)
		}
		seen[d.Scenario] = true
	}
}

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	// When the whole suite ran, every difference must have been checked by
	// its scenario: an entry no scenario uses is a claim nothing checks.
	if code == 0 && !inSubprocess && flagEmpty("test.run") && flagEmpty("test.skip") {
		for _, d := range documentedDifferences {
			if _, ok := usedDifferences.Load(d.Scenario); !ok {
				fmt.Fprintf(os.Stderr, "documentedDifferences: no scenario checked %q\n", d.Scenario)
				code = 1
			}
		}
	}
	os.Exit(code)
}

// flagEmpty reports whether the flag name is unset or empty.
func flagEmpty(name string) bool {
	f := flag.Lookup(name)
	return f == nil || f.Value.String() == ""
}

// crashScenarios are run by TestCrashHelper in a child process, for the
// scenarios where v0.1.5 crashes the process.
var crashScenarios = map[string]func(){}

// TestCrashHelper runs the crash scenario named by COMPAT_SUBPROCESS; it
// does nothing in the parent process.
func TestCrashHelper(t *testing.T) {
	if !inSubprocess {
		t.Skip("runs only in the child process started by crashes()")
	}
	f := crashScenarios[os.Getenv("COMPAT_SUBPROCESS")]
	if f == nil {
		t.Fatalf("no crash scenario %q", os.Getenv("COMPAT_SUBPROCESS"))
	}
	f()
}

// crashes runs the crash scenario name in a child process of the test
// binary and reports whether the process died of a panic, with its output.
func crashes(t *testing.T, name string) (bool, string) {
	t.Helper()
	if crashScenarios[name] == nil {
		t.Fatalf("no crash scenario %q", name)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelper$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "COMPAT_SUBPROCESS="+name)
	cmd.WaitDelay = time.Second
	timer := time.AfterFunc(30*time.Second, func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
	})
	defer timer.Stop()
	out, err := cmd.CombinedOutput()
	return err != nil && strings.Contains(string(out), "panic:"), string(out)
}
