package main

// Call detail records through the real binary: every way a call ends is
// recorded with who ended it, why and the SIP status; a gateway killed
// mid-call leaves a record that its next start closes as abnormal; the same
// on a real PostgreSQL server.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/bridge/cdr/pgtest"
)

// cdrRow is one record of `switchboard cdr export --format json`.
type cdrRow struct {
	ID         string  `json:"id"`
	CallID     string  `json:"call_id"`
	Node       string  `json:"node"`
	From       string  `json:"from"`
	To         string  `json:"to"`
	Route      string  `json:"route"`
	TargetType string  `json:"target_type"`
	Target     string  `json:"target"`
	Start      string  `json:"start"`
	Answer     string  `json:"answer"`
	End        string  `json:"end"`
	DurationMs int64   `json:"duration_ms"`
	EndedBy    string  `json:"ended_by"`
	Cause      string  `json:"cause"`
	Status     int     `json:"sip_status"`
	Abnormal   bool    `json:"abnormal"`
	PacketsIn  uint64  `json:"packets_in"`
	PacketsOut uint64  `json:"packets_out"`
	MOS        float64 `json:"mos"`
}

// exportCDRs reads the records of the store the gateway's config names.
func (g *gateway) exportCDRs() []cdrRow {
	g.t.Helper()
	out, err := runTool(g.t, 30*time.Second, g.dir, binPath, "cdr", "-c", filepath.Join(g.dir, "switchboard.yaml"), "export", "--format", "json")
	if err != nil {
		g.t.Fatalf("cdr export: %v\n%s", err, out)
	}
	var rows []cdrRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		g.t.Fatalf("cdr export is not JSON: %v\n%s", err, out)
	}
	return rows
}

func byTo(rows []cdrRow) map[string]cdrRow {
	m := map[string]cdrRow{}
	for _, r := range rows {
		m[r.To] = r
	}
	return m
}

// hangingListener accepts TCP connections and never answers: a bot whose
// WebSocket handshake never completes. The channel tells of each connection.
func hangingListener(t *testing.T) (string, <-chan struct{}) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	t.Cleanup(func() { l.Close() })
	accepted := make(chan struct{}, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
			select {
			case accepted <- struct{}{}:
			default:
			}
		}
	}()
	return l.Addr().String(), accepted
}

