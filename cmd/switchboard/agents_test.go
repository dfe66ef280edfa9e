package main

// Agent sessions end to end: the real gateway dials real WebSocket bots (in
// this test process, or the programs in examples/) and real callers hear them.

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// twilioBot is a Twilio Media Streams bot served from the test process; run
// gets each connection after the start message.
type twilioBot struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []map[string]any // every message the gateway sent after start, in order
}

func newTwilioBot(t *testing.T, run func(ctx context.Context, c *websocket.Conn, b *twilioBot, streamSid string)) *twilioBot {
	b := &twilioBot{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 22)
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		var sid string
		for sid == "" {
			m, err := readJSON(ctx, c)
			if err != nil {
				return
			}
			if m["event"] == "start" {
				sid = m["streamSid"].(string)
			}
		}
		run(ctx, c, b, sid)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *twilioBot) url() string { return "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/media" }

func (b *twilioBot) keep(m map[string]any) {
	b.mu.Lock()
	b.got = append(b.got, m)
	b.mu.Unlock()
}

func (b *twilioBot) events(kind string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for _, m := range b.got {
		if m["event"] == kind {
			out = append(out, m)
		}
	}
	return out
}

func readJSON(ctx context.Context, c *websocket.Conn) (map[string]any, error) {
	_, data, err := c.Read(ctx)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	return m, json.Unmarshal(data, &m)
}

func sendJSON(ctx context.Context, c *websocket.Conn, v any) error {
	data, _ := json.Marshal(v)
	return c.Write(ctx, websocket.MessageText, data)
}

// twilioEcho sends every media payload straight back.
func twilioEcho(ctx context.Context, c *websocket.Conn, b *twilioBot, sid string) {
	for {
		m, err := readJSON(ctx, c)
		if err != nil {
			return
		}
		b.keep(m)
		if m["event"] == "media" {
			p := m["media"].(map[string]any)["payload"]
			if sendJSON(ctx, c, map[string]any{"event": "media", "streamSid": sid, "media": map[string]any{"payload": p}}) != nil {
				return
			}
		}
	}
}

func botPlan(target string, extra string) string {
	return fmt.Sprintf("routes:\n  - name: bot\n    match: { to: bot }\n    target: %s\n%sdefault:\n  target: { type: echo }\n", target, extra)
}

// dialBot calls the bot route with `switchboard dial`, playing in (if set)
// and recording what the caller hears.
func dialBot(t *testing.T, g *gateway, in string, seconds float64) (out string, res string, err error) {
	t.Helper()
	dir := t.TempDir()
	out = filepath.Join(dir, "heard.wav")
	args := []string{"dial", "sip:bot@" + g.sipAddr(), "--record", out, "--seconds", fmt.Sprint(seconds)}
	if in != "" {
		args = append(args, "--play", in)
	}
	res, err = runTool(t, time.Duration(seconds+20)*time.Second, dir, binPath, args...)
	return out, res, err
}

// A Twilio-protocol bot that echoes makes a softphone hear its own tone; the
// bot sees Twilio's messages in Twilio's order and shapes.
func TestTwilioBotEchoBaresip(t *testing.T) {
	bot := newTwilioBot(t, twilioEcho)
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(
		`{ type: agent, protocol: twilio, url: "%s", params: { caller: "{{.From}}" } }`, bot.url()), "")})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	heard := baresipCall(t, "sip:bot@"+g.sipAddr(), "PCMU", tone, 6)
	checkTone(t, heard, 1000, 3*time.Second)
	media := bot.events("media")
	if len(media) < 150 {
		t.Fatalf("bot got %d media messages, want one per 20 ms of a 4 s call", len(media))
	}
	if stop := bot.events("stop"); len(stop) != 1 {
		t.Fatalf("bot got %d stop messages, want 1", len(stop))
	}
}

// The native-protocol example bot (examples/native-echo-go), asking for
// 16 kHz, makes a softphone hear its own tone.
func TestNativeExampleEchoBaresip(t *testing.T) {
	port := startExample(t, "go-native", exampleGo(t), "-addr", "127.0.0.1:0", "-rate", "16000")
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(
		`{ type: agent, protocol: switchboard, url: "ws://127.0.0.1:%d/" }`, port), "")})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	heard := baresipCall(t, "sip:bot@"+g.sipAddr(), "PCMA", tone, 6)
	checkTone(t, heard, 1000, 3*time.Second)
	if !strings.Contains(g.logs.String(), "rate=16000") {
		t.Fatal("the gateway did not log the bot's 16 kHz accept")
	}
}

