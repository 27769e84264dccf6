package h2split

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// stream is one client stream and, once routed, its backend stream.
type stream struct {
	id   uint32 // client stream id
	bid  uint32 // backend stream id; 0 until its HEADERS is taken for writing
	link *link  // nil for a stream answered by the splitter itself

	down half // towards the client
	up   half // towards the backend

	clientRecvWin int32 // what the client may still send (stream window granted)
	clientCredit  int32 // forwarded bytes not yet granted back
	linkRecvWin   int32 // what the backend may still send
	linkCredit    int32

	clientEnded  bool // END_STREAM received from the client (or reset)
	backendEnded bool // END_STREAM received from the backend (or reset)
	reset        bool // reset in either direction
	inClient     bool // in conn.streams
	inLink       bool // in link.streams
	waiting      bool // in link.waiting

	contentLength int64 // declared request content-length, or -1
	upBytes       int64
	req           Request
}

// conn is one client connection and its backend connections.
type conn struct {
	s  *Splitter
	nc net.Conn
	br *bufio.Reader
	fr *http2.Framer // reads from the client

	client *side
	done   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup

	mu         sync.Mutex
	streams    map[uint32]*stream
	links      [numBackends]*link // the link new streams go to
	allLinks   map[*link]struct{}
	lastID     uint32 // highest client stream id seen
	closedIDs  [64]uint32
	closedNext int
	recvWin    int32 // what the client may still send on the connection
	recvCredit int32
	idleTimer  *time.Timer // IdleTimeout, running while there is no stream
	linger     *time.Timer // after the client's GOAWAY (see maybeClose)
	goingAway  bool        // we sent GOAWAY
	peerGoAway bool        // the client sent GOAWAY
	closing    bool
}

func newConn(s *Splitter, nc net.Conn) *conn {
	c := &conn{s: s, nc: nc, done: make(chan struct{}), streams: map[uint32]*stream{}, allLinks: map[*link]struct{}{}}
	c.br = bufio.NewReaderSize(nc, 16<<10)
	c.fr = http2.NewFramer(nil, c.br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = s.cfg.MaxHeaderListSize
	c.fr.SetMaxReadFrameSize(defaultFrameSize) // SETTINGS_MAX_FRAME_SIZE is left at its default
	c.fr.SetReuseFrames()                      // DATA is copied before the next read
	c.client = newSide(c, nil, nc, c.done)
	return c
}

// unlock releases c.mu after waking the writers that have work.
func (c *conn) unlock() {
	c.client.wakeUp()
	for l := range c.allLinks {
		l.side.wakeUp()
	}
	c.mu.Unlock()
}

// teardown closes the client connection and every backend connection.
func (c *conn) teardown(error) {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		if c.idleTimer != nil {
			c.idleTimer.Stop()
		}
		if c.linger != nil {
			c.linger.Stop()
		}
		c.mu.Unlock()
		c.nc.Close()
		c.mu.Lock()
		links := make([]*link, 0, len(c.allLinks))
		for l := range c.allLinks {
			links = append(links, l)
		}
		c.mu.Unlock()
		for _, l := range links {
			l.shut()
		}
	})
}

