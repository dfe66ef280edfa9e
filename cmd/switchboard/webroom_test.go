package main

// The built-in WebRTC room end to end: headless Chromium joins /rooms/<name>
// from the page the gateway serves, a SIP caller joins the same room through
// the dialplan, and each hears the other.

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// chromium is a headless Chromium on one page, driven over the DevTools protocol.
type chromium struct {
	t   *testing.T
	ws  *websocket.Conn
	seq int
}

// startChromium opens url in a headless Chromium whose fake microphone plays
// wav (looped). The whole process group is killed at cleanup.
func startChromium(t *testing.T, url, wav string) *chromium {
	t.Helper()
	needTool(t, "chromium")
	profile := t.TempDir()
	logPath := filepath.Join(t.TempDir(), "chromium.log")
	logFile, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command("chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+profile,
		"--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream", "--use-file-for-fake-audio-capture="+wav,
		"--autoplay-policy=no-user-gesture-required", // the page's AudioContext runs without a click
		"--allow-loopback-in-peer-connection",        // ICE candidates on 127.0.0.1, like the gateway's
		"--remote-debugging-port=0", url)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // its renderer and GPU helpers die with it
	must(t, cmd.Start())
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logPath)
			t.Logf("chromium log:\n%s", tail(string(data)))
		}
	})

	// With port 0 Chromium picks one and writes it into the profile.
	var port string
	waitFor(t, 20*time.Second, "Chromium's DevToolsActivePort", func() bool {
		data, err := os.ReadFile(filepath.Join(profile, "DevToolsActivePort"))
		port, _, _ = strings.Cut(string(data), "\n")
		return err == nil && port != ""
	})
	c := &chromium{t: t}
	waitFor(t, 10*time.Second, "the page's DevTools target", func() bool {
		resp, err := http.Get("http://127.0.0.1:" + port + "/json/list")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var targets []struct{ Type, URL, WebSocketDebuggerURL string }
		if json.NewDecoder(resp.Body).Decode(&targets) != nil {
			return false
		}
		for _, tg := range targets {
			if tg.Type != "page" || tg.URL != url {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, tg.WebSocketDebuggerURL, nil)
			if err != nil {
				return false
			}
			ws.SetReadLimit(4 << 20)
			c.ws = ws
			t.Cleanup(func() { ws.CloseNow() })
			return true
		}
		return false
	})
	return c
}

// eval evaluates a JavaScript expression in the page and decodes its value into v.
func (c *chromium) eval(expr string, v any) {
	c.t.Helper()
	c.seq++
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := json.Marshal(map[string]any{"id": c.seq, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true}})
	must(c.t, c.ws.Write(ctx, websocket.MessageText, req))
	for {
		_, data, err := c.ws.Read(ctx)
		must(c.t, err)
		var resp struct {
			ID     int
			Result struct {
				Result struct{ Value json.RawMessage }
			}
			Error *struct{ Message string }
		}
		if json.Unmarshal(data, &resp) != nil || resp.ID != c.seq {
			continue // an event, or another reply
		}
		if resp.Error != nil {
			c.t.Fatalf("DevTools: %s", resp.Error.Message)
		}
		must(c.t, json.Unmarshal(resp.Result.Result.Value, v))
		return
	}
}

// pageState is what page.html publishes as window.webroom.
type pageState struct {
	State string  `json:"state"`
	ID    string  `json:"id"`
	Freq  float64 `json:"freq"`  // dominant frequency the page receives, Hz
	Level float64 `json:"level"` // its RMS, full scale 1
	Error string  `json:"error"`
}

func (c *chromium) page() pageState {
	var s pageState
	c.eval("window.webroom || {}", &s)
	return s
}

type roomParticipant struct {
	ID, Kind, Name string
	CallID         string `json:"call_id"`
}

// participants reads GET /rooms/<room>/participants: the status and who is in.
func (g *gateway) participants(room string) (int, []roomParticipant) {
	g.t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + "/rooms/" + room + "/participants")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	var v struct{ Participants []roomParticipant }
	json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode, v.Participants
}

func kinds(ps []roomParticipant) string {
	var ks []string
	for _, p := range ps {
		ks = append(ks, p.Kind)
	}
	return strings.Join(ks, ",")
}

// dialInBackground runs `switchboard dial` and returns its output once it exits.
func dialInBackground(t *testing.T, dir string, args ...string) (<-chan string, *exec.Cmd) {
	cmd := exec.Command(binPath, append([]string{"dial"}, args...)...)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	done := make(chan string, 1)
	go func() { cmd.Wait(); done <- out.String() }()
	t.Cleanup(func() { cmd.Process.Kill() })
	return done, cmd
}

func waitDial(t *testing.T, done <-chan string, limit time.Duration) string {
	t.Helper()
	select {
	case out := <-done:
		return out
	case <-time.After(limit):
		t.Fatalf("switchboard dial still running after %v", limit)
		return ""
	}
}

