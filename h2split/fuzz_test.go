package h2split

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

var fuzzEnv struct {
	once sync.Once
	s    *Splitter
}

// fuzzSplitter is one splitter for the whole fuzzing process, with small
// windows and stream limits so that inputs reach their edges, and grpc-go
// and net/http behind it.
func fuzzSplitter() *Splitter {
	fuzzEnv.once.Do(func() {
		s := New(Config{StreamWindow: 65535, ConnWindow: 100000, MaxConcurrentStreams: 8, MaxHeaderListSize: 4096})
		g := newGRPCServer()
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		h := &http.Server{Handler: http.HandlerFunc(restHandler), Protocols: &p}
		go g.Serve(s.Listener(GRPC))  //nolint:errcheck
		go h.Serve(s.Listener(Other)) //nolint:errcheck
		fuzzEnv.s = s
	})
	return fuzzEnv.s
}

// seedFrames builds client frame sequences (after the preface) for the
// corpus.
func seedFrames() [][]byte {
	var seeds [][]byte
	build := func(fn func(fr *http2.Framer, enc func(...string) []byte)) {
		var buf bytes.Buffer
		fr := http2.NewFramer(&buf, nil)
		var hb bytes.Buffer
		e := hpack.NewEncoder(&hb)
		enc := func(kv ...string) []byte {
			hb.Reset()
			for i := 0; i+1 < len(kv); i += 2 {
				e.WriteField(hpack.HeaderField{Name: kv[i], Value: kv[i+1]}) //nolint:errcheck
			}
			return append([]byte(nil), hb.Bytes()...)
		}
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 100}) //nolint:errcheck
		fn(fr, enc)
		seeds = append(seeds, buf.Bytes())
	}
	get := []string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", "/"}
	grpcReq := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", unaryMethod, "content-type", "application/grpc", "te", "trailers"}
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(get...), EndStream: true, EndHeaders: true}) //nolint:errcheck
		fr.WriteWindowUpdate(1, 1000)                                                                                        //nolint:errcheck
		fr.WriteWindowUpdate(0, 1000)                                                                                        //nolint:errcheck
	})
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(grpcReq...), EndHeaders: true})              //nolint:errcheck
		fr.WriteData(1, false, grpcFrame([]byte("hello")))                                                                   //nolint:errcheck
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: enc(get...), EndStream: true, EndHeaders: true}) //nolint:errcheck
		fr.WriteData(1, true, nil)                                                                                           //nolint:errcheck
		fr.WritePing(false, [8]byte{1, 2, 3})                                                                                //nolint:errcheck
	})
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		post := []string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", "/echo", "content-length", "10"}
		block := enc(post...)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:3]}) //nolint:errcheck
		fr.WriteContinuation(1, true, block[3:])                                        //nolint:errcheck
		fr.WriteDataPadded(1, false, []byte("01234"), make([]byte, 7))                  //nolint:errcheck
		fr.WriteRSTStream(1, http2.ErrCodeCancel)                                       //nolint:errcheck
		fr.WritePriority(5, http2.PriorityParam{StreamDep: 1, Weight: 3})               //nolint:errcheck
		fr.WriteGoAway(0, http2.ErrCodeNo, nil)                                         //nolint:errcheck
	})
	build(func(fr *http2.Framer, enc func(...string) []byte) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc(grpcReq...), EndHeaders: true}) //nolint:errcheck
		for range 8 {
			fr.WriteData(1, false, make([]byte, 10000)) //nolint:errcheck
		}
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: enc("x-trailer", "1"), EndStream: true, EndHeaders: true})      //nolint:errcheck
		fr.WriteSettings(http2.Setting{ID: http2.SettingHeaderTableSize, Val: 0}, http2.Setting{ID: http2.SettingMaxFrameSize, Val: 20000}) //nolint:errcheck
	})
	return seeds
}

// FuzzClientFrames feeds arbitrary frame sequences to a splitter with
// real backends: it must neither panic nor hang, and must let the
// connection go when the client does.
func FuzzClientFrames(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, frames []byte) {
		s := fuzzSplitter()
		a, b, err := socketPair()
		if err != nil {
			t.Skip(err)
		}
		defer a.Close()
		served := make(chan error, 1)
		go func() { served <- s.ServeConn(b) }()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, a); close(drained) }() //nolint:errcheck
		a.Write([]byte(http2.ClientPreface))                   //nolint:errcheck
		a.Write(frames)                                        //nolint:errcheck
		time.Sleep(time.Millisecond)
		if cw, ok := a.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite() //nolint:errcheck
		} else {
			a.Close()
		}
		select {
		case <-served:
		case <-time.After(5 * time.Second):
			t.Fatal("ServeConn did not return after the client closed")
		}
		select {
		case <-drained:
		case <-time.After(5 * time.Second):
			t.Fatal("the splitter did not close the connection")
		}
	})
}

var _ net.Conn = (*backendConn)(nil)
