package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// frameOf is a server frame: unmasked, with the given first byte (FIN, RSV, opcode).
func frameOf(b0 byte, payload []byte) []byte {
	f := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		f = append(f, byte(n))
	case n < 1<<16:
		f = binary.BigEndian.AppendUint16(append(f, 126), uint16(n))
	default:
		f = binary.BigEndian.AppendUint64(append(f, 127), uint64(n))
	}
	return append(f, payload...)
}

type gotMsg struct {
	typ  websocket.MessageType
	data string
}

// parser is a direct wsConn fed by hand (no reads), its writes going to a
// real socket whose far end the test reads.
type parser struct {
	w    *wsConn
	peer *bufio.Reader
	got  []gotMsg
}

func newParser(t *testing.T) *parser {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	s.SetReadDeadline(time.Now().Add(5 * time.Second)) // a frame we never wrote fails the test, not hangs it
	p := &parser{peer: bufio.NewReader(s)}
	p.w = &wsConn{raw: newNBConn(c), log: slog.New(slog.DiscardHandler), direct: true}
	p.w.initReader(nil)
	p.w.raw.start(func(error) {})
	p.w.rd.handle = func(typ websocket.MessageType, data []byte) error {
		p.got = append(p.got, gotMsg{typ, string(data)})
		return nil
	}
	t.Cleanup(func() { p.w.raw.Close(); s.Close() })
	return p
}

// feed stands for one read that returned b, and hands on what it completes.
func (p *parser) feed(b []byte) error {
	room := p.w.rd.room()
	if len(b) > len(room) {
		panic("feed more than a read could take")
	}
	p.w.rd.n += copy(room, b)
	return p.w.deliver()
}

// sent reads the next frame we wrote to the peer: its opcode and unmasked payload.
func (p *parser) sent(t *testing.T) (byte, []byte) {
	t.Helper()
	h, err := p.peer.Peek(1)
	if err != nil {
		t.Fatal(err)
	}
	return h[0] & 0x0f, readClientFrame(t, p.peer)
}

func TestWSReadSplitAnywhere(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789"), 7000) // over the read buffer: a 64-bit length
	mid := bytes.Repeat([]byte{0xab}, 300)          // a 16-bit length
	stream := append(append(frameOf(0x81, []byte("hello")), frameOf(0x82, mid)...), frameOf(0x82, big)...)
	want := []gotMsg{{websocket.MessageText, "hello"}, {websocket.MessageBinary, string(mid)}, {websocket.MessageBinary, string(big)}}

	t.Run("byte by byte", func(t *testing.T) {
		p := newParser(t)
		for i := range stream {
			if err := p.feed(stream[i : i+1]); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
			if i < 6 && len(p.got) != 0 {
				t.Fatalf("a message before its last byte")
			}
		}
		checkGot(t, p.got, want)
	})
	t.Run("all in one read", func(t *testing.T) {
		p := newParser(t)
		p.w.rd.need = len(stream) // as the frame header would have asked
		if err := p.feed(stream); err != nil {
			t.Fatal(err)
		}
		checkGot(t, p.got, want)
	})
	t.Run("several frames in one read", func(t *testing.T) {
		p := newParser(t)
		var b []byte
		for i := range 5 {
			b = append(b, frameOf(0x81, []byte{'a' + byte(i)})...)
		}
		b = append(b, frameOf(0x81, []byte("partial"))[:4]...)
		if err := p.feed(b); err != nil {
			t.Fatal(err)
		}
		checkGot(t, p.got, []gotMsg{{1, "a"}, {1, "b"}, {1, "c"}, {1, "d"}, {1, "e"}})
		if err := p.feed(frameOf(0x81, []byte("partial"))[4:]); err != nil {
			t.Fatal(err)
		}
		checkGot(t, p.got, []gotMsg{{1, "a"}, {1, "b"}, {1, "c"}, {1, "d"}, {1, "e"}, {1, "partial"}})
	})
}

func checkGot(t *testing.T, got, want []gotMsg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d messages, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("message %d: type %v, %d bytes %.20q; want type %v, %d bytes %.20q", i,
				got[i].typ, len(got[i].data), got[i].data, want[i].typ, len(want[i].data), want[i].data)
		}
	}
}

