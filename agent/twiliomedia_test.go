package agent

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// jsonOutcome is what the reader does with msg through encoding/json alone.
func jsonOutcome(msg []byte) string {
	var m twilioIn
	if err := json.Unmarshal(msg, &m); err != nil {
		return "ignored"
	}
	if m.Event == "media" {
		return "play:" + hex.EncodeToString(m.Media.Payload)
	}
	return "event:" + m.Event
}

// fastOutcome is what the fast path does with msg, if it takes it.
func fastOutcome(msg []byte) (string, bool) {
	p, ok := twilioMediaPayload(msg)
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(string(p))
	if err != nil {
		return "ignored", true // handle then leaves it to encoding/json, which fails the same way
	}
	return "play:" + hex.EncodeToString(b), true
}

// The fast path takes real media messages however they are laid out, and
// leaves everything it cannot read exactly as encoding/json would to
// encoding/json; where it takes a message, both agree.
func TestTwilioMediaFastPathAgrees(t *testing.T) {
	deep := strings.Repeat("[", 100) + strings.Repeat("]", 100)
	for _, tc := range []struct {
		name, msg string
		fast      bool
	}{
		{"twilio docs", `{"event": "media", "sequenceNumber": "3", "media": {"track": "outbound", "chunk": "1", "timestamp": "5", "payload": "no+JhoaJjpzSHxAKBgYJDhtEopGKh4aIjZm7JhIL"}, "streamSid": "MZ18ad3ab5a668481ce02b83e7395059f0"}`, true},
		{"minimal bot", `{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}}`, true},
		{"field order", `{"media":{"payload":"/w==","track":"outbound"},"streamSid":"MZ1","event":"media"}`, true},
		{"white space", "\r\n\t{ \"event\" :\n\"media\" ,\t\"media\" : { \"payload\" : \"AAAA\" } }\n ", true},
		{"escaped and odd extra fields", `{"event":"media","streamSid":"MZ\"x\\y\u00e9\/","sequenceNumber":3,"media":{"payload":"AAAA","x":[1,-2.5e+3,0.5,true,false,null,{"a":[{}]}]},"extra":{"k":"\ud83d\ude00"},"n":-0}`, true},
		{"empty payload", `{"event":"media","media":{"payload":""}}`, true},
		{"non-ASCII value", `{"event":"media","streamSid":"MZ€","media":{"payload":"AAAA"}}`, true},
		{"bad base64", `{"event":"media","media":{"payload":"AAA"}}`, true},

		{"escaped payload", `{"event":"media","media":{"payload":"\/w=="}}`, false},
		{"escaped newline in payload", `{"event":"media","media":{"payload":"AAAA\r\nAAAA"}}`, false},
		{"escaped event", `{"event":"medi\u0061","media":{"payload":"AAAA"}}`, false},
		{"escaped key", `{"\u0065vent":"media","media":{"payload":"AAAA"}}`, false},
		{"key case", `{"Event":"media","media":{"payload":"AAAA"}}`, false},
		{"key case after", `{"event":"media","media":{"payload":"AAAA"},"EVENT":"clear"}`, false},
		{"media key case", `{"event":"media","MEDIA":{"payload":"AAAA"}}`, false},
		{"payload key case", `{"event":"media","media":{"payload":"AAAA","Payload":"/w=="}}`, false},
		{"unicode fold key", "{\"event\":\"media\",\"media\":{\"payload\":\"AAAA\"},\"mar\u212a\":{}}", false},
		{"duplicate event", `{"event":"clear","event":"media","media":{"payload":"AAAA"}}`, false},
		{"duplicate media", `{"event":"media","media":{"payload":"AAAA"},"media":{"payload":"/w=="}}`, false},
		{"duplicate payload", `{"event":"media","media":{"payload":"AAAA","payload":"/w=="}}`, false},
		{"mark field", `{"event":"media","media":{"payload":"AAAA"},"mark":{"name":"x"}}`, false},
		{"mark field of the wrong type", `{"event":"media","media":{"payload":"AAAA"},"mark":5}`, false},
		{"other event", `{"event":"mark","streamSid":"MZ1","mark":{"name":"greeting"}}`, false},
		{"clear", `{"event":"clear","streamSid":"MZ1"}`, false},
		{"no event", `{"media":{"payload":"AAAA"}}`, false},
		{"no payload", `{"event":"media","media":{}}`, false},
		{"payload null", `{"event":"media","media":{"payload":null}}`, false},
		{"media null", `{"event":"media","media":null}`, false},
		{"media string", `{"event":"media","media":"AAAA"}`, false},
		{"event number", `{"event":5,"media":{"payload":"AAAA"}}`, false},
		{"trailing garbage", `{"event":"media","media":{"payload":"AAAA"}}x`, false},
		{"two objects", `{"event":"media","media":{"payload":"AAAA"}}{}`, false},
		{"truncated", `{"event":"media","media":{"payload":"AAAA"`, false},
		{"trailing comma", `{"event":"media","media":{"payload":"AAAA"},}`, false},
		{"missing colon", `{"event" "media","media":{"payload":"AAAA"}}`, false},
		{"leading zero", `{"event":"media","n":01,"media":{"payload":"AAAA"}}`, false},
		{"bare minus", `{"event":"media","n":-,"media":{"payload":"AAAA"}}`, false},
		{"bad fraction", `{"event":"media","n":1.,"media":{"payload":"AAAA"}}`, false},
		{"bad exponent", `{"event":"media","n":1e,"media":{"payload":"AAAA"}}`, false},
		{"bad escape", `{"event":"media","x":"\q","media":{"payload":"AAAA"}}`, false},
		{"short unicode escape", `{"event":"media","x":"\u12","media":{"payload":"AAAA"}}`, false},
		{"control character", "{\"event\":\"media\",\"x\":\"a\tb\",\"media\":{\"payload\":\"AAAA\"}}", false},
		{"raw newline in payload", "{\"event\":\"media\",\"media\":{\"payload\":\"AAAA\n\"}}", false},
		{"bad literal", `{"event":"media","x":tru,"media":{"payload":"AAAA"}}`, false},
		{"literal run-on", `{"event":"media","x":nullx,"media":{"payload":"AAAA"}}`, false},
		{"unclosed array", `{"event":"media","x":[1,2,"media":{"payload":"AAAA"}}`, false},
		{"deep nesting", `{"event":"media","x":` + deep + `,"media":{"payload":"AAAA"}}`, false},
		{"empty object", `{}`, false},
		{"array", `[]`, false},
		{"null", `null`, false},
		{"empty", ``, false},
		{"garbage", "\x00\xff{", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := jsonOutcome([]byte(tc.msg))
			got, fast := fastOutcome([]byte(tc.msg))
			if fast != tc.fast {
				t.Fatalf("fast path taken: %v, want %v (encoding/json: %s)", fast, tc.fast, want)
			}
			if fast && got != want {
				t.Fatalf("fast path %s, encoding/json %s", got, want)
			}
		})
	}
}

