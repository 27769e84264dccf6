package cmux_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"syscall"

	"github.com/cmux-go/cmux"
)

// On Linux, a listener with TCP_DEFER_ACCEPT returns a connection from
// Accept once its first bytes have arrived: the mux then matches it as
// soon as it is accepted, without waiting for its bytes, which is the
// cheapest path a new connection can take through the mux (see
// "Performance" in the README). A client that waits for the server to
// speak first (SMTP, MySQL, a Silent matcher's clients) is accepted only
// once at least the option's seconds have passed (the kernel rounds them
// up to its SYN-ACK retransmissions): use it only on a port whose clients
// all speak first.
func ExampleNew_deferAccept() {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		cerr := c.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_DEFER_ACCEPT, 5)
		})
		if cerr != nil {
			return cerr
		}
		return err
	}}
	l, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	m := cmux.New(l)
	httpL := m.Match(cmux.HTTP1Fast())
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	})}
	go s.Serve(httpL)
	go m.Serve()

	tr := &http.Transport{}
	resp, err := (&http.Client{Transport: tr}).Get("http://" + l.Addr().String() + "/")
	if err != nil {
		log.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Printf("%s\n", body)

	tr.CloseIdleConnections()
	s.Close()
	m.Close()
	l.Close()
	// Output: hello
}
