package h2split

import (
	"bufio"
	"errors"
	"math"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// link is the splitter's client end of one backend connection.
type link struct {
	c    *conn
	b    Backend
	nc   net.Conn // the splitter's end
	peer net.Conn // the backend's end, handed to Accept
	side *side
	done chan struct{}
	once sync.Once

	// Guarded by c.mu.
	streams        map[uint32]*stream // by backend stream id
	nextID         uint32
	recvWin        int32 // what the backend may still send on the connection
	credit_        int32
	waiting        []*stream // streams held back by the backend's stream limit
	peerMaxStreams uint32    // the backend's SETTINGS_MAX_CONCURRENT_STREAMS
	accepted       bool      // the backend server accepted the connection
	draining       bool      // GOAWAY received: no new streams
	goAwayID       uint32
	dead           bool
}

// linkFor returns the backend connection new streams for b go to,
// dialing one if needed; nil if b cannot take streams. c.mu held.
func (c *conn) linkFor(b Backend) *link {
	if b < 0 || b >= numBackends {
		return nil
	}
	if l := c.links[b]; l != nil {
		return l
	}
	select {
	case <-c.done: // torn down: no new backend connections
		return nil
	default:
	}
	bl := c.s.ls[b]
	if !bl.used.Load() || bl.closed() {
		return nil
	}
	a, p, err := socketPair()
	if err != nil {
		return nil
	}
	cfg := &c.s.cfg
	l := &link{c: c, b: b, nc: a, done: make(chan struct{}), streams: map[uint32]*stream{}, nextID: 1, recvWin: cfg.ConnWindow, peerMaxStreams: math.MaxUint32}
	l.peer = &backendConn{Conn: p, local: c.nc.LocalAddr(), remote: c.nc.RemoteAddr()}
	l.side = newSide(c, l, a, l.done)
	l.side.push(out{kind: kPreface})
	l.side.push(out{kind: kSettings, settings: []http2.Setting{
		{ID: http2.SettingEnablePush, Val: 0},
		{ID: http2.SettingInitialWindowSize, Val: uint32(cfg.StreamWindow)},
		{ID: http2.SettingMaxHeaderListSize, Val: 1 << 24},
	}})
	if cfg.ConnWindow > initialWindow {
		l.side.push(out{kind: kWindowUpdate, n: uint32(cfg.ConnWindow - initialWindow)})
	}
	c.links[b] = l
	c.allLinks[l] = struct{}{}
	c.s.backendConns.Add(1)
	c.wg.Add(2)
	go func() {
		defer c.wg.Done()
		err := l.side.run()
		if err != errStop {
			l.fail(err)
		}
	}()
	go func() {
		defer c.wg.Done()
		l.fail(l.readLoop(bl))
	}()
	return l
}

// shut closes the backend connection. Safe to call more than once.
func (l *link) shut() {
	l.once.Do(func() {
		close(l.done)
		l.nc.Close()
	})
}

// fail ends the link: streams it had not answered in full are reset
// towards the client (REFUSED_STREAM if the backend never saw them), and
// the connection closes.
func (l *link) fail(err error) {
	c := l.c
	c.mu.Lock()
	if !l.dead {
		l.dead = true
		if c.links[l.b] == l {
			c.links[l.b] = nil
		}
		for _, s := range c.streams {
			if s.link != l || s.reset {
				continue
			}
			if s.backendEnded {
				// The response is complete in the client's queue; what is
				// left of the request has nowhere to go.
				s.up.drop()
				s.up.discard = true
				s.inLink = false
				continue
			}
			code := http2.ErrCodeInternal
			if !l.accepted || s.bid == 0 || (l.draining && s.bid > l.goAwayID) {
				code = http2.ErrCodeRefusedStream
			}
			c.reset(s, true, code)
		}
		clear(l.streams)
		delete(c.allLinks, l)
	}
	c.unlock()
	l.shut()
	_ = err
}

// open assigns s the next backend stream id, as its HEADERS is taken for
// writing: ids increase in the order of HEADERS on the wire. c.mu held.
func (l *link) open(s *stream) {
	s.bid = l.nextID
	l.nextID += 2
	s.up.sendWin = l.side.initWin
	s.inLink = true
	l.streams[s.bid] = s
	if l.nextID > maxWindow {
		// Ids run out: new streams go to a new backend connection.
		l.draining = true
		l.goAwayID = maxWindow
		if l.c.links[l.b] == l {
			l.c.links[l.b] = nil
		}
	}
}

// forget removes s from the link's table. c.mu held.
func (l *link) forget(s *stream) {
	if s.inLink {
		s.inLink = false
		delete(l.streams, s.bid)
		l.release()
		l.maybeClose()
	}
}

// release puts the streams waiting for the backend's stream limit back in
// the ready list, in their order. c.mu held.
func (l *link) release() {
	if len(l.waiting) == 0 || uint32(len(l.streams)) >= l.peerMaxStreams {
		return
	}
	waiting := l.waiting
	l.waiting = nil
	for _, s := range waiting {
		s.waiting = false
		if !s.reset {
			l.side.schedule(s)
		}
	}
}

// maybeRemove forgets s once it is closed on the backend connection.
// c.mu held.
func (l *link) maybeRemove(s *stream) {
	if s.inLink && s.up.closed && s.backendEnded {
		l.forget(s)
	}
}

// maybeClose closes a draining link without streams. c.mu held.
func (l *link) maybeClose() {
	if l.draining && len(l.streams) == 0 && !l.dead {
		l.dead = true
		delete(l.c.allLinks, l)
		go l.shut()
	}
}

// credit grants n bytes back to the backend on s, once they left the
// splitter's buffers. c.mu held.
func (l *link) credit(s *stream, n int32) {
	if n <= 0 || !s.inLink || s.backendEnded || l.dead {
		return
	}
	s.linkCredit += n
	if s.linkCredit >= l.c.s.cfg.StreamWindow/4 {
		l.side.push(out{kind: kWindowUpdate, id: s.bid, n: uint32(s.linkCredit)})
		s.linkRecvWin += s.linkCredit
		s.linkCredit = 0
	}
}

// creditConn grants n bytes back to the backend on the connection.
// c.mu held.
func (l *link) creditConn(n int32) {
	if n <= 0 || l.dead {
		return
	}
	l.credit_ += n
	if l.credit_ >= l.c.s.cfg.ConnWindow/4 {
		l.side.push(out{kind: kWindowUpdate, n: uint32(l.credit_)})
		l.recvWin += l.credit_
		l.credit_ = 0
	}
}

var (
	errBackend     = errors.New("h2split: backend protocol error")
	errNotAccepted = errors.New("h2split: backend did not accept its connection in time")
)

// acceptTimeout bounds the wait for a backend server to Accept a backend
// connection (a Listener nobody serves): its streams are refused then.
var acceptTimeout = 10 * time.Second

// readLoop hands the backend's end to its listener, then reads what the
// backend sends.
func (l *link) readLoop(bl *listener) error {
	timer := time.NewTimer(acceptTimeout)
	select {
	case bl.ch <- l.peer:
		timer.Stop()
		l.c.mu.Lock()
		l.accepted = true
		l.c.mu.Unlock()
	case <-bl.done:
		l.peer.Close()
		return ErrClosed
	case <-l.done:
		l.peer.Close()
		return ErrClosed
	case <-timer.C:
		l.peer.Close()
		return errNotAccepted
	}
	r := bufio.NewReaderSize(l.nc, 16<<10)
	fr := http2.NewFramer(nil, r)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 24
	fr.SetMaxReadFrameSize(defaultFrameSize)
	fr.SetReuseFrames()
	first := true
	n := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return err
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return errBackend
			}
			first = false
		}
		l.c.mu.Lock()
		err = l.handle(f)
		if n++; n >= 16 || r.Buffered() == 0 {
			n = 0
			l.c.unlock()
		} else {
			l.c.mu.Unlock()
		}
		if err != nil {
			return err
		}
	}
}