// Whatever the bot sends, the fast path never panics and never disagrees
// with encoding/json.
func FuzzTwilioMediaPayload(f *testing.F) {
	f.Add([]byte(`{"event":"media","streamSid":"MZ1","media":{"payload":"AAAA"}}`))
	f.Add([]byte(`{"event": "media", "sequenceNumber": "3", "media": {"track": "outbound", "chunk": "1", "timestamp": "5", "payload": "/w=="}, "streamSid": "MZ1"}`))
	f.Add([]byte(`{"media":{"x":[1,-2.5e+3,{"a":"\u00e9"}],"payload":""},"event":"media","n":null}`))
	f.Add([]byte(`{"event":"mark","mark":{"name":"x"}}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		got, fast := fastOutcome(msg)
		if want := jsonOutcome(msg); fast && got != want {
			t.Fatalf("%q: fast path %s, encoding/json %s", msg, got, want)
		}
	})
}

// The reader acts on fast-path and fallback messages alike, and shrugs off garbage.
func TestTwilioHandle(t *testing.T) {
	ctl := &recorder{}
	s := &twilioSession{w: &wsConn{log: slog.New(slog.DiscardHandler)}, ctl: ctl}
	for _, m := range []string{
		`{"event":"media","media":{"payload":"/w=="}}`,  // fast path
		`{"event":"media","media":{"payload":"\/w=="}}`, // encoding/json
		`{"event":"media","media":{"payload":"AAA"}}`,   // bad base64: ignored
		`{"event":"media","media":{"payload":"AAAA"`,    // truncated: ignored
		"\x00\xff", // garbage: ignored
		`{"event":"mark","mark":{"name":"greeting"}}`,      // mark
		`{"event":"clear"}`,                                // clear
		`{"event":"media","media":{"payload":"AP8A/w=="}}`, // fast path again
	} {
		if err := s.handle(websocket.MessageText, []byte(m)); err != nil {
			t.Fatalf("%s: %v", m, err)
		}
	}
	want := []int16{g711.DecodeUlawFrame(0xff), g711.DecodeUlawFrame(0xff), g711.DecodeUlawFrame(0x00), g711.DecodeUlawFrame(0xff), g711.DecodeUlawFrame(0x00), g711.DecodeUlawFrame(0xff)}
	if !slices.Equal(ctl.played, want) || !slices.Equal(ctl.marks, []string{"greeting"}) || ctl.cleared != 1 {
		t.Fatalf("played %v marks %v cleared %d; want played %v, one mark, one clear", ctl.played, ctl.marks, ctl.cleared, want)
	}
}

// A media message built by hand reads back with encoding/json as exactly the
// fields Twilio sends, all strings.
func TestTwilioMediaMessageFields(t *testing.T) {
	w, c := dialRawBot(t)
	defer w.close(nil)
	defer c.Close()
	s := &twilioSession{w: w, ctl: nopControls{}, streamSid: twilioSid("MZ")}
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	for i := 1; i <= 3; i++ {
		s.Audio(frame, 8000)
		msg := readClientFrame(t, c.br)
		var m map[string]any
		if err := json.Unmarshal(msg, &m); err != nil {
			t.Fatalf("%v: %s", err, msg)
		}
		md, _ := m["media"].(map[string]any)
		if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, []string{"event", "media", "sequenceNumber", "streamSid"}) {
			t.Fatalf("fields %v: %s", got, msg)
		}
		if got := slices.Sorted(maps.Keys(md)); !slices.Equal(got, []string{"chunk", "payload", "timestamp", "track"}) {
			t.Fatalf("media fields %v: %s", got, msg)
		}
		want := map[string]any{"event": "media", "sequenceNumber": strconv.Itoa(i), "streamSid": s.streamSid}
		for k, v := range want {
			if m[k] != v {
				t.Fatalf("%s = %v, want %v", k, m[k], v)
			}
		}
		if md["track"] != "inbound" || md["chunk"] != strconv.Itoa(i) || md["timestamp"] != strconv.Itoa((i-1)*20) {
			t.Fatalf("media %v", md)
		}
		ulaw, err := base64.StdEncoding.DecodeString(md["payload"].(string))
		if err != nil || len(ulaw) != 160 {
			t.Fatalf("payload: %d bytes, %v", len(ulaw), err)
		}
		// and the gateway's own fast path reads it too
		if p, ok := twilioMediaPayload(msg); !ok || string(p) != md["payload"] {
			t.Fatalf("fast path on our own message: %v", ok)
		}
	}
}

// Each message to the bot is at most one write(2): header and payload go out together.
func TestWSOneWritePerMessage(t *testing.T) {
	var writes atomic.Int64
	wsWrapConn = func(c net.Conn) net.Conn { return &countingConn{Conn: c, writes: &writes} }
	t.Cleanup(func() { wsWrapConn = nil })
	b := newBot(t)
	s, c := startTwilio(t, b, newLiveControls(), nil)
	defer s.Close()
	readMsg(t, c)
	readMsg(t, c)
	before := writes.Load()
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	const n = 50
	for range n {
		s.Audio(frame, 8000)
		time.Sleep(time.Millisecond) // let the writer take each on its own
	}
	for range n {
		readMsg(t, c)
	}
	// One write per message, or fewer when the socket pushed back and the
	// backlog went out together; never a header and a payload apart.
	if got := writes.Load() - before; got > n || got < n/2 {
		t.Fatalf("%d writes for %d messages", got, n)
	}
}

// A bot that stops reading altogether is lost once the backlog has been
// full for wsStallDrops frames; the call's clock never blocks meanwhile.
func TestWSStalledBotIsLost(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	ctl := newLiveControls()
	s, _ := startTwilio(t, b, ctl, nil)
	defer s.Close()
	frame := make([]int16, 160)
	for i := range frame {
		frame[i] = int16(i * 100)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		s.Audio(frame, 8000) // fills the socket buffers, then the backlog, then drops
		select {
		case a := <-ctl.acts:
			if !strings.HasPrefix(a, "fail:") || !strings.Contains(a, "lost") {
				t.Fatalf("action %q, want a lost bot", a)
			}
			return
		default:
		}
	}
	t.Fatal("a bot that reads nothing was never declared lost")
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// SyscallConn counts the non-blocking writes made on the raw socket too.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	rc, err := c.Conn.(syscall.Conn).SyscallConn()
	return countingRawConn{rc, c.writes}, err
}

type countingRawConn struct {
	syscall.RawConn
	writes *atomic.Int64
}

func (c countingRawConn) Write(f func(fd uintptr) bool) error {
	c.writes.Add(1)
	return c.RawConn.Write(f)
}

// A bot that stops reading for a while and then catches up gets every
// message that was not dropped, whole and in order, whether it went out on
// the caller's own write or through the flusher once the socket was full.
func TestWSBacklogKeepsOrder(t *testing.T) {
	noLeaks(t)
	w, c := dialRawBot(t)
	defer w.close(nil)
	defer c.Close()
	s := &twilioSession{w: w, ctl: nopControls{}, streamSid: twilioSid("MZ")}
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	sent := 0
	for w.raw.backlog.Load() == 0 { // the bot reads nothing: socket buffers fill up
		if sent++; sent > 1e6 {
			t.Fatal("the socket never filled")
		}
		s.Audio(frame, 8000)
	}
	for range 20 { // queued behind the full socket
		s.Audio(frame, 8000)
		sent++
	}
	got := make(chan int64)
	go func() {
		defer close(got)
		for {
			var m struct {
				Seq string `json:"sequenceNumber"`
			}
			msg, err := clientFrame(c.br)
			if err != nil {
				return // the test's end
			}
			if err := json.Unmarshal(msg, &m); err != nil {
				t.Errorf("%v: %q", err, msg)
				return
			}
			n, _ := strconv.ParseInt(m.Seq, 10, 64)
			got <- n
		}
	}()
	last, n := int64(0), 0
	for int(w.dropped.Load())+n < sent {
		seq := <-got
		if seq <= last {
			t.Fatalf("message %d after %d", seq, last)
		}
		last = seq
		n++
	}
	if w.raw.backlog.Load() != 0 || w.dropped.Load() >= wsStallDrops {
		t.Fatalf("backlog %d, dropped %d", w.raw.backlog.Load(), w.dropped.Load())
	}
	// caught up: the next message goes out at once again
	s.Audio(frame, 8000)
	if seq := <-got; seq != int64(sent+1) {
		t.Fatalf("next message %d, want %d", seq, sent+1)
	}
	c.Close()
	for range got {
	}
}
