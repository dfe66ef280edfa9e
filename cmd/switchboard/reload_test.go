package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// The plan the gateway starts with: echo answers, svc is busy.
const reloadPlanA = `routes:
  - name: echo
    match: { to: echo }
    target: { type: echo }
  - name: svc-busy
    match: { to: svc }
    target: { type: reject, status: 486, reason: Busy Here }
default:
  target: { type: reject, status: 404 }
`

// After the first reload: the routes swap.
const reloadPlanB = `routes:
  - name: echo-gone
    match: { to: echo }
    target: { type: reject, status: 403, reason: Forbidden }
  - name: svc-echo
    match: { to: svc }
    target: { type: echo }
default:
  target: { type: reject, status: 404 }
`

// Refused: a broken regular expression and an unknown target type.
const reloadPlanBad = `routes:
  - name: svc
    match: { to: "~^(svc" }
    target: { type: teleport }
`

// Loaded by SIGHUP: svc is temporarily unavailable.
const reloadPlanC = `routes:
  - name: svc-away
    match: { to: svc }
    target: { type: reject, status: 480, reason: Temporarily Unavailable }
default:
  target: { type: reject, status: 404 }
`

// dialShort places a short call and returns the dialler's output and the
// recording of what came back.
func dialShort(t *testing.T, g *gateway, user, tone string, seconds string) (string, string, error) {
	t.Helper()
	out := filepath.Join(t.TempDir(), user+".wav")
	res, err := runTool(t, 30*time.Second, ".", binPath, "dial", "sip:"+user+"@"+g.sipAddr(),
		"--play", tone, "--record", out, "--seconds", seconds)
	return res, out, err
}

// waitLog waits for the n-th gateway log line holding every one of parts.
func waitLog(t *testing.T, g *gateway, n int, parts ...string) {
	t.Helper()
	waitFor(t, 10*time.Second, strings.Join(parts, " "), func() bool {
		k := 0
		for _, line := range strings.Split(g.logs.String(), "\n") {
			all := true
			for _, p := range parts {
				all = all && strings.Contains(line, p)
			}
			if all {
				k++
			}
		}
		return k >= n
	})
}

// maxQuietGap is the longest run of quiet 20 ms frames inside a tone span.
func maxQuietGap(span []int16, rate int) time.Duration {
	n := pcm.FrameSamples(rate)
	run, worst := 0, 0
	for i := 0; i+n <= len(span); i += n {
		if rms(span[i:i+n]) > 300 {
			run = 0
			continue
		}
		run++
		worst = max(worst, run)
	}
	return time.Duration(worst) * pcm.FrameDuration
}

