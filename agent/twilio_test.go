package agent

import (
	"context"
	"encoding/base64"
	"math"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

func startTwilio(t *testing.T, b *bot, ctl Controls, params map[string]string) (Session, *websocket.Conn) {
	t.Helper()
	s, err := Twilio{URL: b.url(), ConnectTimeout: 2 * time.Second}.Start(context.Background(),
		Call{ID: "call-1", From: "+15550001", To: "bot", Params: params}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	ticking(t, sessionWS(s))
	return s, b.accept(t)
}

// The whole conversation, as a Twilio Media Streams bot sees it.
func TestTwilioStream(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	ctl := newLiveControls()
	s, c := startTwilio(t, b, ctl, map[string]string{"caller": "+15550001"})

	m := readMsg(t, c)
	if m["event"] != "connected" || m["protocol"] != "Call" || m["version"] != "1.0.0" {
		t.Fatalf("first message %v", m)
	}
	m = readMsg(t, c)
	st, _ := m["start"].(map[string]any)
	sid := func(p string) *regexp.Regexp { return regexp.MustCompile("^" + p + "[0-9a-f]{32}$") }
	if m["event"] != "start" || m["sequenceNumber"] != "1" || st == nil ||
		!sid("AC").MatchString(st["accountSid"].(string)) || !sid("CA").MatchString(st["callSid"].(string)) ||
		!sid("MZ").MatchString(st["streamSid"].(string)) || st["streamSid"] != m["streamSid"] {
		t.Fatalf("start %v", m)
	}
	streamSid := m["streamSid"].(string)
	mf := st["mediaFormat"].(map[string]any)
	if mf["encoding"] != "audio/x-mulaw" || mf["sampleRate"] != 8000.0 || mf["channels"] != 1.0 {
		t.Fatalf("mediaFormat %v", mf)
	}
	if cp := st["customParameters"].(map[string]any); cp["caller"] != "+15550001" {
		t.Fatalf("customParameters %v", cp)
	}
	if tr := st["tracks"].([]any); len(tr) != 1 || tr[0] != "inbound" {
		t.Fatalf("tracks %v", tr)
	}

	// Caller audio: one media message per 20 ms frame, 160 µ-law bytes.
	tone := pcm.Tone(1000, 8000, 2000, 0.3)
	for i := range 5 {
		s.Audio(tone[i*160:(i+1)*160], 8000)
	}
	var heard []int16
	for i := range 5 {
		m := readMsg(t, c)
		md := m["media"].(map[string]any)
		if m["event"] != "media" || m["streamSid"] != streamSid || m["sequenceNumber"] != strconv.Itoa(i+2) ||
			md["chunk"] != strconv.Itoa(i+1) || md["timestamp"] != strconv.Itoa(i*20) || md["track"] != "inbound" {
			t.Fatalf("media %d: %v", i, m)
		}
		ulaw, err := base64.StdEncoding.DecodeString(md["payload"].(string))
		if err != nil || len(ulaw) != 160 {
			t.Fatalf("payload: %d bytes, %v", len(ulaw), err)
		}
		for _, u := range ulaw {
			heard = append(heard, g711.DecodeUlawFrame(u))
		}
	}
	if f := pcm.DominantFrequency(heard, 8000); math.Abs(f-1000) > 20 {
		t.Fatalf("bot heard %.0f Hz, want 1000", f)
	}

	// Bot audio of any size is decoded and queued at 8 kHz; mark and clear.
	reply := make([]byte, 1234)
	for i := range reply {
		reply[i] = g711.EncodeUlawFrame(tone[i])
	}
	writeMsg(t, c, map[string]any{"event": "media", "streamSid": streamSid,
		"media": map[string]any{"payload": base64.StdEncoding.EncodeToString(reply)}})
	writeMsg(t, c, map[string]any{"event": "mark", "streamSid": streamSid, "mark": map[string]any{"name": "greeting"}})
	writeMsg(t, c, map[string]any{"event": "clear", "streamSid": streamSid})
	ctl.want(t, "mark:greeting")
	ctl.want(t, "clear")
	played, rates := ctl.playedCopy()
	if len(played) != 1234 || rates[0] != 8000 || played[100] != g711.DecodeUlawFrame(reply[100]) {
		t.Fatalf("played %d samples at %v", len(played), rates)
	}

	// Events become dtmf and mark messages.
	s.Event(Event{Kind: DTMF, Digit: '7'})
	s.Event(Event{Kind: MarkPlayed, Name: "greeting"})
	m = readMsg(t, c)
	if d := m["dtmf"].(map[string]any); m["event"] != "dtmf" || d["digit"] != "7" || d["track"] != "inbound_track" || m["streamSid"] != streamSid {
		t.Fatalf("dtmf %v", m)
	}
	m = readMsg(t, c)
	if mk := m["mark"].(map[string]any); m["event"] != "mark" || mk["name"] != "greeting" || m["sequenceNumber"] != "8" {
		t.Fatalf("mark %v", m)
	}

	// Close: stop, then a normal close.
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	m = readMsg(t, c)
	if sp := m["stop"].(map[string]any); m["event"] != "stop" || sp["callSid"] != st["callSid"] || sp["accountSid"] != st["accountSid"] {
		t.Fatalf("stop %v", m)
	}
	_, _, err := c.Read(context.Background())
	if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after stop: %v, want a normal close", err)
	}
	<-done
	select {
	case a := <-ctl.acts:
		t.Fatalf("action after our own close: %q", a)
	default:
	}
}

// The bot closing the socket hangs up; a connection that breaks is a failure
// the bridge may fall back from.
func TestTwilioBotEnds(t *testing.T) {
	noLeaks(t)
	t.Run("close", func(t *testing.T) {
		b := newBot(t)
		ctl := newLiveControls()
		s, c := startTwilio(t, b, ctl, nil)
		defer s.Close()
		readMsg(t, c)
		readMsg(t, c)
		c.Close(websocket.StatusNormalClosure, "bye")
		if a := ctl.want(t, "hangup:"); !strings.Contains(a, "bot closed") {
			t.Fatalf("action %q", a)
		}
	})
	t.Run("lost", func(t *testing.T) {
		b := newBot(t)
		ctl := newLiveControls()
		s, c := startTwilio(t, b, ctl, nil)
		defer s.Close()
		readMsg(t, c)
		c.CloseNow()
		if a := ctl.want(t, "fail:"); !strings.Contains(a, "lost") {
			t.Fatalf("action %q", a)
		}
	})
}

// A bot that stops reading never blocks the call's clock: frames are dropped.
func TestTwilioSlowBotDoesNotBlock(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	s, _ := startTwilio(t, b, newLiveControls(), nil)
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(i * 100)
	}
	start := time.Now()
	for range 20000 { // 400 s of audio, far more than the socket buffers hold
		s.Audio(frame, 8000)
	}
	d := time.Since(start)
	ts := s.(*twilioSession)
	if ts.w.dropped.Load() == 0 {
		t.Fatal("nothing dropped though the bot reads nothing")
	}
	t.Logf("20000 frames queued in %v, %d dropped", d, ts.w.dropped.Load())
	s.Close()
}

