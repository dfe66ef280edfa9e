package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// abuseDialplan has real numbers (echo, busy) and no default: an enumerator that could
// tell them from the rest would find them.
const abuseDialplan = metricsDialplan

// sipvicious runs one of its tools, bounded, against the gateway only, from a local port
// of its own (it binds 5060 by default).
func sipvicious(t *testing.T, g *gateway, tool string, args ...string) string {
	t.Helper()
	needTool(t, tool)
	dir := t.TempDir()
	cmd := append([]string{"-p", fmt.Sprint(g.sipPort), "-P", fmt.Sprint(freePort(t)), "-b", "127.0.0.1", "-x", "127.0.0.1"}, args...)
	cmd = append(cmd, "127.0.0.1")
	// HOME: sipvicious keeps session files under ~/.sipvicious.
	out, err := runToolEnv(t, 90*time.Second, dir, []string{"HOME=" + dir}, tool, cmd...)
	t.Logf("%s %s:\n%s", tool, strings.Join(args, " "), tail(out))
	if err != nil && strings.Contains(err.Error(), "killed") {
		t.Errorf("%s: %v", tool, err)
	}
	return out
}

// runToolEnv is runTool with extra environment variables.
func runToolEnv(t testing.TB, limit time.Duration, dir string, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s killed after %s: %w", name, limit, ctx.Err())
	}
	return string(out), err
}

// Scanned with drop_scanners off, every user gets the same answer: svwar finds no
// extension (REGISTER, INVITE and OPTIONS, a dictionary holding the real numbers) and
// svcrack no password.
func TestSipviciousFindsNothing(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: abuseDialplan, sipExtra: "  drop_scanners: false\n"})
	dict := filepath.Join(t.TempDir(), "users.txt")
	must(t, os.WriteFile(dict, []byte("echo\nbusy\nhello\nadmin\n100\n1000\nalice\n"), 0o644))

	// The scans run side by side, each from its own port, to keep the test short.
	var wg sync.WaitGroup
	for _, m := range []string{"REGISTER", "INVITE", "OPTIONS"} {
		for _, users := range [][]string{{"-e", "100-160"}, {"-d", dict}} {
			wg.Go(func() {
				out := sipvicious(t, g, "svwar", append([]string{"-m", m}, users...)...)
				if !strings.Contains(out, "found nothing") || strings.Contains(out, "exists") || strings.Contains(out, "| Extension") {
					t.Errorf("svwar -m %s %v enumerated something:\n%s", m, users, out)
				}
			})
		}
	}
	for _, user := range []string{"100", "echo"} {
		wg.Go(func() {
			out := sipvicious(t, g, "svcrack", "-u", user, "-r", "1000-1040")
			if !strings.Contains(out, "found nothing") || strings.Contains(out, "| Extension") {
				t.Errorf("svcrack -u %s found a password:\n%s", user, out)
			}
		})
	}
	wg.Wait()
	// svmap does find a SIP server when scanners are let in (that is its job)...
	if out := sipvicious(t, g, "svmap"); !strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", g.sipPort)) {
		t.Errorf("svmap did not see the gateway with drop_scanners off:\n%s", out)
	}
}

// ...and with drop_scanners (the default) it sees nothing at all, nor do svwar and svcrack.
func TestSipviciousDropped(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: abuseDialplan})
	if out := sipvicious(t, g, "svmap"); strings.Contains(out, fmt.Sprintf("127.0.0.1:%d", g.sipPort)) || !strings.Contains(out, "found nothing") {
		t.Errorf("svmap saw the gateway despite drop_scanners:\n%s", out)
	}
	if out := sipvicious(t, g, "svwar", "-e", "100-110"); strings.Contains(out, "Ok SIP device found") || strings.Contains(out, "| Extension") {
		t.Errorf("svwar got answers despite drop_scanners:\n%s", out)
	}
	if out := sipvicious(t, g, "svcrack", "-u", "100", "-r", "1000-1005"); !strings.Contains(out, "no server response") {
		t.Errorf("svcrack got answers despite drop_scanners:\n%s", out)
	}
	if n := g.metrics()[`switchboard_sip_dropped_total{reason="scanner"}`]; n < 3 {
		t.Errorf("scanner drops counted: %v", n)
	}
}

// A flood of 5,000 INVITEs a second from one address for 3 s, each a new Call-ID, while
// a call from another address runs: the rate limit drops the flood, and the call
// records its whole tone without a gap.
func TestInviteFloodKeepsCallsAudio(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: abuseDialplan, sipExtra: "  rate_limit: 20\n  rate_burst: 40\n"})
	dir := t.TempDir()
	in, out := filepath.Join(dir, "x.wav"), filepath.Join(dir, "y.wav")
	const toneLen = 6 * time.Second
	writeTone(t, in, 1000, 8000, toneLen)
	done := make(chan error, 1)
	var dialOut string
	go func() {
		var err error
		dialOut, err = runTool(t, 40*time.Second, dir, binPath, "dial", "sip:echo@"+g.sipAddr(), "--play", in, "--record", out)
		done <- err
	}()
	waitFor(t, 10*time.Second, "the call to be up", func() bool { return g.metrics()["switchboard_calls_active"] == 1 })

	// The flood comes from 127.0.0.2: the per-source limit must not touch the call's peer.
	c := newRawSIP(t, "127.0.0.2:0", g.sipAddr())
	sdp := testSDP("127.0.0.2", 40000)
	const rate, dur = 5000, 3 * time.Second
	sent := 0
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	for time.Since(start) < dur {
		<-tick.C
		want := int(time.Since(start) * rate / time.Second)
		for ; sent < want; sent++ {
			id := fmt.Sprintf("flood%d", sent)
			c.conn.WriteToUDP(c.request("INVITE", fmt.Sprintf("%d", 5550000+sent), id+"@attacker", id, "", sdp), c.dst)
		}
	}
	tick.Stop()
	elapsed := time.Since(start)
	t.Logf("flood: %d INVITEs in %v (%.0f/s)", sent, elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	if float64(sent)/elapsed.Seconds() < 0.9*rate {
		t.Fatalf("the flood reached only %.0f/s", float64(sent)/elapsed.Seconds())
	}

	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the call during the flood: %v\n%s", err, dialOut)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end")
	}
	checkTone(t, out, 1000, toneLen-300*time.Millisecond)
	s, rate8k := readWAV(t, out)
	span := toneSpan(s, rate8k)
	n := pcm.FrameSamples(rate8k)
	gaps := 0
	for i := 0; i+n <= len(span); i += n {
		if rms(span[i:i+n]) < 300 {
			gaps++
		}
	}
	if gaps > 2 {
		t.Errorf("%d silent 20 ms frames inside the tone heard during the flood", gaps)
	}

	m := g.metrics()
	dropped := m[`switchboard_sip_dropped_total{reason="rate"}`]
	invites := m[`switchboard_sip_requests_total{direction="in",method="INVITE"}`]
	t.Logf("dropped by the rate limit: %v; INVITEs let in: %v; dial: %s", dropped, invites, strings.TrimSpace(dialOut))
	// 20/s with a burst of 40 lets about 100 of the flood's 15,000 through.
	if dropped < float64(sent)-200 || invites > 200 {
		t.Errorf("rate limit: %v dropped, %v INVITEs let in, of %d sent", dropped, invites, sent)
	}
}
