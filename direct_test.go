package cmux

import (
	"io"
	"testing"
	"time"

	"github.com/cmux-go/cmux/internal/testcheck"
	"github.com/cmux-go/cmux/internal/wiretest"
)

// TestMuxConnDirect: a delivered connection reads through the mux until the
// sniffed bytes are read, then Direct reports true and the underlying
// connection yields the rest of the stream.
func TestMuxConnDirect(t *testing.T) {
	testcheck.CheckLeaks(t)
	root := listenLoopback(t)
	m := New(root)
	l := m.Match(PrefixMatcher("hello"))
	serveMux(t, m, root)
	accepted := acceptChan(t, l)

	c := dialTCP(t, root.Addr().String())
	_, err := c.Write([]byte("hello world"))
	require.NoError(t, err)
	mc, ok := takeConn(t, accepted).(*MuxConn)
	require.True(t, ok)
	defer mc.Close()
	assert.False(t, mc.Direct(), "sniffed bytes not read yet")
	require.Equal(t, "hello world", readN(t, mc, len("hello world")))
	assert.True(t, mc.Direct(), "every sniffed byte read")

	_, err = c.Write([]byte("more"))
	require.NoError(t, err)
	require.Equal(t, "more", readN(t, mc.NetConn(), 4))
	c.Close()
}

// TestMuxConnDirectAfterAck: when the mux wrote SETTINGS for a writer
// matcher, reads go through it, Direct false, until the client's ACK of
// them has been taken out of the stream, even once the replay is drained.
func TestMuxConnDirectAfterAck(t *testing.T) {
	testcheck.CheckLeaks(t)
	root := listenLoopback(t)
	m := New(root)
	l := m.MatchWithWriters(HTTP2MatchHeaderFieldSendSettings("content-type", "application/grpc"))
	serveMux(t, m, root)
	accepted := acceptChan(t, l)

	c := dialTCP(t, root.Addr().String())
	defer c.Close()
	// Preface and SETTINGS only: the mux answers with its SETTINGS.
	first := btH2Flight(t, false)
	_, err := c.Write(first)
	require.NoError(t, err)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(waitFor)))
	hdr := make([]byte, 9)
	_, err = io.ReadFull(c, hdr)
	require.NoError(t, err)
	require.Equal(t, byte(0x4), hdr[3], "the mux's SETTINGS")
	_, err = io.CopyN(io.Discard, c, int64(int(hdr[0])<<16|int(hdr[1])<<8|int(hdr[2])))
	require.NoError(t, err)

	headers := btH2Flight(t, false, "content-type", "application/grpc")[len(first):]
	_, err = c.Write(headers)
	require.NoError(t, err)
	mc, ok := takeConn(t, accepted).(*MuxConn)
	require.True(t, ok)
	defer mc.Close()
	got := readN(t, mc, len(first)+len(headers))
	require.Equal(t, string(first)+string(headers), got)
	assert.False(t, mc.Direct(), "the ACK of the mux's SETTINGS is still to be taken out")

	// The ACK, then a PING: the server reads the PING alone.
	ping := wiretest.Frame(0x6, 0, 0, []byte("12345678"))
	_, err = c.Write(append(wiretest.SettingsAck(), ping...))
	require.NoError(t, err)
	require.Equal(t, string(ping), readN(t, mc, len(ping)))
	assert.True(t, mc.Direct(), "the ACK was taken out")
	assert.True(t, mc.h2 != nil, "writes still fix up the server's SETTINGS")

	// The server's SETTINGS, held back until its next write; once that is
	// written, the HTTP/2 state goes back to its pool.
	settings := wiretest.Settings(0x3, 100)
	_, err = mc.Write(settings)
	require.NoError(t, err)
	assert.True(t, mc.h2 != nil, "the server's SETTINGS are held")
	_, err = mc.Write(ping)
	require.NoError(t, err)
	assert.True(t, mc.h2 == nil, "HTTP/2 state kept after both directions ended")
	require.Equal(t, string(settings)+string(ping), readN(t, c, len(settings)+len(ping)))
}