// A fragmented message arrives whole, and a ping between its fragments is
// answered at once with its own payload.
func TestWSReadFragmentsAndPing(t *testing.T) {
	p := newParser(t)
	for _, f := range [][]byte{
		frameOf(0x01, []byte("Hel")), // text, not final
		frameOf(0x89, []byte("p1")),  // ping
		frameOf(0x00, []byte("lo, ")),
		frameOf(0x80, []byte("world")), // final continuation
	} {
		if err := p.feed(f); err != nil {
			t.Fatal(err)
		}
	}
	checkGot(t, p.got, []gotMsg{{websocket.MessageText, "Hello, world"}})
	if op, b := p.sent(t); op != opPong || string(b) != "p1" {
		t.Fatalf("answered the ping with opcode %#x %q, want a pong \"p1\"", op, b)
	}
	// and the next message is a new one
	if err := p.feed(frameOf(0x82, []byte{1, 2})); err != nil {
		t.Fatal(err)
	}
	checkGot(t, p.got[1:], []gotMsg{{websocket.MessageBinary, "\x01\x02"}})
}

// The bot's close is answered with its status and reported as its hang-up.
func TestWSReadClose(t *testing.T) {
	p := newParser(t)
	err := p.feed(frameOf(0x88, append([]byte{0x03, 0xe8}, "bye"...)))
	if !errors.Is(err, ErrBotClosed) || err.Error() != `bot closed the connection (status 1000 "bye")` {
		t.Fatalf("close: %v", err)
	}
	if op, b := p.sent(t); op != opClose || !bytes.Equal(b, []byte{0x03, 0xe8}) {
		t.Fatalf("answered the close with opcode %#x %x, want a close with status 1000", op, b)
	}
}

// What RFC 6455 forbids a server to send loses the bot.
func TestWSReadProtocolErrors(t *testing.T) {
	long := binary.BigEndian.AppendUint64([]byte{0x82, 127}, wsReadLimit+1)
	for _, c := range []struct {
		name   string
		stream []byte
		want   string
	}{
		{"masked", []byte{0x81, 0x81, 1, 2, 3, 4, 'x'}, "masked"},
		{"rsv", frameOf(0xc1, []byte("x")), "RSV"},
		{"opcode", frameOf(0x83, []byte("x")), "opcode"},
		{"oversize", long, "over"},
		{"control of 126 bytes", frameOf(0x89, make([]byte, 126)), "control frame over 125"},
		{"fragmented control", frameOf(0x09, nil), "fragmented control"},
		{"continuation first", frameOf(0x80, []byte("x")), "continuation"},
		{"new message inside one", append(frameOf(0x01, []byte("a")), frameOf(0x81, []byte("b"))...), "inside"},
		{"close of 1 byte", frameOf(0x88, []byte{3}), "1 byte"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newParser(t)
			err := p.feed(c.stream)
			if !errors.Is(err, ErrBotLost) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v, want a lost bot: %q", err, c.want)
			}
			if len(p.got) != 0 {
				t.Fatalf("handled %v", p.got)
			}
		})
	}
}

