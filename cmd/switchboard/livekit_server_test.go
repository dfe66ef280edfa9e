package main

// A real LiveKit server for the room tests, in a network namespace of the
// test's own: WebRTC media does not flow over loopback (pion drops loopback
// ICE candidates), so the namespace gets a veth pair and the server, the
// gateway and the test's participants all use its 10.200.0.1.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// lkNetnsEnv marks the copy of the test binary running in its namespace.
	lkNetnsEnv = "SWITCHBOARD_LIVEKIT_NETNS"
	lkIP       = "10.200.0.1"
	lkURL      = "ws://" + lkIP + ":7880"
	// livekit-server --dev fixes these keys.
	lkAPIKey    = "devkey"
	lkAPISecret = "secret"
)

// liveKitServerBin is the livekit-server scripts/install-deps.sh builds.
func liveKitServerBin(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../../.cache/bin/livekit-server")
	must(t, err)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run scripts/install-deps.sh test (make test does), which builds livekit-server v1.13.5", bin)
	}
	return bin
}

// inLiveKitNetns re-runs the test named run in a new network namespace and
// reports whether the caller is already that copy (and should go on).
func inLiveKitNetns(t *testing.T, run string, limit time.Duration) bool {
	t.Helper()
	if os.Getenv(lkNetnsEnv) != "" {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -n")
	}
	for _, tool := range []string{"unshare", "ip"} {
		needTool(t, tool)
	}
	bin := liveKitServerBin(t)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "--", os.Args[0],
		"-test.run", "^"+run+"$", "-test.v", "-test.count=1", fmt.Sprintf("-test.timeout=%s", limit-5*time.Second))
	cmd.Env = append(os.Environ(), lkNetnsEnv+"=1", "SWITCHBOARD_LIVEKIT_BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil || testing.Verbose() {
		t.Logf("in the namespace:\n%s", out)
	}
	if err != nil {
		t.Fatalf("netns run: %v", err)
	}
	if strings.Contains(string(out), "--- SKIP") && !strings.Contains(string(out), "--- PASS") {
		t.Skip("skipped in the namespace")
	}
	return false
}

// startLiveKit brings up the namespace's links and runs livekit-server in dev
// mode on 10.200.0.1 until the test ends.
func startLiveKit(t *testing.T) {
	t.Helper()
	for _, args := range [][]string{
		{"link", "set", "lo", "up"},
		{"link", "add", "lk0", "type", "veth", "peer", "name", "lk1"},
		{"addr", "add", lkIP + "/24", "dev", "lk0"},
		{"addr", "add", "10.200.0.2/24", "dev", "lk1"},
		{"link", "set", "lk0", "up"},
		{"link", "set", "lk1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`port: 7880
rtc:
  tcp_port: 7881
  udp_port: 7882
  node_ip: %s
  use_external_ip: false
  stun_servers: []
logging:
  level: warn
`, lkIP)
	must(t, os.WriteFile(filepath.Join(dir, "lk.yaml"), []byte(cfg), 0o644))
	logs := &syncBuffer{}
	cmd := exec.Command(os.Getenv("SWITCHBOARD_LIVEKIT_BIN"), "--dev", "--bind", lkIP, "--config", filepath.Join(dir, "lk.yaml"))
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlives a killed test
	must(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("livekit-server log:\n%s", logs.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if resp, err := http.Get("http://" + lkIP + ":7880/"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("livekit-server exited at start:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("livekit-server not up after 10 s:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