func (c *conn) serve() error {
	cfg := &c.s.cfg
	c.mu.Lock()
	c.client.push(out{kind: kSettings, settings: []http2.Setting{
		{ID: http2.SettingMaxConcurrentStreams, Val: cfg.MaxConcurrentStreams},
		{ID: http2.SettingInitialWindowSize, Val: uint32(cfg.StreamWindow)},
		{ID: http2.SettingMaxHeaderListSize, Val: cfg.MaxHeaderListSize},
		{ID: http2.SettingEnablePush, Val: 0},
	}})
	if cfg.ConnWindow > initialWindow {
		c.client.push(out{kind: kWindowUpdate, n: uint32(cfg.ConnWindow - initialWindow)})
	}
	c.recvWin = cfg.ConnWindow
	if cfg.IdleTimeout > 0 {
		c.idleTimer = time.AfterFunc(cfg.IdleTimeout, c.goAway)
	}
	c.unlock()

	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if err := c.client.run(); err != errStop {
			c.teardown(err)
		}
	}()
	err := c.readLoop()
	c.teardown(err)
	c.wg.Wait()
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (c *conn) readLoop() error {
	var preface [len(http2.ClientPreface)]byte
	c.nc.SetReadDeadline(time.Now().Add(10 * time.Second)) //nolint:errcheck
	if _, err := io.ReadFull(c.br, preface[:]); err != nil {
		return err
	}
	c.nc.SetReadDeadline(time.Time{}) //nolint:errcheck
	if string(preface[:]) != http2.ClientPreface {
		return c.connError(http2.ErrCodeProtocol)
	}
	first := true
	n := 0 // frames handled since the writers were last woken
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				c.mu.Lock()
				c.streamError(se.StreamID, se.Code)
				c.unlock()
				continue
			case errors.As(err, &ce):
				return c.connError(http2.ErrCode(ce))
			case errors.Is(err, http2.ErrFrameTooLarge):
				return c.connError(http2.ErrCodeFrameSize)
			}
			return err
		}
		if first {
			if _, ok := f.(*http2.SettingsFrame); !ok {
				return c.connError(http2.ErrCodeProtocol)
			}
			first = false
		}
		c.mu.Lock()
		code := c.handle(f)
		if code == nil && len(c.client.ctrl) > maxQueuedControl {
			// PINGs, SETTINGS or refused streams faster than the client
			// reads the answers.
			code = protoErr(http2.ErrCodeEnhanceYourCalm)
		}
		if n++; n >= 16 || c.br.Buffered() == 0 {
			n = 0
			c.unlock()
		} else {
			c.mu.Unlock()
		}
		if code != nil {
			return c.connError(*code)
		}
	}
}

// maxQueuedControl bounds the control frames (PING and SETTINGS ACKs,
// WINDOW_UPDATE, RST_STREAM) queued for a client that does not read.
const maxQueuedControl = 4096

// connError sends GOAWAY with code, lets the writer half-close the
// connection, and drains what the client still sends for a moment.
func (c *conn) connError(code http2.ErrCode) error {
	c.mu.Lock()
	c.goingAway = true
	c.client.push(out{kind: kGoAway, id: c.lastID, code: code, end: true})
	c.unlock()
	c.nc.SetReadDeadline(time.Now().Add(time.Second)) //nolint:errcheck
	io.Copy(io.Discard, c.br)                         //nolint:errcheck
	return http2.ConnectionError(code)
}

// goAway starts a graceful shutdown of the connection: streams the client
// opened so far finish; the connection closes when none is left.
func (c *conn) goAway() {
	c.mu.Lock()
	defer c.unlock()
	if c.goingAway {
		return
	}
	c.goingAway = true
	c.client.push(out{kind: kGoAway, id: c.lastID, code: http2.ErrCodeNo})
	c.maybeClose()
}

func protoErr(code http2.ErrCode) *http2.ErrCode { return &code }

