package main

// Bots hear the caller's keys and can end the call, for every bot protocol:
// sipp presses keys from its RFC 4733 captures (and by SIP INFO) on a call to
// a bot route, and the bot gets each digit once, in order, in its protocol's
// own shape; a native bot's hangup command makes the gateway send BYE.

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The scenario's keys: the twelve RFC 4733 captures, then A B C D by SIP INFO.
const (
	pcapDigits = "0123456789#*"
	infoDigits = "ABCD"
)

// digitLog collects the digits a bot received, in order.
type digitLog struct {
	mu     sync.Mutex
	digits strings.Builder
	bad    []string // digit messages that were not well formed
}

func (d *digitLog) add(s string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(s) != 1 {
		d.bad = append(d.bad, fmt.Sprintf("digit %q", s))
		return
	}
	d.digits.WriteString(s)
}

func (d *digitLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.digits.String()
}

// pressKeysOnBot runs testdata/dtmf_call.xml against the bot route and checks
// that the bot got exactly the scenario's keys, each once, in order.
func pressKeysOnBot(t *testing.T, g *gateway, got *digitLog) {
	t.Helper()
	scenario, err := filepath.Abs("testdata/dtmf_call.xml")
	must(t, err)
	out, err := runTool(t, 40*time.Second, sippDir(t), "sipp", g.sipAddr(), "-sf", scenario, "-s", "bot",
		"-m", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freePort(t)),
		"-nostdin", "-timeout", "30s", "-timeout_error")
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, tail(out))
	}
	want := pcapDigits + infoDigits
	// sipp's BYE follows its last INFO; the digits went out before it.
	for end := time.Now().Add(3 * time.Second); len(got.String()) < len(want) && time.Now().Before(end); {
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // a duplicate would arrive by now
	if s := got.String(); s != want {
		t.Fatalf("bot received digits %q, want %q (%q from sipp's RFC 4733 pcaps, then %q by SIP INFO)",
			s, want, pcapDigits, infoDigits)
	}
	got.mu.Lock()
	defer got.mu.Unlock()
	if len(got.bad) > 0 {
		t.Fatalf("malformed dtmf messages: %v", got.bad)
	}
}

// A Twilio-protocol bot gets {"event":"dtmf","dtmf":{"digit":"5",...}} per key.
func TestTwilioBotReceivesDTMF(t *testing.T) {
	var got digitLog
	bot := newTwilioBot(t, func(ctx context.Context, c *websocket.Conn, b *twilioBot, sid string) {
		for {
			m, err := readJSON(ctx, c)
			if err != nil {
				return
			}
			if m["event"] != "dtmf" {
				continue
			}
			d, _ := m["dtmf"].(map[string]any)
			digit, _ := d["digit"].(string)
			if m["streamSid"] != sid || d["track"] != "inbound_track" {
				got.mu.Lock()
				got.bad = append(got.bad, fmt.Sprint(m))
				got.mu.Unlock()
			}
			got.add(digit)
		}
	})
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: twilio, url: "%s" }`, bot.url()), "")})
	pressKeysOnBot(t, g, &got)
}

// nativeBot is a native-protocol (switchboard) bot in the test: it accepts at
// 8 kHz, notes the digits and audio it gets, and (hangupAfter > 0) sends the
// hangup command.
type nativeBot struct {
	srv    *httptest.Server
	digits digitLog

	mu       sync.Mutex
	frames   int                  // binary audio messages received
	hangup   string               // reason of the gateway's hangup event
	closedBy websocket.StatusCode // how the gateway closed the socket
	closed   bool
}

func newNativeBot(t *testing.T, hangupAfter time.Duration) *nativeBot {
	b := &nativeBot{}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		ctx, cancel := context.WithTimeout(r.Context(), 60*time.Second)
		defer cancel()
		if m, err := readJSON(ctx, c); err != nil || m["type"] != "start" {
			return
		}
		if sendJSON(ctx, c, map[string]any{"type": "accept", "rate": 8000}) != nil {
			return
		}
		if hangupAfter > 0 {
			t := time.AfterFunc(hangupAfter, func() {
				sendJSON(ctx, c, map[string]any{"type": "hangup", "reason": "bot says goodbye"})
			})
			defer t.Stop()
		}
		for {
			typ, data, err := c.Read(ctx)
			if err != nil {
				b.mu.Lock()
				b.closedBy, b.closed = websocket.CloseStatus(err), true
				b.mu.Unlock()
				return
			}
			if typ == websocket.MessageBinary {
				b.mu.Lock()
				b.frames++
				b.mu.Unlock()
				continue
			}
			var m struct{ Type, Digit, Reason string }
			if json.Unmarshal(data, &m) != nil {
				continue
			}
			switch m.Type {
			case "dtmf":
				b.digits.add(m.Digit)
			case "hangup":
				b.mu.Lock()
				b.hangup = m.Reason
				b.mu.Unlock()
			}
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *nativeBot) url() string { return "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/" }

// A native-protocol bot gets {"type":"dtmf","digit":"5"} per key.
func TestNativeBotReceivesDTMF(t *testing.T) {
	bot := newNativeBot(t, 0)
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: switchboard, url: "%s" }`, bot.url()), "")})
	pressKeysOnBot(t, g, &bot.digits)
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if bot.frames < 250 { // the scenario runs about 6.5 s
		t.Fatalf("bot got %d audio frames alongside the digits, want one per 20 ms", bot.frames)
	}
}

// An AudioSocket bot gets a 0x03 frame with the ASCII digit per key.
func TestAudioSocketBotReceivesDTMF(t *testing.T) {
	var got digitLog
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(60 * time.Second))
				hdr := make([]byte, 3)
				for {
					if _, err := io.ReadFull(c, hdr); err != nil {
						return
					}
					p := make([]byte, binary.BigEndian.Uint16(hdr[1:]))
					if _, err := io.ReadFull(c, p); err != nil {
						return
					}
					if hdr[0] == 0x03 {
						got.add(string(p))
					}
				}
			}()
		}
	}()
	g := startGateway(t, gwOptions{dialplan: audiosocketPlan(ln.Addr().String())})
	pressKeysOnBot(t, g, &got)
}

// A native-protocol bot's {"type":"hangup"} ends the call with a BYE to the
// caller; the bot then gets the hangup event and a normal close.
func TestNativeBotHangupSendsBye(t *testing.T) {
	bot := newNativeBot(t, time.Second)
	g := startAgentGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: switchboard, url: "%s" }`, bot.url()), "")})
	start := time.Now()
	_, res, err := dialBot(t, g, "", 8)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	if d := time.Since(start); !strings.Contains(res, "by=callee") || d > 5*time.Second {
		t.Fatalf("the call was not ended by the gateway's BYE about 1 s in (%v):\n%s", d, res)
	}
	waitFor(t, 5*time.Second, "the call-ended log", func() bool {
		l := g.logs.String()
		return strings.Contains(l, "by=agent") && strings.Contains(l, `cause="bot says goodbye"`)
	})
	waitFor(t, 5*time.Second, "the bot's socket to close", func() bool {
		bot.mu.Lock()
		defer bot.mu.Unlock()
		return bot.closed
	})
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if bot.hangup == "" || bot.closedBy != websocket.StatusNormalClosure {
		t.Fatalf("after its hangup the bot got hangup event %q and close status %v, want an event and 1000", bot.hangup, bot.closedBy)
	}
}
