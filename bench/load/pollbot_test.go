package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// The polled bot speaks WebSocket to a real client (coder/websocket, which
// masks its frames): the handshake, a media message echoed with the stream's
// sid, one split over two frames, a ping answered, and the close handshake.
func TestPolledBot(t *testing.T) {
	b, err := startPolledBot()
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, b.address(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	send := func(msg string) {
		t.Helper()
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	recv := func() string {
		t.Helper()
		typ, p, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if typ != websocket.MessageText {
			t.Fatalf("message type %v", typ)
		}
		return string(p)
	}
	send(`{"event":"connected","protocol":"Call","version":"1.0.0"}`)
	send(`{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ7","tracks":["inbound"]},"streamSid":"MZ7"}`)
	payload := strings.Repeat("/+7t7Ozr6+rq6eno", 14) // 224 bytes: a 16-bit length in the frame header
	want := `{"event":"media","streamSid":"MZ7","media":{"payload":"` + payload + `"}}`
	send(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"` + payload + `"},"streamSid":"MZ7"}`)
	if got := recv(); got != want {
		t.Fatalf("echo %s\nwant %s", got, want)
	}

	// A message in two frames: the continuation is joined before it is read.
	w, err := c.Writer(ctx, websocket.MessageText)
	if err != nil {
		t.Fatal(err)
	}
	msg := `{"event":"media","sequenceNumber":"3","media":{"payload":"AAAA"},"streamSid":"MZ7"}`
	for _, part := range []string{msg[:20], msg[20:]} {
		if _, err := w.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := recv(), `{"event":"media","streamSid":"MZ7","media":{"payload":"AAAA"}}`; got != want {
		t.Fatalf("echo of a fragmented message %s\nwant %s", got, want)
	}

	// Ping needs a reader running to see the pong.
	readErr := make(chan error, 1)
	go func() {
		_, _, err := c.Read(ctx)
		readErr <- err
	}()
	if err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if err := c.Close(websocket.StatusNormalClosure, "done"); err != nil {
		t.Fatalf("close handshake: %v", err)
	}
	if err := <-readErr; websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("read after close: %v", err)
	}
	if n := b.media.Load(); n != 2 {
		t.Fatalf("bot counted %d media messages, want 2", n)
	}
	if n := b.conns.Load(); n != 1 {
		t.Fatalf("bot counted %d connections, want 1", n)
	}
}

// A request that is not a WebSocket upgrade gets 400, and a client that does
// not mask its frames (RFC 6455 5.1) is dropped.
func TestPolledBotRejects(t *testing.T) {
	b, err := startPolledBot()
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	resp, err := http.Get("http" + strings.TrimPrefix(b.address(), "ws"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("plain GET: status %d, want 400", resp.StatusCode)
	}

	conn, err := net.Dial("tcp", strings.TrimSuffix(strings.TrimPrefix(b.address(), "ws://"), "/media"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /media HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	r, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	// RFC 6455 1.3's example key and its accept value.
	if r.StatusCode != http.StatusSwitchingProtocols || r.Header.Get("Sec-WebSocket-Accept") != "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" {
		t.Fatalf("handshake: %d %q", r.StatusCode, r.Header.Get("Sec-WebSocket-Accept"))
	}
	conn.Write([]byte{0x81, 0x02, 'h', 'i'}) // unmasked
	if n, err := br.Read(make([]byte, 16)); err == nil {
		t.Fatalf("read %d bytes after an unmasked frame, want the connection closed", n)
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("connection still open after an unmasked frame")
	}
}

// A short run of the twilio route with each bot against the real gateway:
// every call up, and the audio markers the tool sent come back through the
// bot, in the same order and with hardly any loss.
func TestRunTwilioRoute(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway")
	}
	bin := filepath.Join(t.TempDir(), "switchboard")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/switchboard")
	build.Env = append(os.Environ(), "GOFLAGS=-tags=nolibopusfile")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, bot := range []string{"polled", "netpoll"} {
		t.Run(bot, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := run(ctx, options{calls: 4, duration: 2 * time.Second, route: "twilio", rate: 20, bin: bin, logLevel: "warn", bot: bot, warmup: 1})
			if err != nil {
				t.Fatal(err)
			}
			t.Log(res.summary())
			if res.Established != 4 || res.Failed != 0 {
				t.Fatalf("%d calls up, %d failed; want 4 and 0", res.Established, res.Failed)
			}
			if res.Matched == 0 || res.LossPct > 5 || res.SeqGaps != 0 {
				t.Fatalf("markers back %d of %d sent (loss %.2f %%, %d out of order)", res.Matched, res.Sent, res.LossPct, res.SeqGaps)
			}
			if res.BotMedia == 0 || res.RTTP50 <= 0 {
				t.Fatalf("bot echoed %d media messages, round trip p50 %.1f ms", res.BotMedia, res.RTTP50)
			}
			// the gateway's own loss counters and the kernel's drops were found (-1: not)
			if res.GatewayLost < 0 || res.GatewayLate < 0 || res.ToolDrops < 0 {
				t.Fatalf("gateway lost %v, late %v, receive-buffer drops %d: a figure is missing", res.GatewayLost, res.GatewayLate, res.ToolDrops)
			}
		})
	}
}
