// Package h2split serves gRPC and other HTTP/2 requests that share one
// HTTP/2 connection, as proxies such as Envoy, Istio and Cloud Run's
// end-to-end HTTP/2 send them, with grpc-go's native server and net/http's
// HTTP/2 server side by side, without grpc.Server.ServeHTTP.
//
// A Splitter speaks HTTP/2 to the client and routes each stream, by its
// request header block (content-type, :path, ...), to one of its backends.
// Each backend sees an ordinary HTTP/2 prior-knowledge connection of its
// own per client connection, accepted from Splitter.Listener:
//
//	s := h2split.New(h2split.Config{})
//	go grpcServer.Serve(s.Listener(h2split.GRPC))
//	go (&http.Server{Handler: h, Protocols: h2c}).Serve(s.Listener(h2split.Other))
//	s.Serve(cmuxListener) // client connections, e.g. matched by cmux.HTTP2()
//
// # What the splitter owns
//
// Frames are not relayed as bytes: every connection, the client's and each
// backend's, is a separate HTTP/2 connection with its own state, and the
// splitter is the server on the first and the client on the others.
//
//   - HPACK: header blocks are decoded with the receiving connection's
//     decoder and encoded again with the sending connection's encoder,
//     in the order they are written (the writer encodes).
//   - SETTINGS: each connection's own, each acknowledged; the peer's
//     INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE and HEADER_TABLE_SIZE apply to
//     what the splitter sends on that connection.
//   - PING is answered on the connection it came on (grpc-go's BDP and
//     keepalive pings included); it is never forwarded.
//   - Flow control is per hop: data is accepted within the windows the
//     splitter advertised, buffered, forwarded within the receiving
//     peer's windows, and only then granted back to the sender on its
//     stream (WINDOW_UPDATE once a quarter of a window is free).
//     Connection windows are granted back on receipt: the per-stream
//     windows bound the buffering (Config.StreamWindow times
//     Config.MaxConcurrentStreams per direction and client connection),
//     and a stream held back by a slow backend, or waiting for room under
//     a backend's MAX_CONCURRENT_STREAMS, does not stall the others.
//   - Stream ids: client ids are validated (odd, increasing); each
//     backend stream id is allocated when its HEADERS is taken for
//     writing, so ids increase in wire order on every backend connection.
//
// # State machine
//
// A stream is created by the client's HEADERS (idle -> open, or
// half-closed (remote) with END_STREAM) and routed then. Its two halves
// are queues:
//
//	up   (to the backend): HEADERS, DATA..., [trailers] | RST_STREAM
//	down (to the client):  HEADERS, DATA..., [trailers] | RST_STREAM
//
// Each connection has a writer that takes, under the connection mutex,
// control frames first, then round robin one DATA frame (or header block)
// per ready stream within the windows; a stream blocked on a window leaves
// the ready list until a WINDOW_UPDATE or SETTINGS makes room.
//
// Client-facing states (RFC 9113 §5.1), by the flags clientEnded (END_STREAM
// received), down.closed (END_STREAM or RST_STREAM written) and reset:
//
//	idle    --HEADERS-->              open
//	open    --END_STREAM recv-->      half-closed (remote)
//	open    --END_STREAM sent-->      half-closed (local)
//	any     --RST_STREAM sent/recv--> closed
//	both END_STREAMs                -> closed (removed from the table)
//
// Backend-facing states mirror them with up.closed and backendEnded; a
// stream leaves the backend's table when both are set or it was reset.
//
// Events and what they do:
//
//	client HEADERS (new id)      validate (§8.3), route, queue up; refused
//	                             (REFUSED_STREAM) if over MAX_CONCURRENT_
//	                             STREAMS, going away, or backend unavailable
//	client DATA / trailers       check windows and content-length, queue up
//	                             (small DATA merges into the queued item)
//	backend at its MAX_CONCURRENT_STREAMS
//	                             new streams' HEADERS wait, in order, until
//	                             one of its streams closes
//	client RST_STREAM            drop both queues, RST_STREAM CANCEL to the
//	                             backend if its stream was opened
//	backend HEADERS/DATA         queue down
//	backend RST_STREAM           NO_ERROR after a complete response: queued
//	                             after it; otherwise drop down, forward code
//	backend GOAWAY               no new streams on that connection (a new one
//	                             is dialled); streams above its last id are
//	                             refused to the client, so it retries them
//	backend connection lost      unanswered streams reset to the client
//	                             (REFUSED_STREAM if never sent, else
//	                             INTERNAL_ERROR); a backend connection not
//	                             accepted within 10 s counts as lost, its
//	                             streams refused
//	client GOAWAY, or Shutdown   no new streams; the connection closes when
//	                             its last stream closes (after a client's
//	                             GOAWAY, 1 s later: frames such as a PING
//	                             still get their answers)
//	protocol error by the client GOAWAY with the error, half-close, drain
//	                             briefly, close everything
//
// Errors the splitter detects are stream errors (RST_STREAM) or connection
// errors (GOAWAY) towards the client; nothing half-forwarded is left open.
// A client that queues more than a few thousand control frames (PING,
// SETTINGS) without reading the answers gets GOAWAY ENHANCE_YOUR_CALM.
//
// # Costs and limits
//
// Per client connection: a reading goroutine and a writing goroutine, and
// two more per backend connection; 16 KiB read buffers; write buffers only
// while there is something to write. Header blocks are decoded and encoded
// once per hop, DATA is copied once into the splitter's queues.
//
// The splitter speaks HTTP/2 with prior knowledge (or over a TLS
// connection the caller terminated, with ALPN h2); it does not do the
// HTTP/1.1 Upgrade to h2c, server push, or extended CONNECT. Idle client
// connections stay open until the client, Config.IdleTimeout, Shutdown or
// Close ends them; backend connections live as long as their client
// connection (or until the backend sends GOAWAY).
package h2split
