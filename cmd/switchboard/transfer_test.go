package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// transferringNativeBot is a native-protocol bot that accepts at 8 kHz, stays
// silent, and half a second in asks for a transfer to target. closed is set
// when the gateway hangs it up.
func transferringNativeBot(t *testing.T, target string, closed *atomic.Int64) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		c.SetReadLimit(1 << 22)
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		if m, err := readJSON(ctx, c); err != nil || m["type"] != "start" {
			return
		}
		if sendJSON(ctx, c, map[string]any{"type": "accept", "rate": 8000}) != nil {
			return
		}
		go func() {
			time.Sleep(500 * time.Millisecond)
			sendJSON(ctx, c, map[string]any{"type": "transfer", "target": target})
		}()
		for {
			if _, _, err := c.Read(ctx); err != nil {
				closed.Store(time.Now().UnixNano())
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/"
}

// The caller's side answers REFER with 405 (`switchboard dial` does not take
// transfers), so the gateway bridges: it dials the target (a second
// gateway's echo route) as a second leg, connects the caller to it and hangs
// up the bot. The caller hears its own 1 kHz tone echoed by the second leg:
// the bot is silent, so the tone can only come from there.
func TestBridgeTransferEcho(t *testing.T) {
	far := startGateway(t, gwOptions{})
	var botClosed atomic.Int64
	url := transferringNativeBot(t, "sip:echo@"+far.sipAddr(), &botClosed)
	g := startGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: switchboard, url: "%s" }`, url), "")})

	dir := t.TempDir()
	in, heard := filepath.Join(dir, "tone.wav"), filepath.Join(dir, "heard.wav")
	writeTone(t, in, 1000, 8000, 5*time.Second)
	start := time.Now()
	res, err := runTool(t, 40*time.Second, dir, binPath, "dial", "sip:bot@"+g.sipAddr(), "--play", in,
		"--record", heard, "--seconds", "6")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, heard, 1000, 3*time.Second)
	noRaceReports(t, g, far)

	l := g.logs.String()
	for _, want := range []string{"REFER not taken; bridging the transfer", "405 Method Not Allowed", "transfer leg answered", "transferred by bridging"} {
		if !strings.Contains(l, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
	if !strings.Contains(far.logs.String(), "msg=answered") {
		t.Errorf("the second gateway never answered the leg")
	}
	if c := botClosed.Load(); c == 0 || time.Unix(0, c).Sub(start) > 4*time.Second {
		t.Errorf("the bot was not hung up at the transfer (closed %v after the call began)", time.Unix(0, c).Sub(start))
	}
	// The caller hanging up ends the leg too: the far gateway sees a BYE.
	waitFor(t, 5*time.Second, "the leg's BYE at the far gateway", func() bool {
		return strings.Contains(far.logs.String(), `msg="call ended"`) && strings.Contains(far.logs.String(), "by=caller")
	})
}

// noRaceReports fails the test if a gateway built with -race reported one.
func noRaceReports(t *testing.T, gs ...*gateway) {
	t.Helper()
	for _, g := range gs {
		if l := g.logs.String(); strings.Contains(l, "DATA RACE") || strings.Contains(l, "panic:") {
			t.Errorf("gateway reported a data race or panic")
		}
	}
}
