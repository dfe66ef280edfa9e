package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// soakScenario is sipp's uac with a pause drawn uniformly from 0–100 ms between ACK and
// BYE: many short calls, each with its own length.
func soakScenario(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("sipp", "-sd", "uac").Output() // exits 99 after printing it
	if !strings.Contains(string(out), "<scenario") {
		t.Fatalf("sipp -sd uac: %v", err)
	}
	x := strings.Replace(string(out), "<pause/>", `<pause distribution="uniform" min="0" max="100"/>`, 1)
	if x == string(out) {
		t.Fatal("sipp's uac scenario has no <pause/> to replace")
	}
	path := filepath.Join(dir, "soak_uac.xml")
	must(t, os.WriteFile(path, []byte(x), 0o644))
	return path
}

// processStats are the gateway's footprint as a soak compares it.
type processStats struct {
	goroutines, fds, ports, rss, heap, stack float64
}

// footprint reads them; with gc, after a collection forced through the admin API's
// pprof (so the heap holds only what is live).
func (g *gateway) footprint(gc bool) processStats {
	if gc {
		if code, _ := g.api("GET", "/debug/pprof/heap?gc=1", testAPIToken); code != 200 {
			g.t.Fatalf("forcing a GC through pprof: %d", code)
		}
	}
	m := g.metrics()
	return processStats{goroutines: m["go_goroutines"], fds: float64(g.fds()), ports: m["switchboard_rtp_ports_in_use"],
		rss: m["process_resident_memory_bytes"], heap: m["go_memstats_heap_inuse_bytes"], stack: m["go_memstats_stack_inuse_bytes"]}
}

// soak runs calls short sipp calls at rate a second and checks that every one completes
// and that goroutines, file descriptors, RTP ports return to their baseline; with
// checkHeap, that the live heap does too once SIP's timers (Timer H, 32 s) let go.
func soak(t *testing.T, calls, rate int, checkHeap bool) {
	dir := sippDir(t)
	scenario := soakScenario(t, dir)
	g := startAPIGateway(t, gwOptions{dialplan: metricsDialplan, rtpPorts: 500})
	// Warm up (first calls allocate pools and the jitter buffers' steady state), then measure.
	out, err := runTool(t, 60*time.Second, dir, "sipp", "-sf", scenario, g.sipAddr(), "-s", "echo", "-m", "50",
		"-r", "50", "-l", "100", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "50s")
	if err != nil {
		t.Fatalf("warm-up: %v\n%s", err, tail(out))
	}
	waitFor(t, 30*time.Second, "warm-up calls to end", func() bool { return g.metrics()["switchboard_calls_active"] == 0 })
	time.Sleep(time.Second)
	base := g.footprint(true)

	// The peak while calls run: what the soak actually exercised.
	var peak processStats
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
			}
			f := g.footprint(false)
			peak.goroutines, peak.fds, peak.ports = max(peak.goroutines, f.goroutines), max(peak.fds, f.fds), max(peak.ports, f.ports)
			peak.rss, peak.heap = max(peak.rss, f.rss), max(peak.heap, f.heap)
		}
	}()

	limit := time.Duration(calls/rate)*time.Second + 120*time.Second
	started := time.Now()
	out, err = runTool(t, limit, dir, "sipp", "-sf", scenario, g.sipAddr(), "-s", "echo",
		"-m", fmt.Sprint(calls), "-r", fmt.Sprint(rate), "-l", fmt.Sprint(rate*2), "-i", "127.0.0.1",
		"-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", fmt.Sprintf("%ds", int(limit.Seconds())-10),
		"-trace_stat", "-stf", filepath.Join(dir, "stat.csv"))
	took := time.Since(started)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatalf("sipp: %v\n%s", err, tail(out))
	}
	m := g.metrics()
	answered := sumMetric(m, "switchboard_calls_total", `result="answered"`) - 50
	if answered != float64(calls) {
		t.Fatalf("%v of %d calls answered", answered, calls)
	}
	if byes := m[`switchboard_sip_responses_total{code="200",direction="out",method="BYE"}`] - 50; byes != float64(calls) {
		t.Fatalf("%v BYEs answered, want %d", byes, calls)
	}
	var after processStats
	waitFor(t, 60*time.Second, "goroutines, fds and RTP ports back to baseline", func() bool {
		after = g.footprint(false)
		return after.goroutines <= base.goroutines+2 && after.fds <= base.fds && after.ports == 0 &&
			g.metrics()["switchboard_calls_active"] == 0
	})
	settled := time.Now()
	if checkHeap {
		waitFor(t, 90*time.Second, "the live heap back within 4 MiB of its baseline", func() bool {
			time.Sleep(2 * time.Second)
			after = g.footprint(true)
			return after.heap <= base.heap+4<<20
		})
	} else {
		after = g.footprint(true)
	}
	mb := func(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
	t.Logf("%d calls in %v (%.0f/s); baseline → peak → after: goroutines %v → %v → %v, fds %v → %v → %v, "+
		"RTP ports %v → %v → %v, RSS %s → %s → %s, live heap %s → %s → %s (%+.2f MiB, %v after the calls)",
		calls, took.Round(time.Second), float64(calls)/took.Seconds(),
		base.goroutines, peak.goroutines, after.goroutines, base.fds, peak.fds, after.fds, base.ports, peak.ports, after.ports,
		mb(base.rss), mb(peak.rss), mb(after.rss), mb(base.heap), mb(peak.heap), mb(after.heap),
		(after.heap-base.heap)/(1<<20), time.Since(settled).Round(time.Second))
}