const roomPlan = `routes:
  - name: conference
    match: { to: "~^conf" }
    target: { type: room, room: { builtin: { name: "{{.To}}" } } }
`

// Headless Chromium joins /rooms/conf42 with a 1 kHz fake microphone; a SIP
// caller (baresip) dialling conf42 sends 440 Hz. The caller's recording holds the
// browser's 1 kHz, the page's AnalyserNode hears 440 Hz; when the caller hangs
// up it leaves the room, and deleting the room sends the next caller a BYE.
func TestBuiltinRoomChromiumAndCaller(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: roomPlan,
		extra: "rooms:\n  ice_ip: 127.0.0.1\n  udp_port_min: 47000\n  udp_port_max: 47099\n"})
	dir := t.TempDir()
	browserTone := filepath.Join(dir, "tone.wav")
	writeTone(t, browserTone, 1000, 48000, 10*time.Second)
	callerTone := filepath.Join(dir, "tone440.wav")
	writeTone(t, callerTone, 440, 8000, 5*time.Second)

	const room = "conf42"
	url := "http://" + g.httpAddr + "/rooms/" + room
	b := startChromium(t, url, browserTone)
	var st pageState
	waitFor(t, 20*time.Second, "the page to connect", func() bool {
		st = b.page()
		if st.Error != "" {
			t.Fatalf("page: %s", st.Error)
		}
		return st.State == "connected"
	})
	status, ps := g.participants(room)
	if status != 200 || kinds(ps) != "browser" || ps[0].ID != st.ID {
		t.Fatalf("with the page joined: %d %+v (page id %q)", status, ps, st.ID)
	}

	// baresip calls conf42 with its 440 Hz file and records what it hears.
	heardc := make(chan string, 1)
	go func() { heardc <- baresipCall(t, "sip:"+room+"@"+g.sipAddr(), "PCMU", callerTone, 8) }()
	waitFor(t, 10*time.Second, "the caller in the room", func() bool {
		_, ps = g.participants(room)
		return kinds(ps) == "browser,phone"
	})
	if ps[1].CallID == "" {
		t.Errorf("phone participant without a call id: %+v", ps[1])
	}
	// The page hears the caller: the AnalyserNode's strongest bin is 440 Hz
	// (bins are 48000/8192 ≈ 5.9 Hz wide).
	waitFor(t, 5*time.Second, "the page to hear 440 Hz", func() bool {
		st = b.page()
		return math.Abs(st.Freq-440) <= 10 && st.Level > 0.02
	})
	t.Logf("page hears %.0f Hz at level %.3f", st.Freq, st.Level)

	var heard string
	select {
	case heard = <-heardc:
	case <-time.After(30 * time.Second):
		t.Fatal("baresip did not finish")
	}
	checkTone(t, heard, 1000, 3*time.Second) // the browser's fake microphone

	// Hang-up: the caller's participant leaves; the browser stays, and hears silence.
	waitFor(t, 5*time.Second, "the caller to leave the room", func() bool {
		_, ps = g.participants(room)
		return kinds(ps) == "browser"
	})
	waitFor(t, 5*time.Second, "the page to hear silence", func() bool { return b.page().Freq == 0 })

	// Room deleted: a caller in it gets a BYE, the room is gone.
	done, _ := dialInBackground(t, dir, "sip:"+room+"@"+g.sipAddr(), "--play", callerTone, "--seconds", "30")
	waitFor(t, 5*time.Second, "the second caller in the room", func() bool {
		_, ps = g.participants(room)
		return kinds(ps) == "browser,phone"
	})
	req, _ := http.NewRequest("DELETE", url, nil)
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE %s: %s", url, resp.Status)
	}
	deleted := time.Now()
	out := waitDial(t, done, 10*time.Second)
	if !strings.Contains(out, `ended by=callee cause="bye"`) {
		t.Fatalf("after the room was deleted the caller saw: %s", out)
	}
	t.Logf("BYE %v after DELETE: %s", time.Since(deleted).Round(time.Millisecond), strings.TrimSpace(out))
	if status, _ := g.participants(room); status != http.StatusNotFound {
		t.Fatalf("participants of a deleted room: %d, want 404", status)
	}
	waitFor(t, 15*time.Second, "the page to be disconnected", func() bool { return b.page().State != "connected" })
	if !strings.Contains(g.logs.String(), "room deleted") {
		t.Fatalf("no room deleted in the log")
	}
}

// A room page for a name that cannot be a room is refused; the list of rooms is JSON.
func TestBuiltinRoomHTTP(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: roomPlan})
	for path, want := range map[string]int{"/rooms/conf1": 200, "/rooms/a%20b": 400, "/rooms/": 200, "/rooms/nobody/participants": 404} {
		resp, err := http.Get("http://" + g.httpAddr + path)
		must(t, err)
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: %d, want %d: %s", path, resp.StatusCode, want, body.String())
		}
		if path == "/rooms/conf1" && !strings.Contains(body.String(), "RTCPeerConnection") {
			t.Errorf("GET %s: not the room page", path)
		}
	}
}