// The bot's ping is answered from the clock's polls, and coder/websocket's Ping returns.
func TestDirectPingPong(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	s, c := startTwilio(t, b, newLiveControls(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	reading := make(chan struct{})
	go func() { // the bot reads on: its Ping needs a reader for the pong
		defer close(reading)
		for {
			if _, _, err := c.Read(ctx); err != nil {
				return
			}
		}
	}()
	for range 3 {
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("ping: %v", err)
		}
	}
	s.Close()
	<-reading
}

// The bot's close reaches the call as a hang-up with its status and reason,
// and its close handshake completes.
func TestDirectBotCloses(t *testing.T) {
	noLeaks(t)
	for _, proto := range []string{"twilio", "native"} {
		t.Run(proto, func(t *testing.T) {
			b := newBot(t)
			ctl := newLiveControls()
			var (
				s Session
				c *websocket.Conn
			)
			if proto == "twilio" {
				s, c = startTwilio(t, b, ctl, nil)
			} else {
				var err error
				s, c, err = startNative(t, b, ctl, func(c *websocket.Conn) {
					readMsg(t, c)
					writeMsg(t, c, map[string]any{"type": "accept", "rate": 8000})
				})
				if err != nil {
					t.Fatal(err)
				}
			}
			defer s.Close()
			go func() { // coder/websocket's Close needs a reader to see our answer
				for {
					if _, _, err := c.Read(context.Background()); err != nil {
						return
					}
				}
			}()
			if err := c.Close(websocket.StatusGoingAway, "bye"); err != nil {
				t.Fatalf("the bot's close handshake: %v", err)
			}
			if a := ctl.want(t, "hangup:"); a != `hangup:bot closed the connection (status 1001 "bye")` {
				t.Fatalf("action %q", a)
			}
		})
	}
}

// Over a direct socket a call has no goroutine of the bot connection's own:
// messages both ways are handled on the (here: the test's) clock.
func TestDirectNoGoroutines(t *testing.T) {
	noLeaks(t)
	bt := newRawBot(t)
	before := runtime.NumGoroutine() // with the bot's acceptor, which ends after the handshake
	ctl := newLiveControls()
	s, err := Twilio{URL: bt.url(), ConnectTimeout: time.Second}.Start(context.Background(), Call{}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	c := (<-bt.conn).(*bufConn)
	got := make(chan int, 1024)
	go readFrames(c.br, got)
	msg := serverFrame(twilioMediaMsg(160))
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	for range 10 {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		s.Audio(frame, 8000)
	}
	deadline := time.Now().Add(3 * time.Second)
	for played, _ := ctl.playedCopy(); len(played) < 1600; played, _ = ctl.playedCopy() {
		if time.Now().After(deadline) {
			t.Fatalf("played %d samples of 1600", len(played))
		}
		s.Audio(frame, 8000)
		time.Sleep(time.Millisecond)
	}
	// now: the test, the bot's frame reader (+1), no acceptor (-1), nothing of ours
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("%d goroutines during the call, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
	c.Close()
	s.Close()
	for range got {
	}
}

// A poll that reads and handles one media message from the bot (160 µ-law
// bytes, as a bot answers a 20 ms frame) allocates nothing.
func BenchmarkDirectPollMedia(b *testing.B) {
	ctl := &countControls{}
	s, c := startRawTwilio(b, ctl)
	go io.Copy(io.Discard, c.br)
	w := s.(*twilioSession).w
	msg := serverFrame(twilioMediaMsg(160))
	b.ReportAllocs()
	cpu := cpuTime()
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		for want := ctl.n + 1; ctl.n < want; {
			w.poll()
		}
	}
	b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/op")
	c.Close()
	s.Close()
}

// countControls counts plays; for the clock's own goroutine only.
type countControls struct {
	nopControls
	n int
}

func (c *countControls) Play(s []int16, _ int) {
	if len(s) == 160 {
		c.n++
	}
}

// Bot audio reaches Play with nothing lost across polls of any timing.
func TestDirectMediaIn(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	ctl := newLiveControls()
	s, c := startTwilio(t, b, ctl, nil)
	defer s.Close()
	readMsg(t, c)
	readMsg(t, c)
	tone := pcm.Tone(600, 8000, 8000, 0.3)
	ulaw := make([]byte, len(tone))
	for i, v := range tone {
		ulaw[i] = g711.EncodeUlawFrame(v)
	}
	for i := 0; i < len(ulaw); i += 1000 { // chunks of all sorts of sizes
		j := min(i+1000, len(ulaw))
		writeMsg(t, c, map[string]any{"event": "media", "media": map[string]any{"payload": base64.StdEncoding.EncodeToString(ulaw[i:j])}})
	}
	writeMsg(t, c, map[string]any{"event": "mark", "mark": map[string]any{"name": "end"}})
	ctl.want(t, "mark:end")
	played, _ := ctl.playedCopy()
	if len(played) != len(tone) {
		t.Fatalf("played %d samples, want %d", len(played), len(tone))
	}
	for i := range played {
		if played[i] != g711.DecodeUlawFrame(ulaw[i]) {
			t.Fatalf("sample %d differs", i)
		}
	}
}

// A server that does not upgrade, or upgrades wrongly, fails the connect with
// what it answered.
func TestDirectHandshakeRefused(t *testing.T) {
	for _, c := range []struct {
		name, answer, want string
	}{
		{"404", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "HTTP 404 Not Found: want 101"},
		{"wrong accept", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n", "Sec-WebSocket-Accept"},
		{"no upgrade", "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", "Upgrade"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				s, err := ln.Accept()
				if err != nil {
					return
				}
				defer s.Close()
				http.ReadRequest(bufio.NewReader(s))
				io.WriteString(s, c.answer)
			}()
			_, err = dialWS(context.Background(), "ws://"+ln.Addr().String()+"/x", time.Second, nil, slog.Default())
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "connect ws://") {
				t.Fatalf("dial: %v, want an error with %q", err, c.want)
			}
		})
	}
}
