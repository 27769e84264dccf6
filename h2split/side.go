package h2split

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// kind is the kind of an outgoing item.
type kind uint8

const (
	kHeaders      kind = iota // a header block (HEADERS + CONTINUATION), encoded when written
	kData                     // DATA, flow-controlled
	kRST                      // RST_STREAM
	kWindowUpdate             // WINDOW_UPDATE
	kPing                     // PING (end: ACK)
	kSettings                 // SETTINGS
	kSettingsAck              // SETTINGS with ACK
	kTableSize                // apply the peer's SETTINGS_HEADER_TABLE_SIZE to the encoder
	kGoAway                   // GOAWAY (end: stop writing afterwards and close)
	kPreface                  // the client connection preface
	kClose                    // flush, then tear the client connection down
)

// out is one item for a side's writer: a control item, or an item of a
// stream's queue.
type out struct {
	kind     kind
	end      bool // END_STREAM; for kPing ACK; for kGoAway close after
	id       uint32
	code     http2.ErrCode
	n        uint32
	fields   []hpack.HeaderField
	data     []byte
	buf      *[]byte // pooled buffer data lives in, released once written
	ping     [8]byte
	settings []http2.Setting
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, defaultFrameSize); return &b }}

// chunk copies p into a buffer of its own: a pooled frame-sized one for
// large payloads, an exact-sized allocation for small ones (a pooled
// 16 KiB buffer per 69-byte gRPC message would cost more in cache misses
// than the allocation).
func chunk(p []byte) ([]byte, *[]byte) {
	if len(p) < 4096 {
		return append([]byte(nil), p...), nil
	}
	if len(p) <= defaultFrameSize {
		bp := chunkPool.Get().(*[]byte)
		return (*bp)[:copy(*bp, p)], bp
	}
	return append([]byte(nil), p...), nil
}

// half is one direction of a stream, as seen by the writer of the
// connection the direction flows into.
type half struct {
	q       []out  // headers, data, trailers, RST_STREAM, in order
	sendWin int32  // the receiving peer's stream window
	queued  bool   // in the side's ready list
	closed  bool   // END_STREAM or RST_STREAM taken for writing
	discard bool   // nothing more is forwarded in this direction
	arr     [3]out // q's first backing array: a unary call needs no other
}

// side is the writing half of one connection the splitter speaks on: the
// client connection, or a backend connection. Items are queued under the
// conn's mutex; one goroutine takes them in batches (collect) and writes
// them with the mutex released, encoding header blocks as it writes them,
// so that the HPACK encoder sees blocks in wire order.
type side struct {
	c    *conn
	l    *link // nil on the client side
	nc   net.Conn
	bw   *bufio.Writer // nil while idle: the buffer goes back to writerPool
	fr   *http2.Framer
	enc  *hpack.Encoder
	hbuf bytes.Buffer
	wake chan struct{}
	done <-chan struct{}

	// Guarded by c.mu.
	ctrl     []out
	ready    []*stream
	sendWin  int32  // the peer's connection window
	initWin  int32  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	kick     bool   // work queued since the writer was last woken
}

func newSide(c *conn, l *link, nc net.Conn, done <-chan struct{}) *side {
	w := &side{c: c, l: l, nc: nc, wake: make(chan struct{}, 1), done: done,
		sendWin: initialWindow, initWin: initialWindow, maxFrame: defaultFrameSize}
	w.fr = http2.NewFramer(w, nil)
	w.enc = hpack.NewEncoder(&w.hbuf)
	return w
}

func (w *side) half(s *stream) *half {
	if w.l == nil {
		return &s.down
	}
	return &s.up
}

// streamID is s's id on this side's connection.
func (w *side) streamID(s *stream) uint32 {
	if w.l == nil {
		return s.id
	}
	return s.bid
}

// signal marks the side as having work; the writer is woken when the
// conn mutex is released through unlock, so that the frames a reader
// takes from one read, or a writer's batch of credit, wake it once.
func (w *side) signal() { w.kick = true }

