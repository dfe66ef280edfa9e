package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// liveControls is a Controls for sessions whose calls come from their own
// goroutines; each action is also sent on acts for tests to wait on.
type liveControls struct {
	mu     sync.Mutex
	played []int16
	rates  []int
	acts   chan string
}

func newLiveControls() *liveControls { return &liveControls{acts: make(chan string, 1024)} }

func (c *liveControls) Play(s []int16, rate int) {
	c.mu.Lock()
	c.played = append(c.played, s...)
	c.rates = append(c.rates, rate)
	c.mu.Unlock()
	c.acts <- "play"
}
func (c *liveControls) Mark(name string)      { c.acts <- "mark:" + name }
func (c *liveControls) Clear()                { c.acts <- "clear" }
func (c *liveControls) Queued() time.Duration { return 0 }
func (c *liveControls) Hangup(reason string)  { c.acts <- "hangup:" + reason }
func (c *liveControls) SendDTMF(d string)     { c.acts <- "dtmf:" + d }
func (c *liveControls) Transfer(t string)     { c.acts <- "transfer:" + t }
func (c *liveControls) Fail(err error)        { c.acts <- "fail:" + err.Error() }

func (c *liveControls) playedCopy() ([]int16, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int16(nil), c.played...), append([]int(nil), c.rates...)
}

// want waits for the next action with the given prefix, skipping plays.
func (c *liveControls) want(t *testing.T, prefix string) string {
	t.Helper()
	deadline := time.After(3 * time.Second)
	for {
		select {
		case a := <-c.acts:
			if strings.HasPrefix(a, prefix) {
				return a
			}
			if a != "play" {
				t.Fatalf("action %q, want %q", a, prefix)
			}
		case <-deadline:
			t.Fatalf("no %q action within 3 s", prefix)
		}
	}
}

// bot is a WebSocket server in the test process; each connection is handed
// to the test on conns.
type bot struct {
	srv   *httptest.Server
	conns chan *websocket.Conn
	done  chan struct{}
}

func newBot(t testing.TB) *bot {
	b := &bot{conns: make(chan *websocket.Conn, 4), done: make(chan struct{})}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		b.conns <- c
		<-b.done // the test owns the connection until the end
	}))
	t.Cleanup(func() { close(b.done); b.srv.Close() })
	return b
}

func (b *bot) url() string { return "ws" + strings.TrimPrefix(b.srv.URL, "http") + "/stream" }

func (b *bot) accept(t *testing.T) *websocket.Conn {
	t.Helper()
	select {
	case c := <-b.conns:
		t.Cleanup(func() { c.CloseNow() })
		return c
	case <-time.After(3 * time.Second):
		t.Fatal("the gateway did not connect")
		return nil
	}
}

// readMsg reads one JSON text message into a map.
func readMsg(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	typ, data, err := c.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if typ != websocket.MessageText {
		t.Fatalf("got a binary message, want JSON")
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return m
}

func writeMsg(t *testing.T, c *websocket.Conn, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
}

// ticking polls the session's bot socket every 2 ms until the test ends,
// as the call's clock does from Audio.
func ticking(t testing.TB, w *wsConn) {
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				w.poll()
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// sessionWS is the bot socket under a Twilio or native session.
func sessionWS(s Session) *wsConn {
	switch s := s.(type) {
	case *twilioSession:
		return s.w
	case *nativeSession:
		return s.w
	}
	panic("not a WebSocket session")
}

// noLeaks fails if goroutines started during the test outlive it.
func noLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("%d goroutines before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
		}
	})
}

// A bot that accepts TCP but never answers the WebSocket handshake fails
// Start within the connect timeout.
func TestConnectTimeout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	}))
	defer srv.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	for _, a := range []Agent{Twilio{URL: url, ConnectTimeout: 200 * time.Millisecond}, Native{URL: url, ConnectTimeout: 200 * time.Millisecond}} {
		start := time.Now()
		_, err := a.Start(context.Background(), Call{}, newLiveControls())
		if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
			t.Fatalf("%T: err %v, want a connect timeout", a, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%T: Start took %v", a, d)
		}
	}
}

// Nobody listening: Start fails at once.
func TestConnectRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := "ws" + strings.TrimPrefix(srv.URL, "http")
	srv.Close()
	if _, err := (Twilio{URL: url, ConnectTimeout: time.Second}).Start(context.Background(), Call{}, newLiveControls()); err == nil {
		t.Fatal("Start succeeded with nobody listening")
	}
}

