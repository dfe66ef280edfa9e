package agent

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// fakeRealtime is a local stand-in for OpenAI's Realtime endpoint: it checks
// the handshake, speaks session.created/session.updated as the service does,
// and hands the connection to the test.
type fakeRealtime struct {
	srv     *httptest.Server
	conns   chan *websocket.Conn
	done    chan struct{}
	authz   chan string
	model   chan string
	reject  string // a session.update answered with this error message
	updates chan map[string]any
}

func newFakeRealtime(t *testing.T) *fakeRealtime {
	f := &fakeRealtime{conns: make(chan *websocket.Conn, 1), done: make(chan struct{}),
		authz: make(chan string, 1), model: make(chan string, 1), updates: make(chan map[string]any, 1)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/realtime" {
			http.NotFound(w, r)
			return
		}
		f.authz <- r.Header.Get("Authorization")
		f.model <- r.URL.Query().Get("model")
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		ctx := r.Context()
		rtWrite(t, c, map[string]any{"type": "session.created", "event_id": "ev_1", "session": map[string]any{"type": "realtime"}})
		_, data, err := c.Read(ctx)
		if err != nil {
			return
		}
		var m map[string]any
		json.Unmarshal(data, &m)
		f.updates <- m
		if f.reject != "" {
			rtWrite(t, c, map[string]any{"type": "error", "error": map[string]any{"type": "invalid_request_error", "code": "invalid_value", "message": f.reject}})
		} else {
			rtWrite(t, c, map[string]any{"type": "session.updated", "event_id": "ev_2", "session": m["session"]})
		}
		f.conns <- c
		<-f.done
	}))
	t.Cleanup(func() { close(f.done); f.srv.Close() })
	return f
}

func (f *fakeRealtime) url() string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/realtime"
}

func (f *fakeRealtime) conn(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case c := <-f.conns:
		return c
	case <-time.After(3 * time.Second):
		t.Fatal("no realtime connection")
		return nil
	}
}

func rtWrite(t *testing.T, c *websocket.Conn, v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Errorf("fake realtime write: %v", err)
	}
}

// rtRead returns the next client event, skipping input_audio_buffer.append
// unless want names it.
func rtRead(t *testing.T, c *websocket.Conn, want string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		_, data, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("waiting for %s: %v", want, err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("client sent invalid JSON: %v: %s", err, data)
		}
		if m["type"] == want {
			return m
		}
		if m["type"] != "input_audio_buffer.append" {
			t.Fatalf("client sent %v, want %s", m["type"], want)
		}
	}
}

// get walks a decoded JSON object by keys.
func get(m any, keys ...string) any {
	for _, k := range keys {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[k]
	}
	return m
}

