package main

import (
	"fmt"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// checkTone asserts that a recording holds at least minDur of a tone at freq.
func checkTone(t *testing.T, path string, freq float64, minDur time.Duration) {
	t.Helper()
	s, rate := readWAV(t, path)
	span := toneSpan(s, rate)
	got := time.Duration(len(span)) * time.Second / time.Duration(rate)
	if got < minDur {
		t.Fatalf("%s: %v of audio heard, want at least %v", filepath.Base(path), got, minDur)
	}
	if f := pcm.DominantFrequency(span, rate); math.Abs(f-freq) > freq*0.02 {
		t.Fatalf("%s: dominant frequency %.0f Hz, want %.0f Hz", filepath.Base(path), f, freq)
	}
	t.Logf("%s: %v of %.0f Hz heard, level %.0f", filepath.Base(path), got, freq, rms(span))
}

// A softphone calling the echo route hears its own 1 kHz tone, in PCMU and PCMA.
func TestBaresipEchoTone(t *testing.T) {
	g := startGateway(t, gwOptions{})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 4*time.Second)
	for _, codec := range []string{"PCMU", "PCMA"} {
		t.Run(codec, func(t *testing.T) {
			heard := baresipCall(t, "sip:echo@"+g.sipAddr(), codec, tone, 6)
			checkTone(t, heard, 1000, 3*time.Second)
		})
	}
	if n := sumMetric(g.metrics(), "switchboard_calls_total", `result="answered"`); n < 2 {
		t.Fatalf("answered calls in /metrics: %v", n)
	}
}

// `switchboard dial` plays a file to the echo route and records the tone back.
func TestDialRecordsEcho(t *testing.T) {
	g := startGateway(t, gwOptions{})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	writeTone(t, in, 1000, 16000, 3*time.Second) // 16 kHz in: the dialler resamples
	res, err := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(),
		"--play", in, "--record", out)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, out, 1000, 2500*time.Millisecond)
}

// sipp as a carrier: the pcap scenario's PCMA audio, then 200 calls at 50/s with
// 100 at once; all succeed and the gateway returns to its idle footprint.
func TestSippLoadAndNoLeaks(t *testing.T) {
	g := startGateway(t, gwOptions{rtpPorts: 300})
	dir := sippDir(t)

	baseG := g.metrics()["go_goroutines"]
	baseFD := g.fds()

	out, err := runTool(t, 60*time.Second, dir, "sipp", "-sn", "uac_pcap", g.sipAddr(),
		"-s", "echo", "-m", "2", "-l", "2", "-r", "1", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)),
		"-mp", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "50s")
	if err != nil {
		t.Fatalf("sipp uac_pcap: %v\n%s", err, tail(out))
	}
	out, err = runTool(t, 90*time.Second, dir, "sipp", "-sn", "uac", g.sipAddr(),
		"-s", "echo", "-m", "200", "-r", "50", "-l", "100", "-d", "2000", "-i", "127.0.0.1",
		"-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "80s", "-trace_stat", "-stf", filepath.Join(dir, "stat.csv"))
	if err != nil {
		t.Fatalf("sipp uac: %v\n%s", err, tail(out))
	}
	m := g.metrics()
	if got := sumMetric(m, "switchboard_calls_total", `result="answered"`); got != 202 {
		t.Fatalf("answered %v calls, want 202", got)
	}
	var lastG float64
	var lastFD int
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("goroutines %v→%v, fds %d→%d: %s", baseG, lastG, baseFD, lastFD, g.fdTargets())
		}
	})
	waitFor(t, 45*time.Second, "goroutines and fds back to baseline", func() bool {
		lastG, lastFD = g.metrics()["go_goroutines"], g.fds()
		return lastG <= baseG+2 && lastFD <= baseFD
	})
	if a := g.metrics()["switchboard_calls_active"]; a != 0 {
		t.Fatalf("%v calls still active", a)
	}
	t.Logf("goroutines %v→%v, fds %d→%d", baseG, g.metrics()["go_goroutines"], baseFD, g.fds())
}