// The Node.js bot in examples/, on npm's ws package, talks to the gateway.
func TestNodeTwilioExample(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not installed; the Node.js example bot cannot run")
	}
	dir, _ := filepath.Abs("../../examples/twilio-echo-node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws", "package.json")); err != nil {
		t.Fatalf("npm's ws is not installed for %s: run scripts/install-deps.sh (make test does)", dir)
	}
	cmd := exec.Command("node", "echo.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PORT=0")
	port, logs := startProgram(t, "node", cmd)
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(
		`{ type: agent, protocol: twilio, url: "ws://127.0.0.1:%d/", params: { caller: "{{.From}}" } }`, port), "")})
	in := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, in, 1000, 8000, 3*time.Second)
	out, res, err := dialBot(t, g, in, 4)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, out, 1000, 2500*time.Millisecond)
	waitFor(t, 5*time.Second, "the node bot's stop and mark logs", func() bool {
		s := logs.String()
		return strings.Contains(s, "stop after") && strings.Contains(s, "mark played echo-50")
	})
	if s := logs.String(); !strings.Contains(s, `params={"caller":"switchboard"}`) {
		t.Fatalf("node bot log lacks the caller param:\n%s", s)
	}
}

// The bot closing its socket hangs up the call: the caller gets a BYE.
func TestBotHangupSendsBye(t *testing.T) {
	bot := newTwilioBot(t, func(ctx context.Context, c *websocket.Conn, b *twilioBot, sid string) {
		time.Sleep(time.Second)
		c.Close(websocket.StatusNormalClosure, "done")
	})
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: twilio, url: "%s" }`, bot.url()), "")})
	start := time.Now()
	_, res, err := dialBot(t, g, "", 8)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	if !strings.Contains(res, "by=callee") || time.Since(start) > 6*time.Second {
		t.Fatalf("the call was not ended by the gateway's BYE after the bot hung up (%v):\n%s", time.Since(start), res)
	}
	if !strings.Contains(g.logs.String(), "by=agent") {
		t.Fatal("the gateway did not log the agent's hang-up")
	}
}

// Barge-in: the bot sends 5 s of tone and a mark, then clear 1 s later. The
// caller hears at most 1 s + 60 ms of it, and the pending mark comes back.
func TestBargeInClear(t *testing.T) {
	cleared := make(chan struct{}, 1)
	bot := newTwilioBot(t, func(ctx context.Context, c *websocket.Conn, b *twilioBot, sid string) {
		tone := pcm.Tone(1000, 8000, 5*8000, 0.3)
		ulaw := make([]byte, len(tone))
		for i, v := range tone {
			ulaw[i] = g711.EncodeUlawFrame(v)
		}
		go func() { // keep reading: marks come back here
			for {
				m, err := readJSON(ctx, c)
				if err != nil {
					return
				}
				b.keep(m)
			}
		}()
		// The first media message means the call is answered and the clock runs.
		for len(b.events("media")) == 0 && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		sendJSON(ctx, c, map[string]any{"event": "media", "streamSid": sid, "media": map[string]any{"payload": base64.StdEncoding.EncodeToString(ulaw)}})
		sendJSON(ctx, c, map[string]any{"event": "mark", "streamSid": sid, "mark": map[string]any{"name": "tone-end"}})
		time.Sleep(time.Second)
		sendJSON(ctx, c, map[string]any{"event": "clear", "streamSid": sid})
		cleared <- struct{}{}
		<-ctx.Done()
	})
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: twilio, url: "%s" }`, bot.url()), "")})
	out, res, err := dialBot(t, g, "", 3)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	select {
	case <-cleared:
	default:
		t.Fatal("the bot never sent clear")
	}
	s, rate := readWAV(t, out)
	span := toneSpan(s, rate)
	heard := time.Duration(len(span)) * time.Second / time.Duration(rate)
	t.Logf("tone heard on the wire: %v (clear sent 1 s after the tone)", heard)
	if heard > time.Second+60*time.Millisecond || heard < 800*time.Millisecond {
		t.Fatalf("caller heard %v of the tone, want 1 s (at most 1.06 s)", heard)
	}
	waitFor(t, 2*time.Second, "the pending mark's echo", func() bool { return len(bot.events("mark")) == 1 })
	if name := bot.events("mark")[0]["mark"].(map[string]any)["name"]; name != "tone-end" {
		t.Fatalf("mark echoed as %v", name)
	}
}

