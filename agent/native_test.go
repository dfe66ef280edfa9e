package agent

import (
	"context"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// startNative starts a session whose bot (run by accept) answers start.
func startNative(t *testing.T, b *bot, ctl Controls, accept func(c *websocket.Conn)) (Session, *websocket.Conn, error) {
	t.Helper()
	type res struct {
		s   Session
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := Native{URL: b.url(), ConnectTimeout: time.Second}.Start(context.Background(),
			Call{ID: "call-9", From: "alice", To: "bot", Route: "r1", Params: map[string]string{"k": "v"}}, ctl)
		ch <- res{s, err}
	}()
	c := b.accept(t)
	accept(c)
	r := <-ch
	if r.err == nil {
		ticking(t, sessionWS(r.s))
	}
	return r.s, c, r.err
}

func TestNativeStream(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	ctl := newLiveControls()
	var start map[string]any
	s, c, err := startNative(t, b, ctl, func(c *websocket.Conn) {
		start = readMsg(t, c)
		writeMsg(t, c, map[string]any{"type": "accept", "rate": 16000})
	})
	if err != nil {
		t.Fatal(err)
	}
	call := start["call"].(map[string]any)
	if start["type"] != "start" || call["id"] != "call-9" || call["from"] != "alice" || call["to"] != "bot" ||
		call["route"] != "r1" || start["params"].(map[string]any)["k"] != "v" {
		t.Fatalf("start %v", start)
	}

	// 8 kHz caller frames reach a 16 kHz bot as 640-byte PCM16 frames.
	tone := pcm.Tone(1000, 8000, 8000, 0.3)
	for i := range 10 {
		s.Audio(tone[i*160:(i+1)*160], 8000)
	}
	var heard []int16
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		typ, data, err := c.Read(ctx)
		cancel()
		if err != nil || typ != websocket.MessageBinary || len(data) != 640 {
			t.Fatalf("frame: type %v, %d bytes, %v", typ, len(data), err)
		}
		for i := 0; i < len(data); i += 2 {
			heard = append(heard, int16(binary.LittleEndian.Uint16(data[i:])))
		}
	}
	if f := pcm.DominantFrequency(heard[320:], 16000); math.Abs(f-1000) > 20 {
		t.Fatalf("bot heard %.0f Hz, want 1000", f)
	}

	// Bot audio at its rate, split mid-sample across messages, then commands.
	out := pcm.Tone(500, 16000, 101, 0.3)
	raw := make([]byte, 0, 202)
	for _, v := range out {
		raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
	}
	ctx := context.Background()
	c.Write(ctx, websocket.MessageBinary, raw[:101])
	c.Write(ctx, websocket.MessageBinary, raw[101:])
	writeMsg(t, c, map[string]any{"type": "mark", "name": "m1"})
	writeMsg(t, c, map[string]any{"type": "clear"})
	writeMsg(t, c, map[string]any{"type": "send_dtmf", "digits": "12#"})
	writeMsg(t, c, map[string]any{"type": "transfer", "target": "sip:human@example.com"})
	ctl.want(t, "mark:m1")
	ctl.want(t, "clear")
	ctl.want(t, "dtmf:12#")
	ctl.want(t, "transfer:sip:human@example.com")
	played, rates := ctl.playedCopy()
	if len(played) != 101 || rates[0] != 16000 || played[50] != out[50] || played[100] != out[100] {
		t.Fatalf("played %d samples at %v", len(played), rates)
	}
	writeMsg(t, c, map[string]any{"type": "dance"})
	if m := readMsg(t, c); m["type"] != "error" || !strings.Contains(m["message"].(string), "dance") {
		t.Fatalf("unknown command answered with %v", m)
	}

	s.Event(Event{Kind: DTMF, Digit: '#'})
	s.Event(Event{Kind: MarkPlayed, Name: "m1"})
	if m := readMsg(t, c); m["type"] != "dtmf" || m["digit"] != "#" {
		t.Fatalf("dtmf %v", m)
	}
	if m := readMsg(t, c); m["type"] != "mark" || m["name"] != "m1" {
		t.Fatalf("mark %v", m)
	}

	writeMsg(t, c, map[string]any{"type": "hangup", "reason": "goodbye"})
	ctl.want(t, "hangup:goodbye")
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	if m := readMsg(t, c); m["type"] != "hangup" {
		t.Fatalf("close sent %v, want hangup", m)
	}
	if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after hangup: %v, want a normal close", err)
	}
	<-done
}

// A bot that does not accept fails Start, which lets the bridge fall back.
func TestNativeNoAccept(t *testing.T) {
	noLeaks(t)
	tests := []struct {
		name  string
		reply func(t *testing.T, c *websocket.Conn)
		want  string
	}{
		{"silence", func(t *testing.T, c *websocket.Conn) { readMsg(t, c) }, "within 1s"},
		{"bad rate", func(t *testing.T, c *websocket.Conn) {
			readMsg(t, c)
			writeMsg(t, c, map[string]any{"type": "accept", "rate": 44100})
		}, "rate 44100"},
		{"hangup", func(t *testing.T, c *websocket.Conn) {
			readMsg(t, c)
			writeMsg(t, c, map[string]any{"type": "hangup", "reason": "closed today"})
		}, "closed today"},
		{"drop", func(t *testing.T, c *websocket.Conn) { readMsg(t, c); c.CloseNow() }, "did not accept"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBot(t)
			_, _, err := startNative(t, b, newLiveControls(), func(c *websocket.Conn) { tt.reply(t, c) })
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Start: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestNativeBotLost(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	ctl := newLiveControls()
	s, c, err := startNative(t, b, ctl, func(c *websocket.Conn) {
		readMsg(t, c)
		writeMsg(t, c, map[string]any{"type": "accept", "rate": 8000})
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c.CloseNow()
	ctl.want(t, "fail:bot connection lost")
}

// Caller frame → binary message on a real loopback WebSocket, one at a time.
func BenchmarkNativeAudio(b *testing.B) {
	w, c := dialRawBot(b)
	s := &nativeSession{w: w, ctl: nopControls{}, rate: 16000}
	got := make(chan int, 1)
	go readFrames(c.br, got)
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		s.Audio(frame, 8000)
		<-got
	}
	c.Close()
	w.close(nil)
}
