package cmuxmetrics_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/cmux-go/cmux"
)

// serveAndDrive serves HTTP/1.1 through a mux with hooks on a loopback
// port, listener named "http", and sends it three connections:
//
//   - an HTTP request, matched and delivered;
//   - garbage that no matcher wants, dropped (no_match);
//   - a TCP probe that connects and closes without sending, dropped
//     (no_bytes).
//
// The mux calls NotMatched after it closed the connection, so the client
// cannot tell when the hook ran: serveAndDrive then polls settled, which
// reports whether the metrics show all three, before it shuts down.
func serveAndDrive(hooks cmux.Hooks, settled func() bool) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer l.Close()
	m := cmux.NewWithOptions(l, cmux.WithHooks(hooks), cmux.MatchTimeout(5*time.Second))
	defer m.Close()
	httpL := cmux.Name(m.Match(cmux.HTTP1Fast()), "http")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	defer srv.Close()
	go srv.Serve(httpL)
	go m.Serve()
	addr := l.Addr().String()

	// A matched HTTP request.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()

	// Garbage: the mux closes the connection once the first byte rules
	// HTTP out.
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("\x00\x01garbage\r\n"))
	io.Copy(io.Discard, c) // until the mux closes it
	c.Close()

	// A TCP health probe: connect, then close without a byte.
	c, err = net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return err
	}
	c.Close()

	for deadline := time.Now().Add(10 * time.Second); !settled(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the metrics did not show the three connections in time")
		}
	}
	return nil
}