// 1,000 short calls in the default suite (about 15 s).
func TestSoakShort(t *testing.T) { soak(t, 1000, 100, false) }

// 10,000 short calls: `make soak` (SWITCHBOARD_SOAK=1), a few minutes.
func TestSoak(t *testing.T) {
	if os.Getenv("SWITCHBOARD_SOAK") == "" {
		t.Skip("set SWITCHBOARD_SOAK=1 (make soak) for the 10,000-call soak")
	}
	soak(t, 10000, 200, true)
}

// A call that is up waits on a goroutine whose stack set-up grew; at the
// next collections it shrinks back, because the wait sits in small frames.
// 100 held calls, after two forced collections, add at most 7 KiB of stack
// each (4 KiB once shrunk; 8 KiB when the wait sat under set-up's 3 KiB frame).
// The gateway is the shipped build even when the tests run with -race.
func TestHeldCallStackShrinks(t *testing.T) {
	const calls = 100
	dir := sippDir(t)
	o := gwOptions{dialplan: metricsDialplan, rtpPorts: 2 * calls}
	if raceEnabled { // the race detector's frames are larger than the shipped build's
		o.bin = filepath.Join(t.TempDir(), "switchboard")
		if out, err := exec.Command("go", "build", "-o", o.bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("building switchboard without -race: %v\n%s", err, out)
		}
	}
	g := startAPIGateway(t, o)
	stack := func() float64 {
		g.footprint(true)
		return g.footprint(true).stack
	}
	base := stack()
	done := make(chan error, 1)
	var out string
	port := freePort(t) // here: it may call t.Fatal, which the goroutine must not
	go func() {
		var err error
		out, err = runTool(t, 60*time.Second, dir, "sipp", "-sn", "uac", g.sipAddr(), "-s", "echo",
			"-m", fmt.Sprint(calls), "-r", fmt.Sprint(calls), "-l", fmt.Sprint(calls), "-d", "8000",
			"-i", "127.0.0.1", "-p", fmt.Sprint(port), "-nostdin", "-timeout", "50s")
		done <- err
	}()
	waitFor(t, 20*time.Second, "every call up", func() bool { return g.metrics()["switchboard_calls_active"] == calls })
	held := stack()
	if err := <-done; err != nil {
		t.Fatalf("sipp: %v\n%s", err, tail(out))
	}
	per := (held - base) / calls
	t.Logf("goroutine stacks: %.0f KiB idle, %.0f KiB with %d calls up: %.1f KiB per call", base/1024, held/1024, calls, per/1024)
	if per > 7<<10 {
		t.Fatalf("each held call keeps %.1f KiB of stack after two collections, want at most 7 KiB", per/1024)
	}
}