// startDial runs `switchboard dial` in the background; the process is killed
// at cleanup. The channel closes when it exits.
func startDial(t *testing.T, args ...string) (*exec.Cmd, <-chan struct{}) {
	cmd := exec.Command(binPath, append([]string{"dial"}, args...)...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	must(t, cmd.Start())
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	return cmd, done
}

// Each way a call ends, through the real binary, recorded with who ended it,
// why, and the SIP final status; drain last, which also flushes the writer.
func TestCDRHangupCauses(t *testing.T) {
	closed := freePort(t) // nothing listens: the bot is down
	hanging, connecting := hangingListener(t)
	g := startGateway(t, gwOptions{mediaTimeout: "1s", drain: "1s", dialplan: fmt.Sprintf(`routes:
  - { name: echo, match: { to: echo }, target: { type: echo } }
  - { name: drain, match: { to: drain }, target: { type: echo } }
  - { name: quiet, match: { to: quiet }, target: { type: echo } }
  - { name: hello, match: { to: hello }, target: { type: play, file: hello.wav } }
  - { name: busy, match: { to: busy }, target: { type: reject, status: 486, reason: Busy Here } }
  - name: slow
    match: { to: slow }
    target: { type: agent, protocol: switchboard, url: "ws://%s/", connect_timeout: 10s }
  - name: broken
    match: { to: broken }
    target: { type: agent, protocol: switchboard, url: "ws://127.0.0.1:%d/", connect_timeout: 2s }
`, hanging, closed)})
	uri := func(to string) string { return "sip:" + to + "@" + g.sipAddr() }

	t.Run("calls", func(t *testing.T) {
		t.Run("caller BYE", func(t *testing.T) {
			t.Parallel()
			out, err := runTool(t, 20*time.Second, "", binPath, "dial", uri("echo"), "--seconds", "1")
			if err != nil {
				t.Fatalf("dial: %v\n%s", err, out)
			}
		})
		t.Run("prompt hangs up", func(t *testing.T) {
			t.Parallel()
			out, err := runTool(t, 20*time.Second, "", binPath, "dial", uri("hello"), "--seconds", "10")
			if err != nil || !strings.Contains(out, "by=callee") {
				t.Fatalf("dial: %v\n%s", err, out)
			}
		})
		t.Run("route rejects", func(t *testing.T) {
			t.Parallel()
			out, _ := runTool(t, 20*time.Second, "", binPath, "dial", uri("busy"), "--seconds", "1")
			if !strings.Contains(out, "486") {
				t.Fatalf("dial: %s", out)
			}
		})
		t.Run("no route", func(t *testing.T) {
			t.Parallel()
			out, _ := runTool(t, 20*time.Second, "", binPath, "dial", uri("nobody"), "--seconds", "1")
			if !strings.Contains(out, "404") {
				t.Fatalf("dial: %s", out)
			}
		})
		t.Run("target down", func(t *testing.T) {
			t.Parallel()
			out, _ := runTool(t, 20*time.Second, "", binPath, "dial", uri("broken"), "--seconds", "1")
			if !strings.Contains(out, "503") {
				t.Fatalf("dial: %s", out)
			}
		})
		t.Run("CANCEL before answer", func(t *testing.T) {
			t.Parallel()
			cmd, exited := startDial(t, uri("slow"), "--seconds", "5")
			select { // the gateway is connecting to the bot while the caller hears ringing
			case <-connecting:
			case <-time.After(10 * time.Second):
				t.Fatal("the gateway never connected to the slow bot")
			}
			time.Sleep(200 * time.Millisecond)
			must(t, cmd.Process.Signal(os.Interrupt)) // the dialler CANCELs, then exits
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				t.Fatal("the dialler did not exit after SIGINT")
			}
		})
		t.Run("media timeout", func(t *testing.T) {
			t.Parallel()
			// sipp's uac sends no RTP and would hang up after 4 s: our BYE comes first.
			runTool(t, 20*time.Second, sippDir(t), "sipp", "-sn", "uac", g.sipAddr(), "-s", "quiet", "-m", "1",
				"-d", "4000", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "15s")
		})
	})
	if t.Failed() {
		return
	}
	waitFor(t, 10*time.Second, "every call to end", func() bool { return g.metrics()["switchboard_calls_active"] == 0 })

	// Drain: a running call gets the gateway's BYE, and the writer is flushed on the way out.
	startDial(t, uri("drain"), "--seconds", "15")
	waitFor(t, 5*time.Second, "the drain call to be up", func() bool { return g.metrics()["switchboard_calls_active"] == 1 })
	must(t, g.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-g.exited:
	case <-time.After(15 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}

	recs := byTo(g.exportCDRs())
	for _, c := range []struct {
		to, by, cause string // cause: a prefix
		status        int
		answered      bool
		minTalk       time.Duration
	}{
		{"echo", "caller", "bye", 200, true, 800 * time.Millisecond},
		{"hello", "agent", "prompt played", 200, true, 2 * time.Second},
		{"busy", "gateway", "rejected by route: Busy Here", 486, false, 0},
		{"nobody", "gateway", "no route", 404, false, 0},
		{"broken", "gateway", "target failed", 503, false, 0},
		{"slow", "caller", "cancel", 487, false, 0},
		{"quiet", "gateway", "media: RTP timeout", 200, true, 900 * time.Millisecond},
		{"drain", "gateway", "gateway shutting down", 200, true, 500 * time.Millisecond},
	} {
		r, ok := recs[c.to]
		if !ok {
			t.Errorf("%s: no record; have %+v", c.to, recs)
			continue
		}
		talk := time.Duration(r.DurationMs) * time.Millisecond
		if r.EndedBy != c.by || !strings.HasPrefix(r.Cause, c.cause) || r.Status != c.status ||
			(r.Answer != "") != c.answered || r.End == "" || r.Abnormal || talk < c.minTalk || r.CallID == "" || r.Node == "" {
			t.Errorf("%s: record %+v\nwant ended_by=%s cause=%q… status=%d answered=%v talk>=%v",
				c.to, r, c.by, c.cause, c.status, c.answered, c.minTalk)
			continue
		}
		t.Logf("%-6s %-7s %-30q %d talk=%v rtp_in=%d mos=%.2f", c.to, r.EndedBy, r.Cause, r.Status, talk, r.PacketsIn, r.MOS)
	}
	if r := recs["echo"]; r.Route != "echo" || r.TargetType != "echo" || r.PacketsIn < 20 || r.PacketsOut < 20 || r.MOS < 3 {
		t.Errorf("echo call's route or quality: %+v", r)
	}
	if r := recs["slow"]; r.TargetType != "agent" || !strings.HasPrefix(r.Target, "ws://") {
		t.Errorf("agent target not recorded: %+v", r)
	}
	if r := recs["quiet"]; r.PacketsIn != 0 || r.MOS != 0 {
		t.Errorf("the silent caller: %d packets in, MOS %v; want 0, no score", r.PacketsIn, r.MOS)
	}

	// The readable table: newest first, limited.
	out, err := runTool(t, 20*time.Second, g.dir, binPath, "cdr", "-c", filepath.Join(g.dir, "switchboard.yaml"), "list", "--limit", "3", "--since", "1h")
	if err != nil || !strings.Contains(out, "3 records") || !strings.Contains(out, "gateway shutting down") ||
		len(strings.Split(strings.TrimSpace(out), "\n")) != 5 {
		t.Errorf("cdr list: %v\n%s", err, out)
	}
}

// SIGKILL mid-call: the call's record is already there, open; the next start
// of the gateway closes it as ended abnormally.
func TestCDRAfterSIGKILL(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cdr.db")
	crashAndRestart(t, fmt.Sprintf("cdr: { driver: sqlite, dsn: %q, node: kill-test }\n", db))
}

// The same lifecycle on a real PostgreSQL server: normal ends, a reject, and a crash.
func TestCDRPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	g := crashAndRestart(t, fmt.Sprintf("cdr: { driver: postgres, dsn: %q, node: pg-test }\n", dsn))
	out, err := runTool(t, 20*time.Second, "", binPath, "dial", "sip:echo@"+g.sipAddr(), "--seconds", "1", "--from", "pg-caller")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, out)
	}
	runTool(t, 20*time.Second, "", binPath, "dial", "sip:busy@"+g.sipAddr(), "--seconds", "1")
	must(t, g.stop())
	var echo, busy int
	for _, r := range g.exportCDRs() {
		switch {
		case r.From == "pg-caller" && r.EndedBy == "caller" && r.Cause == "bye" && r.Status == 200 && r.DurationMs >= 800 && !r.Abnormal:
			echo++
		case r.To == "busy" && r.Status == 486 && r.EndedBy == "gateway":
			busy++
		}
	}
	if echo != 1 || busy != 1 {
		t.Fatalf("on postgres: %d finished echo calls, %d rejected calls; want 1 each\n%+v", echo, busy, g.exportCDRs())
	}
}