// handle processes one frame from the backend. c.mu held.
func (l *link) handle(f http2.Frame) error {
	c := l.c
	w := l.side
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		s := l.streams[f.StreamID]
		if s == nil || s.backendEnded {
			return nil
		}
		if f.StreamEnded() {
			s.backendEnded = true
		}
		if !s.down.discard {
			s.down.q = append(s.down.q, out{kind: kHeaders, fields: f.Fields, end: f.StreamEnded()})
			c.client.schedule(s)
		}
		l.maybeRemove(s)
	case *http2.DataFrame:
		n := int32(f.Length)
		if n > l.recvWin {
			return errBackend
		}
		l.recvWin -= n
		l.creditConn(n) // at once, as on the client connection
		s := l.streams[f.StreamID]
		if s == nil || s.backendEnded {
			return nil
		}
		if n > s.linkRecvWin {
			c.reset(s, true, http2.ErrCodeInternal)
			return nil
		}
		s.linkRecvWin -= n
		data := f.Data()
		if pad := n - int32(len(data)); pad > 0 {
			l.credit(s, pad)
		}
		if f.StreamEnded() {
			s.backendEnded = true
		}
		if s.down.discard {
			l.credit(s, int32(len(data)))
		} else if len(data) > 0 || f.StreamEnded() {
			s.down.appendData(data, f.StreamEnded())
			c.client.schedule(s)
		}
		l.maybeRemove(s)
	case *http2.RSTStreamFrame:
		s := l.streams[f.StreamID]
		if s == nil {
			return nil
		}
		complete := s.backendEnded
		s.backendEnded = true
		l.forget(s)
		s.up.drop()
		s.up.discard = true
		if s.reset || s.down.closed {
			return nil
		}
		if f.ErrCode != http2.ErrCodeNo || !complete {
			c.reset(s, true, f.ErrCode)
			return nil
		}
		// RST_STREAM NO_ERROR after a complete response: the request body
		// is not wanted; tell the client once the response is out.
		s.down.q = append(s.down.q, out{kind: kRST, code: http2.ErrCodeNo})
		c.client.schedule(s)
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			if int64(w.sendWin)+int64(f.Increment) > maxWindow {
				return errBackend
			}
			w.sendWin += int32(f.Increment)
			for _, s := range l.streams {
				w.schedule(s)
			}
			return nil
		}
		if s := l.streams[f.StreamID]; s != nil {
			if int64(s.up.sendWin)+int64(f.Increment) > maxWindow {
				return errBackend
			}
			s.up.sendWin += int32(f.Increment)
			w.schedule(s)
		}
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		err := f.ForeachSetting(func(st http2.Setting) error {
			if err := st.Valid(); err != nil {
				return err
			}
			switch st.ID {
			case http2.SettingInitialWindowSize:
				delta := int32(st.Val) - w.initWin
				w.initWin = int32(st.Val)
				for _, s := range l.streams {
					s.up.sendWin += delta
					w.schedule(s)
				}
			case http2.SettingMaxFrameSize:
				w.maxFrame = st.Val
			case http2.SettingHeaderTableSize:
				w.push(out{kind: kTableSize, n: st.Val})
			case http2.SettingMaxConcurrentStreams:
				l.peerMaxStreams = st.Val
			}
			return nil
		})
		if err != nil {
			return err
		}
		l.release()
		w.push(out{kind: kSettingsAck})
	case *http2.PingFrame:
		if !f.IsAck() {
			w.push(out{kind: kPing, end: true, ping: f.Data})
		}
	case *http2.GoAwayFrame:
		l.draining = true
		l.goAwayID = f.LastStreamID
		if c.links[l.b] == l {
			c.links[l.b] = nil
		}
		for id, s := range l.streams {
			if id > f.LastStreamID {
				c.reset(s, true, http2.ErrCodeRefusedStream)
			}
		}
		// Streams queued for this link but not yet sent: refuse them too;
		// the client retries them.
		for _, s := range c.streams {
			if s.link == l && s.bid == 0 && !s.reset {
				c.reset(s, true, http2.ErrCodeRefusedStream)
			}
		}
		l.maybeClose()
	case *http2.PushPromiseFrame:
		return errBackend
	}
	return nil
}