// A call in progress keeps its route and its audio through reloads (file
// change, refused file, SIGHUP); new calls get the new routes; an invalid file
// is refused with a log line and the old routes stay.
func TestDialplanHotReload(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: reloadPlanA})
	plan := filepath.Join(g.dir, "dialplan.yaml")
	dir := t.TempDir()
	longTone, shortTone := filepath.Join(dir, "long.wav"), filepath.Join(dir, "short.wav")
	writeTone(t, longTone, 1000, 8000, 20*time.Second)
	writeTone(t, shortTone, 1000, 8000, 2*time.Second)

	// The long call: 16 s of echo while the dialplan changes under it.
	const longSeconds = 16
	longRec := filepath.Join(dir, "long-heard.wav")
	type result struct {
		out string
		err error
	}
	longDone := make(chan result, 1)
	go func() {
		out, err := runTool(t, 40*time.Second, ".", binPath, "dial", "sip:echo@"+g.sipAddr(),
			"--play", longTone, "--record", longRec, "--seconds", "16")
		longDone <- result{out, err}
	}()
	waitLog(t, g, 1, `msg=answered`, "route=echo")
	began := time.Now()

	// 1. The file changes: new calls get plan B.
	must(t, os.WriteFile(plan, []byte(reloadPlanB), 0o644))
	waitLog(t, g, 1, `msg="dialplan reloaded"`, `trigger="file changed"`)
	t.Logf("file change picked up %v into the call", time.Since(began).Round(time.Millisecond))
	if out, heard, err := dialShort(t, g, "svc", shortTone, "1.5"); err != nil {
		t.Fatalf("svc after reload: %v\n%s", err, out)
	} else {
		checkTone(t, heard, 1000, time.Second)
	}
	if out, _, err := dialShort(t, g, "echo", shortTone, "1"); err == nil || !strings.Contains(out, "403") {
		t.Fatalf("echo after reload: want 403 from route echo-gone, got %v\n%s", err, out)
	}

	// 2. An invalid file is refused and plan B stays.
	must(t, os.WriteFile(plan, []byte(reloadPlanBad), 0o644))
	waitLog(t, g, 1, `msg="dialplan reload refused; keeping the running one"`, `trigger="file changed"`, "dialplan.yaml:3:")
	if out, heard, err := dialShort(t, g, "svc", shortTone, "1.5"); err != nil {
		t.Fatalf("svc after a refused reload: %v\n%s", err, out)
	} else {
		checkTone(t, heard, 1000, time.Second)
	}

	// 3. SIGHUP on the invalid file: refused again, and logged as such.
	must(t, g.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, g, 1, `msg="dialplan reload refused; keeping the running one"`, "trigger=SIGHUP", "teleport")

	// 4. SIGHUP right after a valid file is written: plan C.
	must(t, os.WriteFile(plan, []byte(reloadPlanC), 0o644))
	must(t, g.cmd.Process.Signal(syscall.SIGHUP))
	waitLog(t, g, 1, `msg="dialplan reloaded"`, "trigger=SIGHUP")
	if out, _, err := dialShort(t, g, "svc", shortTone, "1"); err == nil || !strings.Contains(out, "480") {
		t.Fatalf("svc after SIGHUP: want 480 from route svc-away, got %v\n%s", err, out)
	}
	t.Logf("all reloads done %v into the call", time.Since(began).Round(time.Millisecond))
	if time.Since(began) > (longSeconds-2)*time.Second {
		t.Fatalf("the reloads took %v: not all of them happened during the long call", time.Since(began))
	}

	// The long call ran to its own end, with audio all along.
	r := <-longDone
	if r.err != nil || !strings.Contains(r.out, "answered") {
		t.Fatalf("long call: %v\n%s", r.err, r.out)
	}
	checkTone(t, longRec, 1000, (longSeconds-1)*time.Second)
	s, rate := readWAV(t, longRec)
	if gap := maxQuietGap(toneSpan(s, rate), rate); gap > 100*time.Millisecond {
		t.Fatalf("the long call's echo had a %v gap", gap)
	}
}

// ring: the caller hears ringing for that long before the answer;
// max_duration: the gateway hangs up with cause "max duration".
func TestRouteRingAndMaxDuration(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: `routes:
  - name: capped
    match: { to: echo }
    target: { type: echo }
    ring: 1500ms
    max_duration: 3s
`})
	tone := filepath.Join(t.TempDir(), "tone.wav")
	writeTone(t, tone, 1000, 8000, 10*time.Second)
	start := time.Now()
	out, heard, err := dialShort(t, g, "echo", tone, "10")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	var after time.Duration
	if i := strings.Index(out, "after="); i >= 0 {
		f := strings.Fields(out[i+len("after="):])
		after, _ = time.ParseDuration(strings.TrimSuffix(f[0], ";"))
	}
	if after < 1500*time.Millisecond || after > 2500*time.Millisecond {
		t.Errorf("answered after %v, want 1.5 s of ringing\n%s", after, out)
	}
	if took > 7*time.Second {
		t.Errorf("the call lasted %v; max_duration 3s should have ended it", took)
	}
	waitLog(t, g, 1, `msg="call ended"`, `cause="max duration"`)
	checkTone(t, heard, 1000, 2500*time.Millisecond)
	t.Logf("answered after %v, call over after %v: %s", after, took.Round(time.Millisecond), strings.TrimSpace(out))
}