func ulawB64(s []int16) string {
	b := make([]byte, len(s))
	for i, v := range s {
		b[i] = g711.EncodeUlawFrame(v)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func startRealtime(t *testing.T, f *fakeRealtime, format string) (Session, *syncControls, *websocket.Conn, map[string]any) {
	t.Helper()
	o, err := NewOpenAIRealtime(OpenAIRealtime{URL: f.url(), Model: "gpt-realtime-test", APIKey: "sk-test",
		Instructions: "Be brief.", Voice: "marin", Format: format, ConnectTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctl := newSyncControls()
	s, err := o.Start(context.Background(), Call{ID: "c1", Logger: slog.New(slog.DiscardHandler)}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if a := <-f.authz; a != "Bearer sk-test" {
		t.Fatalf("Authorization %q", a)
	}
	if m := <-f.model; m != "gpt-realtime-test" {
		t.Fatalf("model query %q", m)
	}
	return s, ctl, f.conn(t), <-f.updates
}

// The whole conversation against the fake: session.update with G.711 µ-law
// both ways and our two tools; the caller's tone in input_audio_buffer.append;
// the model's audio played; barge-in clears playout and truncates the item to
// what was heard; end_call hangs up after the goodbye; transfer_call transfers.
func TestOpenAIRealtimeConversation(t *testing.T) {
	f := newFakeRealtime(t)
	s, ctl, c, upd := startRealtime(t, f, "")

	if upd["type"] != "session.update" || get(upd, "session", "type") != "realtime" {
		t.Fatalf("first client event %v", upd)
	}
	for _, dir := range []string{"input", "output"} {
		if got := get(upd, "session", "audio", dir, "format", "type"); got != "audio/pcmu" {
			t.Fatalf("audio.%s.format.type = %v, want audio/pcmu", dir, got)
		}
	}
	if get(upd, "session", "instructions") != "Be brief." || get(upd, "session", "audio", "output", "voice") != "marin" {
		t.Fatalf("instructions/voice not sent: %v", upd["session"])
	}
	var tools []string
	for _, tl := range get(upd, "session", "tools").([]any) {
		tools = append(tools, get(tl, "name").(string))
	}
	if !slices.Equal(tools, []string{"end_call", "transfer_call"}) {
		t.Fatalf("tools %v", tools)
	}

	// Caller audio: 1 s of 1 kHz arrives as µ-law appends of 20 ms each.
	tone := pcm.Tone(1000, 8000, 8000, 0.5)
	go func() {
		for i := 0; i < len(tone); i += 160 {
			s.Audio(tone[i:i+160], 8000)
			time.Sleep(time.Millisecond)
		}
	}()
	var heard []int16
	for len(heard) < len(tone) {
		m := rtRead(t, c, "input_audio_buffer.append")
		b, err := base64.StdEncoding.DecodeString(m["audio"].(string))
		if err != nil || len(b) != 160 {
			t.Fatalf("append of %d bytes (%v), want 160 µ-law bytes", len(b), err)
		}
		for _, x := range b {
			heard = append(heard, g711.DecodeUlawFrame(x))
		}
	}
	if fr := pcm.DominantFrequency(heard, 8000); math.Abs(fr-1000) > 20 {
		t.Fatalf("model heard %.0f Hz, want 1000", fr)
	}

	// The model's reply: 1 s of 440 Hz in two deltas (GA name, then beta name).
	reply := pcm.Tone(440, 8000, 8000, 0.5)
	rtWrite(t, c, map[string]any{"type": "response.output_audio.delta", "item_id": "item_A", "content_index": 0, "output_index": 0, "delta": ulawB64(reply[:4000])})
	rtWrite(t, c, map[string]any{"type": "response.audio.delta", "item_id": "item_A", "content_index": 0, "output_index": 0, "delta": ulawB64(reply[4000:])})
	eventually(t, "the reply played", func() bool { return len(ctl.playedCopy()) == 8000 })
	if fr := pcm.DominantFrequency(ctl.playedCopy(), 8000); math.Abs(fr-440) > 10 || ctl.rateList()[0] != 8000 {
		t.Fatalf("played %.0f Hz at %v, want 440 Hz at 8000", fr, ctl.rateList())
	}

	// Barge-in with 400 ms still queued: 600 ms were heard.
	ctl.mu.Lock()
	ctl.queued = 400 * time.Millisecond
	ctl.mu.Unlock()
	rtWrite(t, c, map[string]any{"type": "input_audio_buffer.speech_started", "audio_start_ms": 1200, "item_id": "item_U"})
	tr := rtRead(t, c, "conversation.item.truncate")
	if tr["item_id"] != "item_A" || tr["content_index"] != 0.0 || tr["audio_end_ms"] != 600.0 {
		t.Fatalf("truncate %v, want item_A/0/600", tr)
	}
	ctl.mu.Lock()
	cleared := ctl.cleared
	ctl.mu.Unlock()
	if cleared != 1 {
		t.Fatalf("playout cleared %d times, want 1", cleared)
	}
	// A straggling delta of the cut item is not played; the next item is.
	rtWrite(t, c, map[string]any{"type": "response.output_audio.delta", "item_id": "item_A", "content_index": 0, "delta": ulawB64(reply[:800])})
	rtWrite(t, c, map[string]any{"type": "response.output_audio.delta", "item_id": "item_B", "content_index": 0, "delta": ulawB64(reply[:1600])})
	eventually(t, "item_B played", func() bool { return len(ctl.playedCopy()) >= 8000+1600 })
	time.Sleep(50 * time.Millisecond)
	if n := len(ctl.playedCopy()); n != 9600 {
		t.Fatalf("played %d samples, want 9600 (the cut item's late delta dropped)", n)
	}

	// transfer_call: acknowledged to the model, done once its words have played.
	rtWrite(t, c, map[string]any{"type": "response.output_item.done", "item": map[string]any{"id": "item_T", "type": "function_call", "name": "transfer_call", "call_id": "call_T", "arguments": `{"target":"+15550100"}`}})
	out := rtRead(t, c, "conversation.item.create")
	if get(out, "item", "type") != "function_call_output" || get(out, "item", "call_id") != "call_T" {
		t.Fatalf("tool output %v", out)
	}
	if m := <-ctl.markAdded; m != markTransfer {
		t.Fatalf("mark %q", m)
	}
	s.Event(Event{Kind: MarkPlayed, Name: markTransfer})
	ctl.mu.Lock()
	transferred := ctl.transfer
	ctl.mu.Unlock()
	if transferred != "+15550100" {
		t.Fatalf("transfer to %q", transferred)
	}

	// end_call announced twice (arguments.done and output_item.done): one hang-up, after the mark.
	rtWrite(t, c, map[string]any{"type": "response.function_call_arguments.done", "item_id": "item_E", "call_id": "call_E", "name": "end_call", "arguments": `{"reason":"done"}`})
	rtWrite(t, c, map[string]any{"type": "response.output_item.done", "item": map[string]any{"id": "item_E", "type": "function_call", "name": "end_call", "call_id": "call_E", "arguments": `{"reason":"done"}`}})
	if m := <-ctl.markAdded; m != markEndCall {
		t.Fatalf("mark %q", m)
	}
	select {
	case m := <-ctl.markAdded:
		t.Fatalf("second mark %q for one tool call", m)
	case <-time.After(100 * time.Millisecond):
	}
	select {
	case <-ctl.hungUp:
		t.Fatal("hung up before the goodbye played")
	default:
	}
	s.Event(Event{Kind: MarkPlayed, Name: markEndCall})
	if r := ctl.waitHangup(t); r != "openai: end_call" {
		t.Fatalf("hang-up reason %q", r)
	}

	s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("close: %v, want a normal closure", err)
			}
			break
		}
	}
}

// pcm16: audio/pcm at 24 kHz both ways.
func TestOpenAIRealtimePCM24k(t *testing.T) {
	f := newFakeRealtime(t)
	s, ctl, c, upd := startRealtime(t, f, OpenAIFormatPCM16)
	for _, dir := range []string{"input", "output"} {
		if get(upd, "session", "audio", dir, "format", "type") != "audio/pcm" || get(upd, "session", "audio", dir, "format", "rate") != 24000.0 {
			t.Fatalf("audio.%s.format = %v", dir, get(upd, "session", "audio", dir, "format"))
		}
	}
	tone := pcm.Tone(1000, 8000, 4000, 0.5)
	go func() {
		for i := 0; i < len(tone); i += 160 {
			s.Audio(tone[i:i+160], 8000)
			time.Sleep(time.Millisecond)
		}
	}()
	var heard []int16
	for len(heard) < 12000 {
		b, _ := base64.StdEncoding.DecodeString(rtRead(t, c, "input_audio_buffer.append")["audio"].(string))
		if len(b) != 960 {
			t.Fatalf("append of %d bytes, want 960 (20 ms of 24 kHz PCM16)", len(b))
		}
		for i := 0; i < len(b); i += 2 {
			heard = append(heard, int16(binary.LittleEndian.Uint16(b[i:])))
		}
	}
	if fr := pcm.DominantFrequency(heard[2400:], 24000); math.Abs(fr-1000) > 20 {
		t.Fatalf("model heard %.0f Hz, want 1000", fr)
	}
	reply := pcm.Tone(440, 24000, 2400, 0.5)
	raw := make([]byte, 0, 4800)
	for _, v := range reply {
		raw = binary.LittleEndian.AppendUint16(raw, uint16(v))
	}
	rtWrite(t, c, map[string]any{"type": "response.output_audio.delta", "item_id": "i", "delta": base64.StdEncoding.EncodeToString(raw)})
	eventually(t, "the reply played", func() bool { return len(ctl.playedCopy()) == 2400 })
	if !slices.Equal(ctl.playedCopy(), reply) || ctl.rateList()[0] != 24000 {
		t.Fatalf("24 kHz reply not played as sent (rates %v)", ctl.rateList())
	}
}

// Setup failures end Start with an error (the route's fallback runs):
// an error event for session.update, a refused handshake; and bad settings
// are refused before any call.
func TestOpenAIRealtimeSetupFailures(t *testing.T) {
	f := newFakeRealtime(t)
	f.reject = "Invalid value: 'audio/x'"
	o, _ := NewOpenAIRealtime(OpenAIRealtime{URL: f.url(), APIKey: "k", ConnectTimeout: 2 * time.Second})
	_, err := o.Start(context.Background(), Call{Logger: slog.New(slog.DiscardHandler)}, newSyncControls())
	if err == nil || !strings.Contains(err.Error(), "Invalid value") {
		t.Fatalf("Start = %v, want the server's error", err)
	}

	o, _ = NewOpenAIRealtime(OpenAIRealtime{URL: f.url() + "/nope", APIKey: "k", ConnectTimeout: 2 * time.Second})
	if _, err := o.Start(context.Background(), Call{}, newSyncControls()); err == nil {
		t.Fatal("Start against a 404 succeeded")
	}

	for _, bad := range []OpenAIRealtime{
		{APIKey: "k", Format: "mp3"},
		{APIKey: "k", URL: "https://api.openai.com/v1/realtime"},
		{URL: "wss://x/v1/realtime"},
	} {
		if _, err := NewOpenAIRealtime(bad); err == nil {
			t.Errorf("NewOpenAIRealtime(%+v) accepted", bad)
		}
	}
	o, _ = NewOpenAIRealtime(OpenAIRealtime{APIKey: "k"})
	if got := o.endpoint(); got != "wss://api.openai.com/v1/realtime?model=gpt-realtime" {
		t.Fatalf("default endpoint %q", got)
	}
}

// The server going away mid-call ends the call with the reason.
func TestOpenAIRealtimeServerGone(t *testing.T) {
	f := newFakeRealtime(t)
	_, ctl, c, _ := startRealtime(t, f, "")
	c.Close(websocket.StatusGoingAway, "maintenance")
	if r := ctl.waitHangup(t); !strings.Contains(r, "server closed the connection (1001)") {
		t.Fatalf("reason %q", r)
	}
}

func BenchmarkOpenAIRealtimeAudio(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		ctx := r.Context()
		c.Read(ctx)
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"session.updated"}`))
		for {
			_, r, err := c.Reader(ctx)
			if err != nil {
				return
			}
			io.Copy(io.Discard, r)
		}
	}))
	defer srv.Close()
	o, _ := NewOpenAIRealtime(OpenAIRealtime{URL: "ws" + strings.TrimPrefix(srv.URL, "http"), APIKey: "k"})
	s, err := o.Start(context.Background(), Call{Logger: slog.New(slog.DiscardHandler)}, newSyncControls())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := pcm.Tone(1000, 8000, 160, 0.5)
	q := s.(*openaiSession).q
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
