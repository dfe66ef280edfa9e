package agent

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// syncControls is a Controls safe for sessions' own goroutines; queued is what
// Queued reports (a test sets it to stand for audio not yet played).
type syncControls struct {
	mu        sync.Mutex
	played    []int16
	rates     []int
	marks     []string
	cleared   int
	hangup    string
	dtmf      string
	transfer  string
	queued    time.Duration
	hungUp    chan struct{}
	hangOnce  sync.Once
	markAdded chan string
}

func newSyncControls() *syncControls {
	return &syncControls{hungUp: make(chan struct{}), markAdded: make(chan string, 16)}
}

func (c *syncControls) Play(s []int16, rate int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.played = append(c.played, s...)
	if len(c.rates) == 0 || c.rates[len(c.rates)-1] != rate {
		c.rates = append(c.rates, rate)
	}
}
func (c *syncControls) Mark(name string) {
	c.mu.Lock()
	c.marks = append(c.marks, name)
	c.mu.Unlock()
	c.markAdded <- name
}
func (c *syncControls) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cleared++
}
func (c *syncControls) Queued() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.queued
}
func (c *syncControls) Hangup(reason string) {
	c.hangOnce.Do(func() {
		c.mu.Lock()
		c.hangup = reason
		c.mu.Unlock()
		close(c.hungUp)
	})
}
func (c *syncControls) SendDTMF(d string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dtmf += d
}
func (c *syncControls) Transfer(target string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.transfer = target
}

func (c *syncControls) playedCopy() []int16 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.played)
}

func (c *syncControls) rateList() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.rates)
}

func (c *syncControls) waitHangup(t *testing.T) string {
	t.Helper()
	select {
	case <-c.hungUp:
	case <-time.After(5 * time.Second):
		t.Fatal("no hang-up within 5 s")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hangup
}

// waitFor polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// asFrame is one AudioSocket frame as a bot reads it.
type asFrame struct {
	kind    byte
	payload []byte
}

func readASFrame(r io.Reader) (asFrame, error) {
	var h [3]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return asFrame{}, err
	}
	p := make([]byte, binary.BigEndian.Uint16(h[1:]))
	_, err := io.ReadFull(r, p)
	return asFrame{h[0], p}, err
}

func writeASFrame(w io.Writer, kind byte, p []byte) error {
	b := []byte{kind, 0, 0}
	binary.BigEndian.PutUint16(b[1:], uint16(len(p)))
	_, err := w.Write(append(b, p...))
	return err
}

// asBot is a TCP server in the test: it accepts one connection and hands it over.
func asBot(t *testing.T) (addr string, conns <-chan net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			t.Cleanup(func() { c.Close() })
			ch <- c
		}
	}()
	return ln.Addr().String(), ch
}

func accept(t *testing.T, conns <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-conns:
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("the gateway did not connect")
		return nil
	}
}