// Frames at another rate are resampled to 8 kHz.
func TestTwilioResamplesCallerAudio(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	s, c := startTwilio(t, b, newLiveControls(), nil)
	defer s.Close()
	readMsg(t, c)
	readMsg(t, c)
	s.Audio(make([]int16, 320), 16000)
	md := readMsg(t, c)["media"].(map[string]any)
	if p, _ := base64.StdEncoding.DecodeString(md["payload"].(string)); len(p) != 160 {
		t.Fatalf("16 kHz frame sent as %d µ-law bytes, want 160", len(p))
	}
}

// Caller frames → media messages on a real loopback WebSocket, as the
// clock sends them: back to back, the bot reading on its own goroutine.
func BenchmarkTwilioAudio(b *testing.B) {
	w, c := dialRawBot(b)
	s := &twilioSession{w: w, ctl: nopControls{}, streamSid: twilioSid("MZ")}
	got := make(chan int, 1024)
	go readFrames(c.br, got)
	go func() {
		for range got {
		}
	}()
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	b.ReportAllocs()
	for b.Loop() {
		s.Audio(frame, 8000)
	}
	c.Close()
	w.close(nil)
}

// startChunked starts a session with chunk_ms set, driven by the test's own
// Audio calls (no ticking), and reads the bot's connected and start.
func startChunked(t *testing.T, ctl Controls, chunkMs int) (Session, *websocket.Conn) {
	t.Helper()
	b := newBot(t)
	s, err := Twilio{URL: b.url(), ConnectTimeout: 2 * time.Second, ChunkMs: chunkMs}.Start(context.Background(), Call{ID: "call-1"}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	c := b.accept(t)
	readMsg(t, c) // connected
	readMsg(t, c) // start
	return s, c
}

// chunk_ms 40: two frames per media message, timestamps in steps of 40 ms, the
// audio unchanged; a part-filled chunk at the end is not sent.
func TestTwilioChunkMs(t *testing.T) {
	noLeaks(t)
	s, c := startChunked(t, newLiveControls(), 40)
	tone := pcm.Tone(700, 8000, 2000, 0.3)
	for i := range 7 { // three whole chunks and half of one
		s.Audio(tone[i*160:(i+1)*160], 8000)
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	var heard []byte
	for i, want := range []int{320, 320, 320} {
		m := readMsg(t, c)
		md := m["media"].(map[string]any)
		if m["event"] != "media" || md["chunk"] != strconv.Itoa(i+1) || md["timestamp"] != strconv.Itoa(i*40) {
			t.Fatalf("media %d: %v", i, m)
		}
		ulaw, err := base64.StdEncoding.DecodeString(md["payload"].(string))
		if err != nil || len(ulaw) != want {
			t.Fatalf("media %d: %d bytes (%v), want %d", i, len(ulaw), err, want)
		}
		heard = append(heard, ulaw...)
	}
	for i, u := range heard {
		if u != g711.EncodeUlawFrame(tone[i]) {
			t.Fatalf("sample %d: the bot heard %#x, the caller said %#x", i, u, g711.EncodeUlawFrame(tone[i]))
		}
	}
	if m := readMsg(t, c); m["event"] != "stop" {
		t.Fatalf("after the audio: %v, want stop", m)
	}
	c.Close(websocket.StatusNormalClosure, "")
	<-done
}

// playoutControls queues what the bot plays, as the bridge's playout does:
// the test takes a frame from it after each Audio, as the call's clock does.
type playoutControls struct {
	*liveControls
	qmu sync.Mutex
	q   []int16
}

func (c *playoutControls) Play(s []int16, rate int) {
	c.qmu.Lock()
	c.q = append(c.q, s...)
	c.qmu.Unlock()
	c.liveControls.Play(s, rate)
}

func (c *playoutControls) Queued() time.Duration {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return time.Duration(len(c.q)) * time.Second / twilioRate
}

// pop takes up to one frame.
func (c *playoutControls) pop() []int16 {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	n := min(len(c.q), 160)
	f := append([]int16(nil), c.q[:n]...)
	c.q = c.q[n:]
	return f
}

// A bot that answers in 40 ms chunks is read on every other tick: a tick
// whose audio is queued already leaves its read out, never two in a row, and
// the caller still hears every sample the bot sent, in order.
func TestTwilioPollsBehindQueuedAudio(t *testing.T) {
	noLeaks(t)
	ctl := &playoutControls{liveControls: newLiveControls()}
	s, c := startChunked(t, ctl, 40)
	echoed := make(chan int, 64)
	go func() { // the bot: each media message straight back
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				close(echoed)
				return
			}
			if p, ok := twilioMediaPayload(data); ok {
				reply := `{"event":"media","streamSid":"x","media":{"payload":"` + string(p) + `"}}`
				if c.Write(context.Background(), websocket.MessageText, []byte(reply)) != nil {
					return
				}
				echoed <- base64.StdEncoding.DecodedLen(len(p))
			}
		}
	}()

	const frames = 60
	tone := pcm.Tone(700, 8000, frames*160, 0.3)
	w := sessionWS(s)
	var heard []int16
	skips, prevSkipped := 0, false
	for i := 0; i < frames || len(heard) < frames*160; i++ {
		if i > frames+100 {
			t.Fatalf("heard %d samples of %d after %d ticks", len(heard), frames*160, i)
		}
		time.Sleep(5 * time.Millisecond)
		ahead := ctl.Queued() >= pcm.FrameDuration
		frame := make([]int16, 160) // silence once the caller's audio is all sent
		if i < frames {
			frame = tone[i*160 : (i+1)*160]
		}
		s.Audio(frame, 8000)
		switch {
		case w.skipped && (!ahead || prevSkipped):
			t.Fatalf("tick %d left its read out (audio queued ahead: %v; the tick before left its out: %v)", i, ahead, prevSkipped)
		case !w.skipped && ahead && !prevSkipped:
			t.Fatalf("tick %d read, with this tick's audio queued and the tick before read", i)
		}
		if w.skipped {
			skips++
		}
		prevSkipped = w.skipped
		heard = append(heard, ctl.pop()...)
	}
	if skips < frames/4 {
		t.Fatalf("%d ticks of %d left their read out; a 40 ms bot leaves about half", skips, frames)
	}
	for i := range frames * 160 {
		if want := g711.DecodeUlawFrame(g711.EncodeUlawFrame(tone[i])); heard[i] != want {
			t.Fatalf("sample %d: the caller heard %d, want %d", i, heard[i], want)
		}
	}
	s.Close()
	for range echoed {
	}
}
