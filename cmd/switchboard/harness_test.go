package main

// The end-to-end harness: the real switchboard binary, run on a config of the
// test's own, called by real peers (sipp, baresip) over 127.0.0.1.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchboard-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "switchboard")
	args := []string{"build", "-o", binPath}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building switchboard: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// rtpRanges hands each gateway in the test binary its own RTP port range,
// from 31000 up; past 46000 it starts again (the gateways of earlier tests
// are gone, and a port still taken is skipped by the pool).
var rtpRanges struct {
	sync.Mutex
	next int
}

const rtpRangeLow, rtpRangeHigh = 31000, 46000

func rtpRange(ports int) (min, max int) {
	rtpRanges.Lock()
	defer rtpRanges.Unlock()
	if rtpRanges.next < rtpRangeLow || rtpRanges.next+ports*2 > rtpRangeHigh {
		rtpRanges.next = rtpRangeLow
	}
	min = rtpRanges.next
	rtpRanges.next += ports*2 + 2
	return min, min + ports*2 - 1
}

// freePort finds a port free for both UDP and TCP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

type gwOptions struct {
	dialplan     string // YAML; a default with echo and hello routes if empty
	mediaTimeout string
	drain        string
	rtpPorts     int
	extra        string // appended to the config
	sipExtra     string // more keys in the sip section, e.g. "  codecs: [G722]\n"
	bin          string // the gateway binary, if not the one TestMain built
}

type gateway struct {
	t        testing.TB
	cmd      *exec.Cmd
	sipPort  int
	httpAddr string
	dir      string
	logs     *syncBuffer
	exited   chan struct{}
	exitErr  error
}

const defaultTestDialplan = `routes:
  - name: echo
    match: { to: echo }
    target: { type: echo }
  - name: hello
    match: { to: hello }
    target: { type: play, file: hello.wav }
  - name: busy
    match: { to: busy }
    target: { type: reject, status: 486, reason: Busy Here }
default:
  target: { type: agent, agent: default }
`

func startGateway(t testing.TB, o gwOptions) *gateway {
	t.Helper()
	dir := t.TempDir()
	if o.dialplan == "" {
		o.dialplan = defaultTestDialplan
	}
	if o.mediaTimeout == "" {
		o.mediaTimeout = "10s"
	}
	if o.drain == "" {
		o.drain = "2s"
	}
	if o.rtpPorts == 0 {
		o.rtpPorts = 100
	}
	hello, err := os.ReadFile("../../configs/prompts/hello.wav")
	if err != nil {
		t.Fatal(err)
	}
	must(t, os.WriteFile(filepath.Join(dir, "hello.wav"), hello, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "dialplan.yaml"), []byte(o.dialplan), 0o644))

	sipPort := freePort(t)
	httpPort := freePort(t)
	rtpMin, rtpMax := rtpRange(o.rtpPorts)
	cfg := fmt.Sprintf(`sip:
  listen:
    - { transport: udp, addr: 127.0.0.1:%d }
    - { transport: tcp, addr: 127.0.0.1:%d }
%srtp:
  ip: 127.0.0.1
  port_min: %d
  port_max: %d
  timeout: %s
http:
  listen: 127.0.0.1:%d
dialplan: dialplan.yaml
drain_timeout: %s
log:
  level: debug
%s`, sipPort, sipPort, o.sipExtra, rtpMin, rtpMax, o.mediaTimeout, httpPort, o.drain, o.extra)
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	must(t, os.WriteFile(cfgPath, []byte(cfg), 0o644))

	g := &gateway{t: t, sipPort: sipPort, httpAddr: fmt.Sprintf("127.0.0.1:%d", httpPort), dir: dir,
		logs: &syncBuffer{}, exited: make(chan struct{})}
	bin := binPath
	if o.bin != "" {
		bin = o.bin
	}
	g.cmd = exec.Command(bin, "run", "-c", cfgPath)
	g.cmd.Stdout = g.logs
	g.cmd.Stderr = g.logs
	must(t, g.cmd.Start())
	go func() { g.exitErr = g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.stop()
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.logs.String())
		}
	})

	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get("http://" + g.httpAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g
			}
		}
		select {
		case <-g.exited:
			t.Fatalf("gateway exited at start: %v\n%s", g.exitErr, g.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not healthy after 15 s\n%s", g.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (g *gateway) sipAddr() string { return fmt.Sprintf("127.0.0.1:%d", g.sipPort) }

// stop sends SIGTERM and waits for the exit.
func (g *gateway) stop() error {
	select {
	case <-g.exited:
		return g.exitErr
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
		return fmt.Errorf("gateway did not exit within 20 s of SIGTERM")
	}
	return g.exitErr
}

// metrics reads /metrics into name{labels} → value.
func (g *gateway) metrics() map[string]float64 {
	g.t.Helper()
	resp, err := http.Get("http://" + g.httpAddr + "/metrics")
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// fds counts the gateway's open file descriptors (sockets among them).
func (g *gateway) fds() int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.cmd.Process.Pid))
	if err != nil {
		g.t.Fatal(err)
	}
	return len(ents)
}

// fdTargets lists what the gateway's open descriptors point at, for a leak report.
func (g *gateway) fdTargets() string {
	dir := fmt.Sprintf("/proc/%d/fd", g.cmd.Process.Pid)
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		l, _ := os.Readlink(filepath.Join(dir, e.Name()))
		out = append(out, e.Name()+"→"+l)
	}
	return strings.Join(out, " ")
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for the process's writers and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runTool runs a peer program with a hard time limit and returns its output.
func runTool(t testing.TB, limit time.Duration, dir string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s killed after %s: %w", name, limit, ctx.Err())
	}
	return out.String(), err
}