// handle processes one frame from the client; a non-nil result is a
// connection error. c.mu held.
func (c *conn) handle(f http2.Frame) *http2.ErrCode {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.onHeaders(f)
	case *http2.DataFrame:
		return c.onData(f)
	case *http2.SettingsFrame:
		return c.onSettings(f)
	case *http2.WindowUpdateFrame:
		return c.onWindowUpdate(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			c.client.push(out{kind: kPing, end: true, ping: f.Data})
		}
	case *http2.RSTStreamFrame:
		if s := c.streams[f.StreamID]; s != nil {
			c.reset(s, false, f.ErrCode)
		} else if c.idle(f.StreamID) {
			return protoErr(http2.ErrCodeProtocol)
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			c.streamError(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.GoAwayFrame:
		c.peerGoAway = true
		c.maybeClose()
	case *http2.PushPromiseFrame:
		return protoErr(http2.ErrCodeProtocol)
	}
	return nil
}

// idle reports whether id names a stream the client never opened.
func (c *conn) idle(id uint32) bool { return id > c.lastID }

func (c *conn) recentlyClosed(id uint32) bool {
	for _, x := range c.closedIDs {
		if x == id {
			return true
		}
	}
	return false
}

// streamError answers a stream error on stream id. c.mu held.
func (c *conn) streamError(id uint32, code http2.ErrCode) {
	if s := c.streams[id]; s != nil {
		c.reset(s, true, code)
		return
	}
	if id > c.lastID && id%2 == 1 {
		c.lastID = id
	}
	c.client.push(out{kind: kRST, id: id, code: code})
}

func (c *conn) onSettings(f *http2.SettingsFrame) *http2.ErrCode {
	if f.IsAck() {
		return nil
	}
	w := c.client
	var code *http2.ErrCode
	f.ForeachSetting(func(st http2.Setting) error { //nolint:errcheck // errors go to code
		if err := st.Valid(); err != nil {
			code = protoErr(http2.ErrCode(err.(http2.ConnectionError)))
			return err
		}
		switch st.ID {
		case http2.SettingInitialWindowSize:
			delta := int32(st.Val) - w.initWin
			w.initWin = int32(st.Val)
			for _, s := range c.streams {
				if int64(s.down.sendWin)+int64(delta) > maxWindow {
					code = protoErr(http2.ErrCodeFlowControl)
					return errors.New("window overflow")
				}
				s.down.sendWin += delta
				w.schedule(s)
			}
		case http2.SettingMaxFrameSize:
			w.maxFrame = st.Val
		case http2.SettingHeaderTableSize:
			w.push(out{kind: kTableSize, n: st.Val})
		}
		return nil
	})
	if code != nil {
		return code
	}
	w.push(out{kind: kSettingsAck})
	return nil
}

func (c *conn) onWindowUpdate(f *http2.WindowUpdateFrame) *http2.ErrCode {
	w := c.client
	if f.StreamID == 0 {
		if int64(w.sendWin)+int64(f.Increment) > maxWindow {
			return protoErr(http2.ErrCodeFlowControl)
		}
		w.sendWin += int32(f.Increment)
		for _, s := range c.streams {
			w.schedule(s)
		}
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if c.idle(f.StreamID) {
			return protoErr(http2.ErrCodeProtocol)
		}
		return nil
	}
	if int64(s.down.sendWin)+int64(f.Increment) > maxWindow {
		c.reset(s, true, http2.ErrCodeFlowControl)
		return nil
	}
	s.down.sendWin += int32(f.Increment)
	w.schedule(s)
	return nil
}

// connectionHeaders are the fields RFC 9113 §8.2.2 forbids in HTTP/2.
var connectionHeaders = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-connection": true,
	"transfer-encoding": true, "upgrade": true,
}

// request validates a request header block (RFC 9113 §8.3.1).
func request(f *http2.MetaHeadersFrame, r *Request) (*Request, int64, bool) {
	*r = Request{Fields: f.Fields}
	cl := int64(-1)
	var protocol bool
	for _, hf := range f.Fields {
		switch hf.Name {
		case ":method":
			r.Method = hf.Value
		case ":scheme":
			r.Scheme = hf.Value
		case ":authority":
			r.Authority = hf.Value
		case ":path":
			r.Path = hf.Value
			if hf.Value == "" {
				return nil, 0, false
			}
		case ":protocol":
			protocol = true
		case ":status":
			return nil, 0, false
		case "te":
			if hf.Value != "trailers" {
				return nil, 0, false
			}
		case "content-length":
			n, err := strconv.ParseInt(hf.Value, 10, 64)
			if err != nil || n < 0 || (cl >= 0 && cl != n) {
				return nil, 0, false
			}
			cl = n
		default:
			if connectionHeaders[hf.Name] {
				return nil, 0, false
			}
		}
	}
	if r.Method == "" {
		return nil, 0, false
	}
	if r.Method == "CONNECT" && !protocol {
		if r.Authority == "" || r.Scheme != "" || r.Path != "" {
			return nil, 0, false
		}
	} else if r.Scheme == "" || r.Path == "" {
		return nil, 0, false
	}
	return r, cl, true
}

func hasPseudo(fields []hpack.HeaderField) bool {
	return len(fields) > 0 && strings.HasPrefix(fields[0].Name, ":")
}