// The wire as Asterisk speaks it: UUID first, then 320-byte slin frames
// carrying the caller's samples, DTMF as one ASCII byte, and a hang-up frame
// when the call ends; the bot's audio is played, and its hang-up ends the call.
func TestAudioSocketWire(t *testing.T) {
	addr, conns := asBot(t)
	a, err := NewAudioSocket("tcp://"+addr, 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctl := newSyncControls()
	s, err := a.Start(context.Background(), Call{ID: "c1"}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bot := accept(t, conns)

	f, err := readASFrame(bot)
	if err != nil || f.kind != 0x01 || len(f.payload) != 16 {
		t.Fatalf("first frame: kind %#x, %d bytes, %v; want UUID (0x01, 16 bytes)", f.kind, len(f.payload), err)
	}
	if id, err := uuid.FromBytes(f.payload); err != nil || id.Version() != 4 {
		t.Fatalf("uuid %v %v", id, err)
	}

	tone := pcm.Tone(1000, 8000, 160, 0.5)
	s.Audio(tone, 8000)
	s.Event(Event{Kind: DTMF, Digit: '7'})
	s.Event(Event{Kind: MarkPlayed, Name: "ignored"})
	f, err = readASFrame(bot)
	f2, err2 := readASFrame(bot)
	if f.kind == 0x03 { // audio and DTMF travel separate queues: either may come first
		f, f2 = f2, f
	}
	if err != nil || err2 != nil || f.kind != 0x10 || len(f.payload) != 320 {
		t.Fatalf("audio frame: kind %#x, %d bytes, %v; want 0x10 with 320 bytes", f.kind, len(f.payload), err)
	}
	for i, v := range tone {
		if got := int16(binary.LittleEndian.Uint16(f.payload[2*i:])); got != v {
			t.Fatalf("sample %d = %d, want %d (little-endian slin)", i, got, v)
		}
	}
	if f2.kind != 0x03 || !bytes.Equal(f2.payload, []byte("7")) {
		t.Fatalf("dtmf frame: %#x %q; want 0x03 \"7\"", f2.kind, f2.payload)
	}

	// The bot answers with 30 ms of audio in one frame (any size is fine), then hangs up.
	reply := pcm.Tone(440, 8000, 240, 0.5)
	p := make([]byte, 480)
	for i, v := range reply {
		binary.LittleEndian.PutUint16(p[2*i:], uint16(v))
	}
	mustOK(t, writeASFrame(bot, 0x10, p))
	mustOK(t, writeASFrame(bot, 0x00, nil))
	if reason := ctl.waitHangup(t); reason != "audiosocket: bot hung up" {
		t.Fatalf("hang-up reason %q", reason)
	}
	if got := ctl.playedCopy(); !slices.Equal(got, reply) {
		t.Fatalf("played %d samples, want the bot's %d", len(got), len(reply))
	}
	if r := ctl.rateList(); r[0] != 8000 {
		t.Fatalf("played at %v Hz", r)
	}

	s.Close()
	f, err = readASFrame(bot)
	if err != nil || f.kind != 0x00 || len(f.payload) != 0 {
		t.Fatalf("on close: %#x %v %v; want the hang-up frame 00 00 00", f.kind, f.payload, err)
	}
	if _, err := readASFrame(bot); err != io.EOF {
		t.Fatalf("after the hang-up frame: %v, want EOF", err)
	}
}

// Caller audio at 16 kHz (a wideband call) reaches the bot as 8 kHz slin.
func TestAudioSocketResamplesTo8k(t *testing.T) {
	addr, conns := asBot(t)
	a, _ := NewAudioSocket(addr, time.Second, nil)
	s, err := a.Start(context.Background(), Call{}, newSyncControls())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	bot := accept(t, conns)
	readASFrame(bot) // uuid
	tone := pcm.Tone(1000, 16000, 16000, 0.5)
	var got []int16
	for i := 0; i < len(tone); i += 320 {
		s.Audio(tone[i:i+320], 16000)
		f, err := readASFrame(bot)
		if err != nil || f.kind != 0x10 {
			t.Fatal(f.kind, err)
		}
		for j := 0; j+1 < len(f.payload); j += 2 {
			got = append(got, int16(binary.LittleEndian.Uint16(f.payload[j:])))
		}
	}
	if len(got) < 7800 || len(got) > 8000 {
		t.Fatalf("%d samples for 1 s, want about 8000", len(got))
	}
	if f := pcm.DominantFrequency(got[800:], 8000); f < 980 || f > 1020 {
		t.Fatalf("dominant %.0f Hz, want 1000", f)
	}
}

// The bot's error frame and a dropped connection both end the call, with the reason.
func TestAudioSocketBotGone(t *testing.T) {
	for _, tc := range []struct {
		name string
		act  func(net.Conn)
		want string
	}{
		{"error frame", func(c net.Conn) { writeASFrame(c, 0xff, []byte{0x04}) }, "audiosocket: bot error 04"},
		{"closed", func(c net.Conn) { c.Close() }, "audiosocket: bot closed the connection"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, conns := asBot(t)
			a, _ := NewAudioSocket(addr, time.Second, nil)
			ctl := newSyncControls()
			s, err := a.Start(context.Background(), Call{}, ctl)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			bot := accept(t, conns)
			readASFrame(bot)
			tc.act(bot)
			if got := ctl.waitHangup(t); got != tc.want {
				t.Fatalf("reason %q, want %q", got, tc.want)
			}
		})
	}
}

// A bot that is not listening fails Start (the route's fallback then runs);
// a bot that accepts but never reads does not block the call's clock.
func TestAudioSocketUnreachableAndStalled(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	a, _ := NewAudioSocket(dead, time.Second, nil)
	if _, err := a.Start(context.Background(), Call{}, newSyncControls()); err == nil {
		t.Fatal("Start to a closed port succeeded")
	}
	if _, err := NewAudioSocket("ws://x/y", 0, nil); err == nil {
		t.Fatal("ws:// url accepted")
	}

	addr, conns := asBot(t)
	a, _ = NewAudioSocket(addr, time.Second, nil)
	s, err := a.Start(context.Background(), Call{Logger: slog.New(slog.DiscardHandler)}, newSyncControls())
	if err != nil {
		t.Fatal(err)
	}
	bot := accept(t, conns)
	_ = bot // never read: the socket buffers fill, then frames drop
	frame := make([]int16, 160)
	start := time.Now()
	for range 20000 { // 400 s of audio, far more than the socket buffers hold
		s.Audio(frame, 8000)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Audio blocked: 20000 frames took %v", d)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hung on a bot that stopped reading")
	}
}

func BenchmarkAudioSocketAudio(b *testing.B) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
		}
	}()
	a, _ := NewAudioSocket(ln.Addr().String(), time.Second, nil)
	s, err := a.Start(context.Background(), Call{Logger: slog.New(slog.DiscardHandler)}, newSyncControls())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := pcm.Tone(1000, 8000, 160, 0.5)
	q := s.(*audioSocketSession).q
	b.ReportAllocs()
	for b.Loop() {
		s.Audio(frame, 8000)
		for len(q.free) < cap(q.free) { // until the writer has sent it: the whole per-frame cost
			runtime.Gosched()
		}
	}
	if n := q.dropped.Load(); n > 0 {
		b.Fatalf("%d frames dropped", n)
	}
}

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
