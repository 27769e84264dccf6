package cmux

// gRPC on the wire without grpc-go, so that this module's tests need no
// gRPC dependency: a health service served by net/http's HTTP/2, and
// a client that behaves on the wire as grpc-go's does. The tests with
// grpc-go itself, on both ends, are in the e2e module.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/wiretest/h2frame"
	"golang.org/x/net/http2/hpack"
)

const (
	grpcHealthPath = "/grpc.health.v1.Health/Check"
	// grpcServing is the status of grpc.health.v1.HealthCheckResponse
	// that means SERVING.
	grpcServing = 1
)

// grpcHealthServing is a gRPC message (the 5-byte prefix: uncompressed,
// length 2) holding HealthCheckResponse{status: SERVING}: field 1, varint,
// value 1.
var grpcHealthServing = []byte{0, 0, 0, 0, 2, 0x08, grpcServing}

// serveHealth serves l, until the test ends, with an HTTP/2 server
// (net/http, HTTP/2 alone with prior knowledge, as grpc-go's server) that
// answers grpc.health.v1.Health/Check for the server as a whole (the empty
// service name) with SERVING, as grpc-go's health service does.
func serveHealth(t testing.TB, l net.Listener) {
	serveHTTP(t, l, h2OnlyServer(t, http.HandlerFunc(grpcHealthHandler), nil))
}

// grpcHealthHandler answers a gRPC health check: SERVING for the empty
// service name, NOT_FOUND (status 5) for any other.
func grpcHealthHandler(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != grpcHealthPath ||
		!strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		http.Error(w, "not a gRPC health check", http.StatusUnsupportedMediaType)
		return
	}
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
	body, err := io.ReadAll(r.Body)
	switch {
	case err != nil || len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5:
		w.Header().Set("Grpc-Status", "13") // INTERNAL
		w.Header().Set("Grpc-Message", "malformed request message")
	case len(body) > 5: // a service name (field 1) is set
		w.Header().Set("Grpc-Status", "5") // NOT_FOUND
		w.Header().Set("Grpc-Message", "unknown service")
	default:
		_, _ = w.Write(grpcHealthServing)
		w.Header().Set("Grpc-Status", "0")
	}
}

// grpcWireCheck makes calls health checks on one new connection to addr,
// as grpc-go's client does on the wire: the preface, a SETTINGS and a
// WINDOW_UPDATE frame, then nothing until the first frame from the server,
// which must be SETTINGS (grpc-go fails the connection otherwise); then
// the ACK and, for each call, HEADERS and a DATA frame with the empty
// request. It fails unless every call gets SERVING with grpc-status 0. It
// returns errors instead of failing a test, so it can run in any
// goroutine.
func grpcWireCheck(addr string, calls int) (err error) {
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	var out bytes.Buffer
	fr := h2frame.NewFramer(&out, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	flush := func() error {
		_, err := c.Write(out.Bytes())
		out.Reset()
		return err
	}

	out.WriteString(h2frame.ClientPreface)
	if err := fr.WriteSettings(); err != nil {
		return err
	}
	if err := fr.WriteWindowUpdate(0, 1<<20); err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	f, err := fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("reading the server's first frame: %w", err)
	}
	if sf, ok := f.(*h2frame.SettingsFrame); !ok || sf.IsAck() {
		return fmt.Errorf("the server's first frame is %v, not SETTINGS", f.Header())
	}
	if err := fr.WriteSettingsAck(); err != nil {
		return err
	}

	var hbuf bytes.Buffer
	enc := hpack.NewEncoder(&hbuf)
	for call := range calls {
		stream := uint32(2*call + 1)
		hbuf.Reset()
		for _, kv := range [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", grpcHealthPath}, {":authority", addr},
			{"content-type", "application/grpc"}, {"user-agent", "grpc-go/1.85.0"}, {"te", "trailers"},
		} {
			if err := enc.WriteField(hpack.HeaderField{Name: kv[0], Value: kv[1]}); err != nil {
				return err
			}
		}
		if err := fr.WriteHeaders(h2frame.HeadersFrameParam{StreamID: stream, BlockFragment: hbuf.Bytes(), EndHeaders: true}); err != nil {
			return err
		}
		if err := fr.WriteData(stream, true, []byte{0, 0, 0, 0, 0}); err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
		if err := grpcWireResponse(fr, flush, stream); err != nil {
			return fmt.Errorf("call %d: %w", call+1, err)
		}
	}
	return nil
}

// grpcWireResponse reads frames up to the end of stream, answering the
// server's SETTINGS and PINGs, and checks that the call got SERVING.
func grpcWireResponse(fr *h2frame.Framer, flush func() error, stream uint32) error {
	var (
		headers bool   // the response headers came
		status  string // grpc-status
		msg     []byte
	)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case *h2frame.SettingsFrame:
			if !f.IsAck() {
				if err := fr.WriteSettingsAck(); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		case *h2frame.PingFrame:
			if !f.IsAck() {
				if err := fr.WritePing(true, f.Data); err != nil {
					return err
				}
				if err := flush(); err != nil {
					return err
				}
			}
		case *h2frame.GoAwayFrame:
			return fmt.Errorf("GOAWAY %v %q", f.ErrCode, f.DebugData())
		case *h2frame.RSTStreamFrame:
			return fmt.Errorf("RST_STREAM %v on stream %d", f.ErrCode, f.StreamID)
		case *h2frame.MetaHeadersFrame:
			if f.StreamID != stream {
				return fmt.Errorf("HEADERS on stream %d, want %d", f.StreamID, stream)
			}
			if !headers {
				headers = true
				if s := f.PseudoValue("status"); s != "200" {
					return fmt.Errorf(":status %q", s)
				}
				var ct string
				for _, hf := range f.RegularFields() {
					if hf.Name == "content-type" {
						ct = hf.Value
					}
				}
				if !strings.HasPrefix(ct, "application/grpc") {
					return fmt.Errorf("content-type %q", ct)
				}
			}
			for _, hf := range f.RegularFields() {
				if hf.Name == "grpc-status" {
					status = hf.Value
				}
			}
			if f.StreamEnded() {
				if status != "0" {
					return fmt.Errorf("grpc-status %q", status)
				}
				if !bytes.Equal(msg, grpcHealthServing) {
					return fmt.Errorf("response message %x, want %x (SERVING)", msg, grpcHealthServing)
				}
				return nil
			}
		case *h2frame.DataFrame:
			if f.StreamID != stream {
				return fmt.Errorf("DATA on stream %d, want %d", f.StreamID, stream)
			}
			msg = append(msg, f.Data()...)
			if f.StreamEnded() {
				return errors.New("the response ended without trailers")
			}
		}
	}
}
