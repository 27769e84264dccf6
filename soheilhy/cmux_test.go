package cmux_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	main "github.com/cmux-go/cmux"
	"github.com/soheilhy/cmux"
)

// TestV015Program runs a v0.1.5-style program through this path: HTTP and
// a raw protocol on one port, ended by stopping one server.
func TestV015Program(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := cmux.New(l)
	httpL := m.Match(cmux.HTTP1Fast())
	rawL := m.Match(cmux.Any())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	go hs.Serve(httpL)
	go func() {
		for {
			c, err := rawL.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "raw")
			c.Close()
		}
	}()
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()

	tr := &http.Transport{DisableKeepAlives: true}
	resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("http://" + l.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello" {
		t.Errorf("HTTP got %q", b)
	}
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "\x00")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, _ := io.ReadAll(c); string(b) != "raw" {
		t.Errorf("raw got %q", b)
	}
	c.Close()

	// As in v0.1.5, stopping one server closes the root: Serve returns.
	hs.Close()
	select {
	case err := <-served:
		if !strings.Contains(err.Error(), "use of closed network connection") {
			t.Errorf("Serve() = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := rawL.Accept(); !errors.Is(err, cmux.ErrListenerClosed) {
		t.Errorf("Accept() = %v", err)
	}
}

// TestSameTypes: a program may mix both paths; the values are the same.
func TestSameTypes(t *testing.T) {
	var m main.CMux = cmux.New(nil)
	if _, ok := m.(main.Shutdowner); !ok {
		t.Error("the mux is not the main module's")
	}
	if cmux.ErrServerClosed != main.ErrServerClosed || cmux.ErrListenerClosed != main.ErrListenerClosed {
		t.Error("error values differ")
	}
}