// Our own frame writer against coder/websocket's reader: every length class
// (7-bit, 16-bit, 64-bit) arrives whole and unmasked correctly, text and
// binary keep their type, and the pongs the clock's polls write for the bot's
// pings in the middle of the stream never split a frame.
func TestWSFramesArriveWhole(t *testing.T) {
	noLeaks(t)
	b := newBot(t)
	w, err := dialWS(context.Background(), b.url(), time.Second, nil, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	w.startReading(func(websocket.MessageType, []byte) error { return nil }, func(error) {})
	ticking(t, w) // the bot's pings need their pongs
	c := b.accept(t)

	sizes := []int{0, 1, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 70000}
	const rounds = 20
	msg := func(i, n int) []byte {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(i*31 + j*7 + j>>8)
		}
		return p
	}
	pingErr := make(chan error, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	go func() { // pings while the frames flow; each needs its pong
		for range 10 {
			if err := c.Ping(ctx); err != nil {
				pingErr <- err
				return
			}
		}
		pingErr <- nil
	}()
	go func() {
		for r := range rounds {
			for i, n := range sizes {
				typ := websocket.MessageBinary
				if i%2 == 1 {
					typ = websocket.MessageText
				}
				w.send(typ, append(w.buf(), msg(r*len(sizes)+i, n)...), false)
			}
		}
	}()
	type message struct {
		typ  websocket.MessageType
		data []byte
		err  error
	}
	got := make(chan message, 16)
	go func() { // the bot reads on until the end: a ping's pong needs a reader
		for {
			typ, data, err := c.Read(ctx)
			got <- message{typ, data, err}
			if err != nil {
				return
			}
		}
	}()
	for k := range rounds * len(sizes) {
		m := <-got
		if m.err != nil {
			t.Fatalf("message %d: %v", k, m.err)
		}
		i := k % len(sizes)
		want := websocket.MessageBinary
		if i%2 == 1 {
			want = websocket.MessageText
		}
		if m.typ != want || !bytes.Equal(m.data, msg(k, sizes[i])) {
			t.Fatalf("message %d (%d bytes): type %v, %d bytes, not what was sent", k, sizes[i], m.typ, len(m.data))
		}
	}
	if err := <-pingErr; err != nil {
		t.Fatalf("ping: %v", err)
	}
	w.close(nil)
	for m := range got { // the close ends the bot's reader
		if m.err != nil {
			break
		}
	}
}

func TestMaskBytes(t *testing.T) {
	for n := range 40 {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(i * 13)
		}
		key := uint32(0xa1b2c3d4)
		maskBytes(p, key)
		for i := range p {
			if want := byte(i*13) ^ byte(key>>(8*(i%4))); p[i] != want {
				t.Fatalf("len %d byte %d: %#x, want %#x", n, i, p[i], want)
			}
		}
	}
}

// A wss:// bot: the frames go through TLS (coder/websocket's writer), and the
// conversation is the same as over ws://.
func TestTwilioOverTLS(t *testing.T) {
	noLeaks(t)
	b := &bot{conns: make(chan *websocket.Conn, 4), done: make(chan struct{})}
	b.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		b.conns <- c
		<-b.done
	}))
	t.Cleanup(func() { close(b.done); b.srv.Close() })
	pool := x509.NewCertPool()
	pool.AddCert(b.srv.Certificate())
	tr := http.DefaultTransport.(*http.Transport)
	old := tr.TLSClientConfig
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	t.Cleanup(func() { tr.TLSClientConfig = old })

	url := "wss" + strings.TrimPrefix(b.srv.URL, "https") + "/stream"
	ctl := newLiveControls()
	s, err := Twilio{URL: url, ConnectTimeout: 2 * time.Second}.Start(context.Background(), Call{ID: "tls"}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	c := b.accept(t)
	if m := readMsg(t, c); m["event"] != "connected" {
		t.Fatalf("first message %v", m)
	}
	readMsg(t, c) // start
	tone := pcm.Tone(700, 8000, 800, 0.3)
	for i := range 5 {
		s.Audio(tone[i*160:(i+1)*160], 8000)
	}
	for i := range 5 {
		m := readMsg(t, c)
		md := m["media"].(map[string]any)
		ulaw, err := base64.StdEncoding.DecodeString(md["payload"].(string))
		if err != nil || len(ulaw) != 160 || ulaw[7] != g711.EncodeUlawFrame(tone[i*160+7]) {
			t.Fatalf("media %d over TLS: %d bytes, %v", i, len(ulaw), err)
		}
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	if m := readMsg(t, c); m["event"] != "stop" {
		t.Fatalf("%v, want stop", m)
	}
	c.Close(websocket.StatusNormalClosure, "")
	<-done
}

// Only ws:// without a proxy is framed onto the socket directly.
func TestDirectTCP(t *testing.T) {
	proxy := &http.Transport{Proxy: func(*http.Request) (*neturl.URL, error) { return neturl.Parse("http://proxy:3128") }}
	for _, c := range []struct {
		tr   *http.Transport
		url  string
		want bool
	}{
		{&http.Transport{}, "ws://127.0.0.1:9000/media", true},
		{&http.Transport{}, "wss://bot.example/media", false},
		{proxy, "ws://bot.example/media", false},
	} {
		if got, err := directTCP(c.tr, c.url); err != nil || got != c.want {
			t.Errorf("%s (proxy %v): %v %v, want %v", c.url, c.tr.Proxy != nil, got, err, c.want)
		}
	}
}
