package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// asEchoBot is an AudioSocket server in the test: it echoes audio frames,
// records what it saw, and (hangupAfter > 0) sends the hang-up frame.
type asEchoBot struct {
	addr string

	mu       sync.Mutex
	first    []byte // kind and length of each connection's first frame
	audio    int    // audio frames received
	badSize  int    // audio frames that were not 320 bytes
	hungUpBy string // "caller" when our hang-up frame came from the gateway
}

func startASEchoBot(t *testing.T, hangupAfter time.Duration) *asEchoBot {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	b := &asEchoBot{addr: ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go b.serve(c, hangupAfter)
		}
	}()
	return b
}

func (b *asEchoBot) serve(c net.Conn, hangupAfter time.Duration) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var wmu sync.Mutex
	if hangupAfter > 0 {
		t := time.AfterFunc(hangupAfter, func() {
			wmu.Lock()
			c.Write([]byte{0x00, 0, 0})
			wmu.Unlock()
		})
		defer t.Stop()
	}
	r := bufio.NewReader(c)
	for n := 0; ; n++ {
		hdr := make([]byte, 3)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return
		}
		p := make([]byte, binary.BigEndian.Uint16(hdr[1:]))
		if _, err := io.ReadFull(r, p); err != nil {
			return
		}
		b.mu.Lock()
		if n == 0 {
			b.first = append(b.first[:0], hdr...)
		}
		if hdr[0] == 0x10 {
			b.audio++
			if len(p) != 320 {
				b.badSize++
			}
		}
		if hdr[0] == 0x00 {
			b.hungUpBy = "caller"
		}
		b.mu.Unlock()
		if hdr[0] == 0x10 {
			wmu.Lock()
			c.Write(append(hdr, p...))
			wmu.Unlock()
		}
	}
}

func audiosocketPlan(addr string) string {
	return fmt.Sprintf(`routes:
  - name: asbot
    match: { to: bot }
    target: { type: agent, protocol: audiosocket, url: "tcp://%s", connect_timeout: 2s }
`, addr)
}

// A softphone calling an AudioSocket echo bot hears its own 1 kHz tone; the
// bot saw the UUID first and 320-byte slin frames, and the hang-up frame at the end.
func TestAudioSocketEchoBaresip(t *testing.T) {
	b := startASEchoBot(t, 0)
	g := startGateway(t, gwOptions{dialplan: audiosocketPlan(b.addr)})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	heard := baresipCall(t, "sip:bot@"+g.sipAddr(), "PCMU", tone, 6)
	checkTone(t, heard, 1000, 3*time.Second)

	waitFor(t, 5*time.Second, "the gateway's hang-up frame", func() bool {
		b.mu.Lock()
		defer b.mu.Unlock()
		return b.hungUpBy == "caller"
	})
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.first) != 3 || b.first[0] != 0x01 || b.first[1] != 0 || b.first[2] != 16 {
		t.Fatalf("first frame header % x, want 01 00 10 (UUID, 16 bytes)", b.first)
	}
	if b.audio < 150 || b.badSize != 0 {
		t.Fatalf("bot got %d audio frames (%d not 320 bytes), want ≥150 (3 s) of 320", b.audio, b.badSize)
	}
	t.Logf("bot received %d audio frames of 320 bytes", b.audio)
}

// The bot's hang-up frame (0x00) makes the gateway send BYE to the caller.
func TestAudioSocketBotHangupSendsBye(t *testing.T) {
	b := startASEchoBot(t, time.Second)
	g := startGateway(t, gwOptions{dialplan: audiosocketPlan(b.addr)})
	start := time.Now()
	out, err := runTool(t, 30*time.Second, t.TempDir(), binPath, "dial", "sip:bot@"+g.sipAddr(), "--seconds", "10")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	if d := time.Since(start); d > 5*time.Second || !strings.Contains(out, "by=callee") {
		t.Fatalf("call lasted %v, want it ended by the gateway's BYE about 1 s in:\n%s", d, out)
	}
	waitFor(t, 5*time.Second, "the call-ended log", func() bool {
		return strings.Contains(g.logs.String(), `cause="audiosocket: bot hung up"`)
	})
}

// The example bot in examples/audiosocket-echo-go works unchanged: the caller
// hears its tone back, and its -hangup-after ends the call with a BYE.
func TestAudioSocketExampleBot(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "audiosocket-echo")
	if out, err := exec.Command("go", "build", "-o", exe, "../../examples/audiosocket-echo-go").CombinedOutput(); err != nil {
		t.Fatalf("build example: %v\n%s", err, out)
	}
	cmd := exec.Command(exe, "-addr", "127.0.0.1:0", "-hangup-after", "4s")
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	var logs syncBuffer
	cmd.Stderr = &logs
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var port int
	if _, err := fmt.Fscanf(bufio.NewReader(stdout), "listening on %d\n", &port); err != nil {
		t.Fatalf("example did not start: %v", err)
	}

	g := startGateway(t, gwOptions{dialplan: audiosocketPlan(fmt.Sprintf("127.0.0.1:%d", port))})
	in, rec := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.wav")
	writeTone(t, in, 1000, 8000, 3*time.Second)
	out, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:bot@"+g.sipAddr(), "--play", in, "--record", rec, "--seconds", "8")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	checkTone(t, rec, 1000, 2500*time.Millisecond)
	if !strings.Contains(out, "by=callee") {
		t.Fatalf("the example's hang-up frame did not end the call:\n%s", out)
	}
	if !strings.Contains(logs.String(), "call ") {
		t.Fatalf("example logged no call UUID: %s", logs.String())
	}
}