// Bot down: the route's fallback takes the call; with no fallback the caller
// gets the configured status before answer.
func TestBotDownFallback(t *testing.T) {
	dead := fmt.Sprintf("ws://127.0.0.1:%d/", freePort(t)) // nobody listens
	// A bot that takes the TCP connection but never answers the handshake.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	plan := fmt.Sprintf(`routes:
  - name: bot
    match: { to: bot }
    target: { type: agent, protocol: twilio, url: "%s" }
    fallback:
      - { type: agent, protocol: switchboard, url: "ws://%s/", connect_timeout: 300ms }
      - { type: echo }
  - name: nofallback
    match: { to: nofallback }
    target: { type: agent, protocol: twilio, url: "%s" }
    on_failure: { status: 480 }
default:
  target: { type: echo }
`, dead, mute.Addr(), dead)
	g := startAgentGateway(t, gwOptions{dialplan: plan})

	in := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, in, 1000, 8000, 2*time.Second)
	out, res, err := dialBot(t, g, in, 3)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, out, 1000, 1500*time.Millisecond)
	if l := g.logs.String(); !strings.Contains(l, "fell back") || !strings.Contains(l, "no answer within 300ms") {
		t.Fatalf("no fallback in the log:\n%s", l)
	}

	res, err = runTool(t, 20*time.Second, t.TempDir(), binPath, "dial", "sip:nofallback@"+g.sipAddr(), "--seconds", "1")
	if err == nil || !strings.Contains(res, "480") {
		t.Fatalf("a call to a dead bot without fallback: %v\n%s", err, res)
	}
}

// A bot lost mid-call (its connection drops, no close handshake): the call
// goes on with the fallback, logged with the reason.
func TestBotLostMidCallFallsBack(t *testing.T) {
	bot := newTwilioBot(t, func(ctx context.Context, c *websocket.Conn, b *twilioBot, sid string) {
		time.Sleep(time.Second)
		c.CloseNow()
	})
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: twilio, url: "%s" }`, bot.url()),
		"    fallback: [ { type: echo } ]\n")})
	in := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, in, 1000, 8000, 4*time.Second)
	out, res, err := dialBot(t, g, in, 4.5)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, out, 1000, 2500*time.Millisecond) // echo from about 1 s on
	if l := g.logs.String(); !strings.Contains(l, "agent lost mid-call; fell back") || !strings.Contains(l, "bot connection lost") {
		t.Fatalf("no mid-call fallback in the log:\n%s", l)
	}
}

// startAgentGateway is startGateway, failing the test if the gateway logged a
// data race (race builds) or a panic.
func startAgentGateway(t *testing.T, o gwOptions) *gateway {
	g := startGateway(t, o)
	t.Cleanup(func() {
		if l := g.logs.String(); strings.Contains(l, "DATA RACE") || strings.Contains(l, "panic:") {
			t.Error("the gateway logged a data race or a panic")
		}
	})
	return g
}

// exampleGo builds examples/native-echo-go.
func exampleGo(t *testing.T) *exec.Cmd {
	bin := filepath.Join(t.TempDir(), "native-echo")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/native-echo-go").CombinedOutput(); err != nil {
		t.Fatalf("building the native example: %v\n%s", err, out)
	}
	return exec.Command(bin)
}

func startExample(t *testing.T, name string, cmd *exec.Cmd, args ...string) int {
	cmd.Args = append(cmd.Args, args...)
	port, _ := startProgram(t, name, cmd)
	return port
}

// startProgram runs a bot program until the test ends and returns the port
// it printed as "listening on PORT", and its output so far and to come.
func startProgram(t *testing.T, name string, cmd *exec.Cmd) (int, *syncBuffer) {
	t.Helper()
	pr, pw := io.Pipe()
	logs := &syncBuffer{}
	cmd.Stdout = pw
	cmd.Stderr = logs
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		pw.Close()
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs.String())
		}
	})
	ports := make(chan int, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(logs, line)
			var p int
			if _, err := fmt.Sscanf(line, "listening on %d", &p); err == nil {
				ports <- p
			}
		}
	}()
	select {
	case p := <-ports:
		return p, logs
	case <-time.After(15 * time.Second):
		t.Fatalf("%s did not start listening within 15 s:\n%s", name, logs.String())
		return 0, nil
	}
}