func (w *side) wakeUp() {
	if w.kick {
		w.kick = false
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// push queues a control item. c.mu held.
func (w *side) push(o out) {
	w.ctrl = append(w.ctrl, o)
	w.signal()
}

// schedule puts s in the ready list if its half has items. c.mu held.
func (w *side) schedule(s *stream) {
	h := w.half(s)
	if !h.queued && len(h.q) > 0 {
		h.queued = true
		w.ready = append(w.ready, s)
		w.signal()
	}
}

// A batch holds up to batchBytes of DATA, each frame counting frameCost
// more, so that small frames make batches of a bounded count too.
const (
	batchBytes = 64 << 10
	frameCost  = 64
)

// collect takes the control items, then visits the ready streams round
// robin until the batch is full, taking per visit a stream's header blocks
// and at most one DATA frame that the windows allow. Streams blocked on a window leave the ready list
// until a WINDOW_UPDATE or SETTINGS puts them back. c.mu held.
func (w *side) collect(batch []out) []out {
	batch = append(batch, w.ctrl...)
	clear(w.ctrl)
	w.ctrl = w.ctrl[:0]
	budget := batchBytes
	for len(w.ready) > 0 && budget > 0 {
		s := w.ready[0]
		w.ready[0] = nil
		w.ready = w.ready[1:]
		h := w.half(s)
		h.queued = false
		var more bool
		batch, budget, more = w.collectStream(s, h, batch, budget)
		if more && len(h.q) > 0 {
			h.queued = true
			w.ready = append(w.ready, s)
		}
	}
	if len(w.ready) == 0 {
		w.ready = nil // let the backing array go
	}
	return batch
}

// collectStream takes items from h; more reports whether it stopped for
// fairness rather than for want of window.
func (w *side) collectStream(s *stream, h *half, batch []out, budget int) ([]out, int, bool) {
	for len(h.q) > 0 {
		it := &h.q[0]
		switch it.kind {
		case kHeaders:
			if w.l != nil && s.bid == 0 {
				if w.l.draining || w.l.dead {
					// Stream ids ran out on this backend connection.
					w.c.reset(s, true, http2.ErrCodeRefusedStream)
					return batch, budget, false
				}
				if uint32(len(w.l.streams)) >= w.l.peerMaxStreams {
					// The backend's SETTINGS_MAX_CONCURRENT_STREAMS: wait
					// for one of its streams to close.
					if !s.waiting {
						s.waiting = true
						w.l.waiting = append(w.l.waiting, s)
					}
					return batch, budget, false
				}
				w.l.open(s)
			}
			o := *it
			o.id = w.streamID(s)
			o.n = w.maxFrame
			batch = append(batch, o)
			h.pop()
			if o.end {
				h.closed = true
				w.finished(s)
			}
			budget -= 256
		case kRST:
			o := *it
			o.id = w.streamID(s)
			batch = append(batch, o)
			h.q = nil
			h.closed = true
			if w.l == nil {
				s.clientEnded = true // RST_STREAM closes both directions
			}
			w.finished(s)
			return batch, budget, false
		case kData:
			n := int32(len(it.data))
			if n > 0 {
				avail := min(h.sendWin, w.sendWin, int32(w.maxFrame))
				if avail <= 0 {
					return batch, budget, false
				}
				if n > avail {
					batch = append(batch, out{kind: kData, id: w.streamID(s), data: it.data[:avail]})
					it.data = it.data[avail:]
					h.sendWin -= avail
					w.sendWin -= avail
					w.forwarded(s, avail)
					return batch, budget - int(avail) - frameCost, true
				}
				h.sendWin -= n
				w.sendWin -= n
				w.forwarded(s, n)
			}
			o := *it
			o.id = w.streamID(s)
			batch = append(batch, o)
			h.pop()
			budget -= int(n) + frameCost
			if o.end {
				h.closed = true
				w.finished(s)
				continue
			}
			return batch, budget, true
		default:
			panic("h2split: bad stream item")
		}
	}
	return batch, budget, false
}

// appendData queues p (copied) as DATA, with END_STREAM if end. Data
// follows the last queued DATA in the same item while that stays within a
// frame: frame boundaries mean nothing in HTTP/2, and a stream of small
// messages then costs one item, and one frame out, per 16 KiB. Appending
// is safe while the writer writes an earlier piece of the same item: the
// piece ends where the item's data began. c.mu held.
func (h *half) appendData(p []byte, end bool) {
	if n := len(h.q); n > 0 {
		last := &h.q[n-1]
		if last.kind == kData && !last.end && len(last.data)+len(p) <= defaultFrameSize {
			last.data = append(last.data, p...)
			last.end = end
			return
		}
	}
	o := out{kind: kData, end: end}
	if len(p) > 0 {
		o.data, o.buf = chunk(p)
	}
	h.q = append(h.q, o)
}

func (h *half) pop() {
	h.q[0] = out{}
	h.q = h.q[1:]
	if len(h.q) == 0 {
		h.q = h.arr[:0]
	}
}

// forwarded returns flow-control credit to the connection the data came
// from, now that n bytes of it left the splitter's buffers. c.mu held.
func (w *side) forwarded(s *stream, n int32) {
	if w.l != nil {
		w.c.creditStream(s, n)
	} else if s.link != nil {
		s.link.credit(s, n)
	}
}

// finished notes that this side wrote s's last frame. c.mu held.
func (w *side) finished(s *stream) {
	if w.l == nil {
		w.c.maybeRemove(s)
	} else {
		w.l.maybeRemove(s)
	}
}

// writerPool holds the write buffers of idle sides: an idle connection
// keeps none.
var writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}

// Write buffers p for the connection; the framer writes through it.
func (w *side) Write(p []byte) (int, error) {
	if w.bw == nil {
		w.bw = writerPool.Get().(*bufio.Writer)
		w.bw.Reset(w.nc)
	}
	return w.bw.Write(p)
}

// flush writes out what is buffered and releases the buffer.
func (w *side) flush() error {
	if w.bw == nil {
		return nil
	}
	err := w.bw.Flush()
	w.bw.Reset(nil)
	writerPool.Put(w.bw)
	w.bw = nil
	return err
}

var errStop = errors.New("h2split: writer stopped")

// run is the side's writing goroutine.
func (w *side) run() error {
	var batch []out
	for {
		w.c.mu.Lock()
		batch = w.collect(batch[:0])
		w.kick = false // it is awake
		w.c.unlock()
		if len(batch) == 0 {
			if err := w.flush(); err != nil {
				return err
			}
			select {
			case <-w.wake:
				continue
			case <-w.done:
				return errStop
			}
		}
		for i := range batch {
			if err := w.write(&batch[i]); err != nil {
				return err
			}
		}
		clear(batch)
	}
}

func (w *side) write(o *out) error {
	fr := w.fr
	switch o.kind {
	case kHeaders:
		w.hbuf.Reset()
		for _, f := range o.fields {
			if err := w.enc.WriteField(f); err != nil {
				return err
			}
		}
		return w.writeBlock(o.id, w.hbuf.Bytes(), o.end, int(o.n))
	case kData:
		err := fr.WriteData(o.id, o.end, o.data)
		if o.buf != nil {
			chunkPool.Put(o.buf)
		}
		return err
	case kRST:
		return fr.WriteRSTStream(o.id, o.code)
	case kWindowUpdate:
		return fr.WriteWindowUpdate(o.id, o.n)
	case kPing:
		return fr.WritePing(o.end, o.ping)
	case kSettings:
		return fr.WriteSettings(o.settings...)
	case kSettingsAck:
		return fr.WriteSettingsAck()
	case kTableSize:
		w.enc.SetMaxDynamicTableSizeLimit(o.n)
		return nil
	case kPreface:
		_, err := w.Write([]byte(http2.ClientPreface))
		return err
	case kGoAway:
		if err := fr.WriteGoAway(o.id, o.code, nil); err != nil {
			return err
		}
		if !o.end {
			return nil
		}
		if err := w.flush(); err != nil {
			return err
		}
		if cw, ok := w.nc.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite() //nolint:errcheck // the reader drains, then closes
			return errStop
		}
		return errors.New("h2split: connection error sent")
	case kClose:
		w.flush() //nolint:errcheck // closing anyway
		return errors.New("h2split: connection done")
	}
	return nil
}

// writeBlock writes a header block as HEADERS and CONTINUATION frames no
// larger than the peer's SETTINGS_MAX_FRAME_SIZE.
func (w *side) writeBlock(id uint32, block []byte, end bool, max int) error {
	first := block
	if len(first) > max {
		first = first[:max]
	}
	block = block[len(first):]
	err := w.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(block) == 0})
	for err == nil && len(block) > 0 {
		frag := block
		if len(frag) > max {
			frag = frag[:max]
		}
		block = block[len(frag):]
		err = w.fr.WriteContinuation(id, len(block) == 0, frag)
	}
	return err
}
