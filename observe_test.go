package cmux

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventLog records what the hooks were told.
type eventLog struct {
	mu     sync.Mutex
	byKind map[string][]ConnEvent
	seen   chan string
}

func newEventLog() *eventLog {
	return &eventLog{byKind: map[string][]ConnEvent{}, seen: make(chan string, 100)}
}

func (e *eventLog) hooks() Hooks {
	rec := func(kind string) func(ConnEvent) {
		return func(ev ConnEvent) {
			e.mu.Lock()
			e.byKind[kind] = append(e.byKind[kind], ev)
			e.mu.Unlock()
			e.seen <- kind
		}
	}
	return Hooks{Accepted: rec("accepted"), Matched: rec("matched"), NotMatched: rec("notmatched"), Delivered: rec("delivered")}
}

// next waits for the next event of kind, skipping others, and returns it.
func (e *eventLog) next(t *testing.T, kind string) ConnEvent {
	t.Helper()
	for deadline := time.After(waitFor); ; {
		select {
		case k := <-e.seen:
			if k != kind {
				continue
			}
			e.mu.Lock()
			evs := e.byKind[kind]
			ev := evs[len(evs)-1]
			e.mu.Unlock()
			return ev
		case <-deadline:
			t.Fatalf("no %s event", kind)
		}
	}
}

// TestDropReasons: each way a connection is dropped, with a real client,
// reaches the error handler as an ErrNotMatched (or the error of its own
// kind) that matches its reason, and the NotMatched hook with that reason.
func TestDropReasons(t *testing.T) {
	checkLeaks(t)
	cases := []struct {
		name   string
		opts   []Option
		setup  func(x *servedMux)
		client func(t *testing.T, addr string) net.Conn
		reason error
	}{
		{
			name:  "TCP probe",
			setup: func(x *servedMux) { x.Match(PrefixMatcher("GET")) },
			client: func(t *testing.T, addr string) net.Conn {
				c := dialTCP(t, addr)
				c.Close()
				return nil
			},
			reason: ErrNoBytes,
		},
		{
			name:  "slow client",
			opts:  []Option{MatchTimeout(200 * time.Millisecond)},
			setup: func(x *servedMux) { x.Match(HTTP1HeaderField("X-A", "b")) },
			client: func(t *testing.T, addr string) net.Conn {
				return dialAndWrite(t, addr, "GET / HTTP/1.1\r\n")
			},
			reason: ErrMatchTimeout,
		},
		{
			name:  "first flight over the limit",
			opts:  []Option{MaxSniffBytes(1024)},
			setup: func(x *servedMux) { x.Match(HTTP1HeaderField("X-A", "b")) },
			client: func(t *testing.T, addr string) net.Conn {
				return dialAndWrite(t, addr, "GET / HTTP/1.1\r\nX-Long: "+strings.Repeat("a", 4096))
			},
			reason: ErrSniffLimit,
		},
		{
			name:  "garbage",
			setup: func(x *servedMux) { x.Match(HTTP1Fast()) },
			client: func(t *testing.T, addr string) net.Conn {
				return dialAndWrite(t, addr, "\x05\x01\x00")
			},
			reason: ErrNoMatch,
		},
		{
			name: "panicking matcher",
			setup: func(x *servedMux) {
				x.Match(func(r io.Reader) bool { panic("boom") })
			},
			client: func(t *testing.T, addr string) net.Conn {
				return dialAndWrite(t, addr, "x")
			},
			reason: ErrMatcherPanic,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			ev := newEventLog()
			var logBuf syncBuffer
			opts := append([]Option{WithHooks(ev.hooks()), WithLogger(slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))}, tc.opts...)
			x := newServedMux(t, opts...)
			errs := errorChan(x, 10)
			tc.setup(x)
			x.start(t)
			if c := tc.client(t, x.addr()); c != nil {
				requireClosedByPeer(t, c)
			}
			err := nextErr(t, errs)
			if !errors.Is(err, tc.reason) {
				t.Errorf("error handler got %v, want one matching %v", err, tc.reason)
			}
			if tc.reason != ErrMatcherPanic {
				var nm ErrNotMatched
				if !errors.As(err, &nm) {
					t.Errorf("error handler got %T, want ErrNotMatched", err)
				}
			}
			e := ev.next(t, "notmatched")
			if !errors.Is(e.Err, tc.reason) {
				t.Errorf("NotMatched hook got %v, want one matching %v", e.Err, tc.reason)
			}
			if e.Elapsed <= 0 || e.Conn == nil {
				t.Errorf("NotMatched event %+v lacks its connection or time", e)
			}
			if !strings.Contains(logBuf.String(), "connection dropped") {
				t.Errorf("nothing logged: %q", logBuf.String())
			}
		})
	}
}

// TestHooksDelivered: a delivered connection goes through Accepted,
// Matched and Delivered, with its listener's name, the matcher, the bytes
// sniffed and whether the mux wrote SETTINGS; nothing is logged for it.
func TestHooksDelivered(t *testing.T) {
	checkLeaks(t)
	ev := newEventLog()
	var logBuf syncBuffer
	x := newServedMux(t, WithHooks(ev.hooks()), WithLogger(slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	x.Match(PrefixMatcher("SSH-"))
	l := Name(x.Match(PrefixMatcher("XX"), PrefixMatcher("GET")), "web")
	ch := acceptChan(t, l)
	x.start(t)
	c := dialAndWrite(t, x.addr(), "GET / HTTP/1.1\r\n\r\n")
	defer c.Close()
	takeConn(t, ch).Close()

	if e := ev.next(t, "accepted"); e.Conn == nil {
		t.Error("Accepted without the connection")
	}
	m := ev.next(t, "matched")
	if m.Listener != "web" || m.ListenerIndex != 1 || m.MatcherIndex != 1 || m.Sniffed == 0 || m.WroteSettings {
		t.Errorf("Matched event %+v, want listener web (1), matcher 1, bytes sniffed, no SETTINGS", m)
	}
	d := ev.next(t, "delivered")
	if d.Listener != "web" || d.ListenerIndex != 1 || d.Elapsed < 0 {
		t.Errorf("Delivered event %+v", d)
	}
	if s := logBuf.String(); s != "" {
		t.Errorf("logged for a delivered connection: %q", s)
	}
}

// TestHooksClosedChild: a connection matched for a child closed meanwhile
// (IndependentListeners) is dropped with ErrListenerClosed.
func TestHooksClosedChild(t *testing.T) {
	checkLeaks(t)
	ev := newEventLog()
	x := newServedMux(t, IndependentListeners(), WithHooks(ev.hooks()))
	l := Name(x.Match(PrefixMatcher("A")), "a")
	x.start(t)
	l.Close()
	c := dialAndWrite(t, x.addr(), "A")
	requireClosedByPeer(t, c)
	e := ev.next(t, "notmatched")
	if !errors.Is(e.Err, ErrListenerClosed) || e.Listener != "a" {
		t.Errorf("NotMatched event %+v, want ErrListenerClosed for listener a", e)
	}
}

// TestNoLoggerNoLogs: without WithLogger nothing reaches slog's default
// logger, as with v0.1.5.
func TestNoLoggerNoLogs(t *testing.T) {
	checkLeaks(t)
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	x := newServedMux(t)
	errs := errorChan(x, 10)
	x.Match(HTTP1Fast())
	x.start(t)
	requireClosedByPeer(t, dialAndWrite(t, x.addr(), "\x05\x01\x00"))
	nextErr(t, errs)
	if buf.Len() != 0 {
		t.Errorf("logged without WithLogger: %q", buf.String())
	}
}
