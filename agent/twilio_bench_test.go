package agent

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// The per-frame cost of the Twilio path over a real loopback WebSocket. The
// bot is a raw one (handshake by hand, frames parsed in place, no allocation)
// so that allocs/op and cpu-ns/op are the gateway's own plus one bot read or
// write per message.
//
//	go test -run '^$' -bench 'TwilioMedia|TwilioHandle|TwilioAudio' -benchmem -benchtime 2s ./agent

// rawBot accepts one WebSocket connection and speaks frames by hand.
type rawBot struct {
	ln   net.Listener
	conn chan net.Conn
}

func newRawBot(tb testing.TB) *rawBot {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	b := &rawBot{ln: ln, conn: make(chan net.Conn, 1)}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			c.Close()
			return
		}
		h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "+
			base64.StdEncoding.EncodeToString(h[:])+"\r\n\r\n")
		b.conn <- &bufConn{Conn: c, br: br}
	}()
	return b
}

func (b *rawBot) url() string { return "ws://" + b.ln.Addr().String() + "/stream" }

type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// readFrames signals on got after each complete frame from the gateway.
func readFrames(r *bufio.Reader, got chan<- int) {
	defer close(got)
	var hdr [8]byte
	for {
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return
		}
		masked, n := hdr[1]&0x80 != 0, int(hdr[1]&0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(r, hdr[:2]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(r, hdr[:8]); err != nil {
				return
			}
			n = int(binary.BigEndian.Uint64(hdr[:8]))
		}
		if masked {
			n += 4 // mask key
		}
		if _, err := r.Discard(n); err != nil {
			return
		}
		got <- n
	}
}

// serverFrame is an unmasked text frame (server to client).
func serverFrame(payload []byte) []byte {
	b := []byte{0x81}
	switch {
	case len(payload) < 126:
		b = append(b, byte(len(payload)))
	case len(payload) < 1<<16:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(len(payload)))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(len(payload)))
	}
	return append(b, payload...)
}

// cpuTime is the process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// dialRawBot connects a wsConn to a rawBot, as dialWS does for every protocol.
func dialRawBot(tb testing.TB) (*wsConn, *bufConn) {
	tb.Helper()
	bt := newRawBot(tb)
	w, err := dialWS(context.Background(), bt.url(), time.Second, nil, slog.Default())
	if err != nil {
		tb.Fatal(err)
	}
	return w, (<-bt.conn).(*bufConn)
}

// readClientFrame reads one masked frame from the gateway and returns its
// payload unmasked.
func readClientFrame(tb testing.TB, r *bufio.Reader) []byte {
	tb.Helper()
	p, err := clientFrame(r)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func clientFrame(r *bufio.Reader) ([]byte, error) {
	var hdr [8]byte
	if _, err := io.ReadFull(r, hdr[:2]); err != nil {
		return nil, err
	}
	if hdr[1]&0x80 == 0 {
		return nil, errors.New("frame from the client not masked (RFC 6455 5.3)")
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(r, hdr[:2]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint16(hdr[:2]))
	case 127:
		if _, err := io.ReadFull(r, hdr[:8]); err != nil {
			return nil, err
		}
		n = int(binary.BigEndian.Uint64(hdr[:8]))
	}
	buf := make([]byte, 4+n)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, err
	}
	p := buf[4:]
	for i := range p {
		p[i] ^= buf[i%4]
	}
	return p, nil
}

func startRawTwilio(b *testing.B, ctl Controls) (Session, *bufConn) {
	bt := newRawBot(b)
	s, err := Twilio{URL: bt.url(), ConnectTimeout: time.Second}.Start(context.Background(), Call{}, ctl)
	if err != nil {
		b.Fatal(err)
	}
	c := (<-bt.conn).(*bufConn)
	return s, c
}

// Caller frame → media message on the bot's socket, one at a time.
func BenchmarkTwilioMediaOut(b *testing.B) {
	s, c := startRawTwilio(b, newLiveControls())
	got := make(chan int, 1)
	go readFrames(c.br, got)
	<-got // connected
	<-got // start
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		s.Audio(frame, 8000)
		<-got
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	c.Close()
	s.Close()
}

// Bot media message (160 µ-law bytes, as a bot answers a 20 ms frame) →
// samples handed to Controls.Play, by the clock's poll (here: polled until it has).
func BenchmarkTwilioMediaIn(b *testing.B) {
	ctl := &benchControls{played: make(chan int, 1)}
	s, c := startRawTwilio(b, ctl)
	go io.Copy(io.Discard, c.br)
	msg := serverFrame(twilioMediaMsg(160))
	w := s.(*twilioSession).w
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		for n := 0; n == 0; {
			w.poll()
			select {
			case n = <-ctl.played:
				if n != 160 {
					b.Fatalf("played %d samples", n)
				}
			default:
			}
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	c.Close()
	s.Close()
}

// The reader's work on one media message, without the socket.
func BenchmarkTwilioHandleMedia(b *testing.B) {
	s := &twilioSession{w: &wsConn{}, ctl: nopControls{}}
	msg := twilioMediaMsg(160)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := s.handle(websocket.MessageText, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// twilioMediaMsg is a media message as Twilio's own examples show it.
func twilioMediaMsg(n int) []byte {
	payload := make([]byte, n)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	msg, _ := json.Marshal(map[string]any{"event": "media", "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0",
		"media": map[string]any{"payload": base64.StdEncoding.EncodeToString(payload)}})
	return msg
}

type benchControls struct {
	nopControls
	played chan int
}

func (c *benchControls) Play(s []int16, _ int) { c.played <- len(s) }

type nopControls struct{}

func (nopControls) Play([]int16, int)     {}
func (nopControls) Mark(string)           {}
func (nopControls) Clear()                {}
func (nopControls) Queued() time.Duration { return 0 }
func (nopControls) Hangup(string)         {}
func (nopControls) SendDTMF(string)       {}
func (nopControls) Transfer(string)       {}