func (c *conn) onHeaders(f *http2.MetaHeadersFrame) *http2.ErrCode {
	id := f.StreamID
	if id%2 == 0 {
		return protoErr(http2.ErrCodeProtocol)
	}
	if s := c.streams[id]; s != nil {
		// Trailers.
		if s.clientEnded {
			c.reset(s, true, http2.ErrCodeStreamClosed)
			return nil
		}
		if !f.StreamEnded() || hasPseudo(f.Fields) || f.Truncated {
			c.reset(s, true, http2.ErrCodeProtocol)
			return nil
		}
		return c.endRequest(s, f.Fields, nil)
	}
	if id <= c.lastID {
		if c.recentlyClosed(id) {
			return protoErr(http2.ErrCodeStreamClosed)
		}
		return protoErr(http2.ErrCodeProtocol)
	}
	c.lastID = id
	if f.HasPriority() && f.Priority.StreamDep == id {
		c.streamError(id, http2.ErrCodeProtocol)
		return nil
	}
	if c.goingAway || uint32(len(c.streams)) >= c.s.cfg.MaxConcurrentStreams {
		c.streamError(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s := &stream{id: id, inClient: true,
		clientRecvWin: c.s.cfg.StreamWindow, linkRecvWin: c.s.cfg.StreamWindow}
	r, cl, ok := request(f, &s.req)
	if !ok {
		c.streamError(id, http2.ErrCodeProtocol)
		return nil
	}
	s.contentLength = cl
	s.up.q = s.up.arr[:0]
	s.down.q = s.down.arr[:0]
	s.down.sendWin = c.client.initWin
	c.streams[id] = s
	if c.idleTimer != nil && len(c.streams) == 1 {
		c.idleTimer.Stop()
	}
	if f.Truncated {
		// The splitter answers itself: header list too large.
		s.up.discard = true
		s.down.q = append(s.down.q, out{kind: kHeaders, end: true, fields: []hpack.HeaderField{{Name: ":status", Value: "431"}}})
		if f.StreamEnded() {
			s.clientEnded = true
		} else {
			// The request body is not wanted (RFC 9113 §8.1).
			s.down.q = append(s.down.q, out{kind: kRST, code: http2.ErrCodeNo})
		}
		c.client.schedule(s)
		return nil
	}
	b := c.s.cfg.Route(r)
	l := c.linkFor(b)
	if l == nil {
		delete(c.streams, id)
		s.inClient = false
		if c.idleTimer != nil && len(c.streams) == 0 {
			c.idleTimer.Reset(c.s.cfg.IdleTimeout)
		}
		c.streamError(id, http2.ErrCodeRefusedStream)
		return nil
	}
	s.link = l
	s.up.q = append(s.up.q, out{kind: kHeaders, fields: f.Fields, end: f.StreamEnded()})
	if f.StreamEnded() {
		if s.contentLength > 0 {
			c.reset(s, true, http2.ErrCodeProtocol)
			return nil
		}
		s.clientEnded = true
	}
	l.side.schedule(s)
	return nil
}

// endRequest queues the last item of a request (trailers or the last
// DATA), checking the declared content-length. c.mu held.
func (c *conn) endRequest(s *stream, trailers []hpack.HeaderField, data []byte) *http2.ErrCode {
	if s.contentLength >= 0 && s.upBytes != s.contentLength {
		c.reset(s, true, http2.ErrCodeProtocol)
		return nil
	}
	s.clientEnded = true
	if s.up.discard {
		c.maybeRemove(s)
		return nil
	}
	if trailers != nil {
		s.up.q = append(s.up.q, out{kind: kHeaders, fields: trailers, end: true})
	} else {
		s.up.appendData(data, true)
	}
	s.link.side.schedule(s)
	return nil
}

func (c *conn) onData(f *http2.DataFrame) *http2.ErrCode {
	id := f.StreamID
	n := int32(f.Length)
	if n > c.recvWin {
		return protoErr(http2.ErrCodeFlowControl)
	}
	// The connection window is granted back at once: what the splitter
	// buffers is bounded per stream (see Config.StreamWindow), and one
	// stream waiting for its backend must not hold up the others.
	c.recvWin -= n
	c.creditConn(n)
	s := c.streams[id]
	if s == nil {
		if c.idle(id) {
			return protoErr(http2.ErrCodeProtocol)
		}
		c.client.push(out{kind: kRST, id: id, code: http2.ErrCodeStreamClosed})
		return nil
	}
	if s.clientEnded {
		c.reset(s, true, http2.ErrCodeStreamClosed)
		return nil
	}
	if n > s.clientRecvWin {
		c.reset(s, true, http2.ErrCodeFlowControl)
		return nil
	}
	s.clientRecvWin -= n
	data := f.Data()
	if pad := n - int32(len(data)); pad > 0 {
		c.creditStream(s, pad)
	}
	s.upBytes += int64(len(data))
	if s.contentLength >= 0 && s.upBytes > s.contentLength {
		c.reset(s, true, http2.ErrCodeProtocol)
		return nil
	}
	if s.up.discard {
		c.creditStream(s, int32(len(data)))
		data = nil
	}
	if f.StreamEnded() {
		return c.endRequest(s, nil, data)
	}
	if len(data) > 0 {
		s.up.appendData(data, false)
		s.link.side.schedule(s)
	}
	return nil
}

// creditConn grants n bytes back to the client on the connection;
// WINDOW_UPDATE goes out once a quarter of the window was used. c.mu held.
func (c *conn) creditConn(n int32) {
	if n <= 0 {
		return
	}
	c.recvCredit += n
	if c.recvCredit >= c.s.cfg.ConnWindow/4 {
		c.client.push(out{kind: kWindowUpdate, n: uint32(c.recvCredit)})
		c.recvWin += c.recvCredit
		c.recvCredit = 0
	}
}

// creditStream grants n bytes back to the client on s, once they left
// the splitter's buffers. c.mu held.
func (c *conn) creditStream(s *stream, n int32) {
	if n <= 0 || s.clientEnded || !s.inClient {
		return
	}
	s.clientCredit += n
	if s.clientCredit >= c.s.cfg.StreamWindow/4 {
		c.client.push(out{kind: kWindowUpdate, id: s.id, n: uint32(s.clientCredit)})
		s.clientRecvWin += s.clientCredit
		s.clientCredit = 0
	}
}

// drop drops the data items of a half and returns their size.
func (h *half) drop() int32 {
	var n int32
	for _, o := range h.q {
		if o.kind == kData {
			n += int32(len(o.data))
		}
	}
	h.q = nil
	return n
}

// reset ends s abruptly. toClient: RST_STREAM code goes to the client
// (otherwise the client reset it). The backend stream, if it was opened,
// gets RST_STREAM CANCEL. Buffered data is dropped and its flow-control
// credit returned. c.mu held.
func (c *conn) reset(s *stream, toClient bool, code http2.ErrCode) {
	if s.reset {
		return
	}
	s.reset = true
	s.clientEnded = true
	s.backendEnded = true
	s.up.drop()
	s.up.discard = true
	if s.link != nil {
		s.down.drop()
		if s.inLink {
			s.up.q = []out{{kind: kRST, code: http2.ErrCodeCancel}}
			s.link.side.schedule(s)
		}
		s.link.forget(s)
	}
	s.down.q = nil
	s.down.discard = true
	if toClient && !s.down.closed {
		s.down.q = []out{{kind: kRST, code: code}}
		c.client.schedule(s)
	}
	c.maybeRemove(s)
}

// maybeRemove drops s from the client's stream table once it is closed
// on the client connection. c.mu held.
func (c *conn) maybeRemove(s *stream) {
	if !s.inClient || !(s.clientEnded && (s.down.closed || (s.reset && len(s.down.q) == 0))) {
		return
	}
	s.inClient = false
	delete(c.streams, s.id)
	c.closedIDs[c.closedNext] = s.id
	c.closedNext = (c.closedNext + 1) % len(c.closedIDs)
	if c.idleTimer != nil && len(c.streams) == 0 {
		c.idleTimer.Reset(c.s.cfg.IdleTimeout)
	}
	c.maybeClose()
}

// maybeClose closes a connection that is going away once it has no
// streams left. c.mu held.
//
// After the client's GOAWAY alone the connection lingers for
// peerGoAwayLinger first: a GOAWAY changes nothing for the frames that
// follow it (RFC 9113 §6.8), and a client may still send a PING and wait
// for its ACK, which closing at once would answer with a reset.
func (c *conn) maybeClose() {
	if c.closing || len(c.streams) != 0 {
		return
	}
	switch {
	case c.goingAway:
		if c.linger != nil {
			c.linger.Stop()
			c.linger = nil
		}
		c.closing = true
		c.client.push(out{kind: kClose})
	case c.peerGoAway && c.linger == nil:
		select {
		case <-c.done:
			return // torn down: nothing to linger for
		default:
		}
		c.linger = time.AfterFunc(peerGoAwayLinger, c.lingerDone)
	}
}

// peerGoAwayLinger is how long a connection stays open, with no stream
// left, after the client's GOAWAY (x/net's server waits as long).
const peerGoAwayLinger = time.Second

// lingerDone closes the connection at the end of its linger, unless the
// client opened streams meanwhile: then the last one to end starts another.
func (c *conn) lingerDone() {
	c.mu.Lock()
	defer c.unlock()
	select {
	case <-c.done:
		return
	default:
	}
	c.linger = nil
	if len(c.streams) == 0 && !c.closing {
		c.closing = true
		c.client.push(out{kind: kClose})
	}
}
