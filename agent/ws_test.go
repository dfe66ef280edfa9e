package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
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