// crashAndRestart kills a gateway mid-call, checks the open record, restarts
// on the same store and checks the crash sweep; it returns the new gateway.
func crashAndRestart(t *testing.T, extra string) *gateway {
	g := startGateway(t, gwOptions{extra: extra})
	startDial(t, "sip:echo@"+g.sipAddr(), "--seconds", "20", "--from", "victim")
	waitFor(t, 5*time.Second, "the call to be up", func() bool { return g.metrics()["switchboard_calls_active"] == 1 })
	// The writer commits within moments of the answer; a crash now must leave the record.
	var open cdrRow
	waitFor(t, 2*time.Second, "the answered call's record", func() bool {
		for _, r := range g.exportCDRs() {
			if r.From == "victim" && r.Answer != "" {
				open = r
				return true
			}
		}
		return false
	})
	must(t, g.cmd.Process.Kill())
	<-g.exited
	if open.End != "" || open.Status != 200 {
		t.Fatalf("record of the running call: %+v", open)
	}
	killedAt := time.Now()

	g2 := startGateway(t, gwOptions{extra: extra})
	var r cdrRow
	for _, row := range g2.exportCDRs() {
		if row.ID == open.ID {
			r = row
		}
	}
	end, err := time.Parse(time.RFC3339Nano, r.End)
	if err != nil || !r.Abnormal || r.Cause != "gateway crashed" || r.EndedBy != "gateway" || r.Status != 200 ||
		r.Answer == "" || end.After(killedAt) || r.DurationMs < 0 {
		t.Fatalf("after restart, the killed call's record: %+v (end %v, killed at %v)", r, end, killedAt)
	}
	if !strings.Contains(g2.logs.String(), "left open by a previous run") {
		t.Error("the restart did not log the record it closed")
	}
	t.Logf("killed call %s: answered %s, ended (last seen) %s, talk %d ms, cause %q", r.CallID, r.Answer, r.End, r.DurationMs, r.Cause)
	return g2
}
