package cpuserve

import (
	"bufio"
	"net"
	"net/http"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
)

// Every setup and probe serves its calls, those of an HTTP/1.1 client
// whose request comes late too (so that the probes that wait for a first
// byte wait in the poller), and stops, leaving no goroutine behind.
func TestStartServes(t *testing.T) {
	for _, proto := range []string{"http1", "grpc"} {
		setups := Setups
		if proto == "http1" {
			setups = append(slices.Clip(Setups), Probes...)
			if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
				setups = slices.DeleteFunc(setups, func(s string) bool { return s == "peek" || s == "wait" })
			}
		}
		for _, setup := range setups {
			t.Run(proto+"/"+setup, func(t *testing.T) {
				testcheck.CheckLeaks(t)
				root, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(Start(root, proto, setup, func(l net.Listener) net.Listener { return l }))
				addr := root.Addr().String()
				for range 3 {
					if err := Call(proto, addr); err != nil {
						t.Fatalf("call: %v", err)
					}
				}
				if proto == "http1" {
					for range 3 {
						lateCall(t, addr, 20*time.Millisecond)
					}
				}
			})
		}
	}
}

// lateCall makes one HTTP/1.1 request to addr whose bytes leave delay
// after the connection is established, and checks the response's status.
func lateCall(t *testing.T, addr string, delay time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	time.Sleep(delay)
	if _, err := c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("late request: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("late request: status %d", resp.StatusCode)
	}
}
