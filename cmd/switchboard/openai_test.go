package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// fakeOpenAI stands in for OpenAI's Realtime endpoint on 127.0.0.1: it speaks
// session.created / session.updated as the service does, then runs the test's
// script with the client's events on a channel.
type fakeOpenAI struct {
	srv    *httptest.Server
	authz  chan string
	update chan map[string]any
}

type rtConn struct {
	t      *testing.T
	c      *websocket.Conn
	events chan map[string]any // every client event after session.update; closed when the client goes
}

func startFakeOpenAI(t *testing.T, script func(rc *rtConn)) *fakeOpenAI {
	f := &fakeOpenAI{authz: make(chan string, 1), update: make(chan map[string]any, 1)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case f.authz <- r.Header.Get("Authorization") + " model=" + r.URL.Query().Get("model"):
		default:
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 20)
		rc := &rtConn{t: t, c: c, events: make(chan map[string]any, 4096)}
		rc.send(map[string]any{"type": "session.created", "session": map[string]any{"type": "realtime"}})
		_, data, err := c.Read(r.Context())
		if err != nil {
			return
		}
		var upd map[string]any
		json.Unmarshal(data, &upd)
		select {
		case f.update <- upd:
		default:
		}
		rc.send(map[string]any{"type": "session.updated", "session": upd["session"]})
		go func() {
			defer close(rc.events)
			for {
				_, data, err := c.Read(context.Background())
				if err != nil {
					return
				}
				var m map[string]any
				if json.Unmarshal(data, &m) == nil {
					rc.events <- m
				}
			}
		}()
		script(rc)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeOpenAI) url() string {
	return "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/v1/realtime"
}

func (rc *rtConn) send(v any) {
	b, _ := json.Marshal(v)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rc.c.Write(ctx, websocket.MessageText, b); err != nil {
		rc.t.Logf("fake openai write: %v", err)
	}
}

// next returns the next client event of type typ, dropping others; nil when
// the client is gone or none comes within d.
func (rc *rtConn) next(typ string, d time.Duration) map[string]any {
	deadline := time.After(d)
	for {
		select {
		case m, ok := <-rc.events:
			if !ok {
				return nil
			}
			if m["type"] == typ {
				return m
			}
		case <-deadline:
			return nil
		}
	}
}

// drain waits until the client closes the connection.
func (rc *rtConn) drain(d time.Duration) bool {
	deadline := time.After(d)
	for {
		select {
		case _, ok := <-rc.events:
			if !ok {
				return true
			}
		case <-deadline:
			return false
		}
	}
}

func openaiPlan(url, route string) string {
	return fmt.Sprintf(`routes:
  - name: ai
    match: { to: %s }
    target:
      type: agent
      protocol: openai-realtime
      url: %s
      model: gpt-realtime-e2e
      voice: marin
      instructions: You answer the phone.
      api_key_env: SB_TEST_OPENAI_KEY
      connect_timeout: 3s
`, route, url)
}