// Garbage to the SIP port and to a live call's RTP port: no crash, and the call
// keeps its audio.
func TestGarbageDatagrams(t *testing.T) {
	g := startGateway(t, gwOptions{rtpPorts: 4})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	writeTone(t, in, 1000, 8000, 3*time.Second)

	done := make(chan error, 1)
	var dialOut string
	go func() {
		var err error
		dialOut, err = runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", in, "--record", out)
		done <- err
	}()
	junk := [][]byte{{}, {0}, []byte("\x80"), []byte("INVITE"), []byte("SIP/2.0 200 OK\r\n\r\n"),
		[]byte("INVITE sip:x@y SIP/2.0\r\nVia: garbage\r\n\r\n"), make([]byte, 1400), []byte{0x80, 0x00, 0x01}}
	for i := range 50 {
		b := make([]byte, 12+i*7)
		for j := range b {
			b[j] = byte(i*31 + j*17)
		}
		junk = append(junk, b)
	}
	send := func(port int) {
		c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", port))
		must(t, err)
		defer c.Close()
		for _, b := range junk {
			c.Write(b)
		}
	}
	time.Sleep(time.Second) // the call is up
	send(g.sipPort)
	var rtpMin int
	fmt.Sscanf(g.configValue("port_min"), "%d", &rtpMin)
	for p := rtpMin; p < rtpMin+8; p += 2 {
		send(p)
	}
	if err := <-done; err != nil {
		t.Fatalf("dial during garbage: %v\n%s", err, dialOut)
	}
	checkTone(t, out, 1000, 2*time.Second)
	if !strings.Contains(g.logs.String(), "call ended") {
		t.Fatal("no call-ended log line")
	}
}

// SIGTERM drains: new calls get 503, a running call goes on until the drain
// time, then gets BYE, and the process exits 0.
func TestDrainOnSIGTERM(t *testing.T) {
	g := startGateway(t, gwOptions{drain: "1500ms"})
	dir := t.TempDir()
	in := filepath.Join(dir, "x.wav")
	writeTone(t, in, 1000, 8000, 10*time.Second)
	done := make(chan string, 1)
	go func() {
		out, _ := runTool(t, 30*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", in, "--seconds", "10")
		done <- out
	}()
	waitFor(t, 5*time.Second, "the call to be up", func() bool { return g.metrics()["switchboard_calls_active"] == 1 })
	start := time.Now()
	must(t, g.cmd.Process.Signal(syscall.SIGTERM))
	time.Sleep(300 * time.Millisecond)
	out, err := runTool(t, 10*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--seconds", "1")
	if err == nil || !strings.Contains(out, "503") {
		t.Fatalf("a call during drain was not refused with 503: %v\n%s", err, out)
	}
	if dialOut := <-done; !strings.Contains(dialOut, "by=callee") {
		t.Fatalf("the running call was not hung up by the gateway:\n%s", dialOut)
	}
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("gateway still running 10 s after SIGTERM")
	}
	if g.exitErr != nil {
		t.Fatalf("gateway exit: %v", g.exitErr)
	}
	if d := time.Since(start); d < 1400*time.Millisecond || d > 6*time.Second {
		t.Fatalf("drain took %v, want about 1.5 s", d)
	}
	if !strings.Contains(g.logs.String(), "shutting down") {
		t.Fatal("the running call was not ended by the drain")
	}
}

// No RTP from the caller: the gateway hangs up after the media timeout and says why.
func TestMediaTimeoutSendsBye(t *testing.T) {
	g := startGateway(t, gwOptions{mediaTimeout: "1s"})
	dir := sippDir(t)
	// sipp's uac sends no RTP and holds the call for 4 s: our BYE comes first,
	// which sipp counts as a failed call of its scenario.
	runTool(t, 30*time.Second, dir, "sipp", "-sn", "uac", g.sipAddr(), "-s", "echo", "-m", "1",
		"-d", "4000", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "20s")
	waitFor(t, 10*time.Second, "the media-timeout hang-up", func() bool {
		return strings.Contains(g.logs.String(), "RTP timeout")
	})
}

// configValue reads a scalar from the test config the gateway runs on.
func (g *gateway) configValue(key string) string {
	b, err := os.ReadFile(filepath.Join(g.dir, "switchboard.yaml"))
	must(g.t, err)
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && k == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}