// The gateway against a fake Realtime server over a real WebSocket: the
// session is configured for G.711 µ-law both ways, the caller's 440 Hz reaches
// the model in input_audio_buffer.append, the model's 1 kHz reply reaches the
// caller's RTP, speech_started after 1 s cuts the reply (the caller hears about
// 1 s of the 2 s sent) and the truncate says about 1000 ms were heard, and
// end_call hangs up.
func TestOpenAIRealtimeCall(t *testing.T) {
	type result struct {
		heard      []int16
		truncate   map[string]any
		closedByUs bool
	}
	res := make(chan result, 1)
	f := startFakeOpenAI(t, func(rc *rtConn) {
		var r result
		for len(r.heard) < 8000 { // 1 s of the caller
			m := rc.next("input_audio_buffer.append", 5*time.Second)
			if m == nil {
				break
			}
			b, _ := base64.StdEncoding.DecodeString(m["audio"].(string))
			for _, x := range b {
				r.heard = append(r.heard, g711.DecodeUlawFrame(x))
			}
		}
		tone := pcm.Tone(1000, 8000, 16000, 0.3) // 2 s, sent at once as the model does
		for i := 0; i < len(tone); i += 1600 {
			b := make([]byte, 1600)
			for j, v := range tone[i : i+1600] {
				b[j] = g711.EncodeUlawFrame(v)
			}
			rc.send(map[string]any{"type": "response.output_audio.delta", "response_id": "resp_1", "item_id": "item_1",
				"output_index": 0, "content_index": 0, "delta": base64.StdEncoding.EncodeToString(b)})
		}
		time.Sleep(time.Second)
		rc.send(map[string]any{"type": "input_audio_buffer.speech_started", "audio_start_ms": 2000, "item_id": "item_2"})
		r.truncate = rc.next("conversation.item.truncate", 3*time.Second)
		time.Sleep(500 * time.Millisecond)
		rc.send(map[string]any{"type": "response.function_call_arguments.done", "response_id": "resp_2", "item_id": "item_3",
			"output_index": 0, "call_id": "call_1", "name": "end_call", "arguments": `{"reason":"caller is done"}`})
		r.closedByUs = rc.drain(5 * time.Second)
		res <- r
	})
	t.Setenv("SB_TEST_OPENAI_KEY", "sk-e2e")
	g := startGateway(t, gwOptions{dialplan: openaiPlan(f.url(), "ai")})

	dir := t.TempDir()
	in, rec := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	writeTone(t, in, 440, 8000, 6*time.Second)
	start := time.Now()
	out, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:ai@"+g.sipAddr(), "--play", in, "--record", rec, "--seconds", "10")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	if !strings.Contains(out, "by=callee") || time.Since(start) > 8*time.Second {
		t.Fatalf("end_call did not hang up:\n%s", out)
	}
	if a := <-f.authz; a != "Bearer sk-e2e model=gpt-realtime-e2e" {
		t.Fatalf("handshake: %q", a)
	}
	upd := <-f.update
	b, _ := json.Marshal(upd)
	for _, want := range []string{`"input":{"format":{"type":"audio/pcmu"}`, `"output":{"format":{"type":"audio/pcmu"},"voice":"marin"}`,
		`"instructions":"You answer the phone."`, `"name":"end_call"`, `"name":"transfer_call"`} {
		if !strings.Contains(string(b), want) {
			t.Fatalf("session.update lacks %s:\n%s", want, b)
		}
	}

	var r result
	select {
	case r = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("fake server script did not finish")
	}
	if len(r.heard) < 8000 {
		t.Fatalf("model got %d samples of caller audio", len(r.heard))
	}
	if fr := pcm.DominantFrequency(r.heard[4000:], 8000); math.Abs(fr-440) > 10 {
		t.Fatalf("model heard %.0f Hz, want the caller's 440", fr)
	}
	if r.truncate == nil {
		t.Fatal("no conversation.item.truncate after speech_started")
	}
	ms, _ := r.truncate["audio_end_ms"].(float64)
	if r.truncate["item_id"] != "item_1" || r.truncate["content_index"] != 0.0 || ms < 800 || ms > 1400 {
		t.Fatalf("truncate %v, want item_1, content 0, about 1000 ms", r.truncate)
	}
	if !r.closedByUs {
		t.Fatal("the gateway did not close the Realtime connection after the call")
	}

	s, rate := readWAV(t, rec)
	span := toneSpan(s, rate)
	got := time.Duration(len(span)) * time.Second / time.Duration(rate)
	if got < 700*time.Millisecond || got > 1400*time.Millisecond {
		t.Fatalf("caller heard %v of the reply, want about 1 s (2 s sent, cut by barge-in)", got)
	}
	if fr := pcm.DominantFrequency(span, rate); math.Abs(fr-1000) > 20 {
		t.Fatalf("caller heard %.0f Hz, want 1000", fr)
	}
	if !strings.Contains(g.logs.String(), `cause="openai: end_call"`) {
		t.Fatal("no end_call hang-up in the gateway log")
	}
	t.Logf("caller heard %v of 1 kHz; truncate audio_end_ms=%.0f", got, ms)
}
