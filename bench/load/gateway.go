package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// gateway is the process under test: started here or attached to.
type gateway struct {
	sip, http, token string
	pid              int
	cmd              *exec.Cmd
	dir              string
	logFile          *os.File
}

const loadToken = "load-tool-admin-token"

// startGateway builds (unless bin is set) and runs switchboard on a config of
// its own: UDP SIP, RTP ports 20000-29999, echo and bot routes, pprof on.
func startGateway(ctx context.Context, o options, botURL string) (*gateway, error) {
	dir, err := os.MkdirTemp("", "switchboard-load-")
	if err != nil {
		return nil, err
	}
	bin := o.bin
	if bin == "" {
		bin = filepath.Join(dir, "switchboard")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/switchboard")
		cmd.Env = append(os.Environ(), "GOFLAGS=-tags=nolibopusfile")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("building switchboard (run from the repo root): %v\n%s", err, out)
		}
	}
	sipPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	chunk := ""
	if o.chunkMs != 0 {
		chunk = fmt.Sprintf(", chunk_ms: %d", o.chunkMs)
	}
	plan := fmt.Sprintf(`routes:
  - name: echo
    match: { to: echo }
    target: { type: echo }
  - name: twilio
    match: { to: twilio }
    target: { type: agent, protocol: twilio, url: "%s"%s }
default:
  target: { type: echo }
`, botURL, chunk)
	cfg := fmt.Sprintf(`sip:
  listen:
    - { transport: udp, addr: 127.0.0.1:%d }
  codecs: [PCMU, PCMA]
rtp:
  ip: 127.0.0.1
  port_min: 20000
  port_max: 29999
  timeout: 10s
http:
  listen: 127.0.0.1:%d
dialplan: dialplan.yaml
drain_timeout: 2s
cdr: { driver: sqlite, dsn: cdr.db }
api: { token_env: SWITCHBOARD_LOAD_TOKEN }
log:
  level: %s
`, sipPort, httpPort, o.logLevel)
	if err := os.WriteFile(filepath.Join(dir, "dialplan.yaml"), []byte(plan), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "switchboard.yaml"), []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	lf, err := os.Create(filepath.Join(dir, "gateway.log"))
	if err != nil {
		return nil, err
	}
	g := &gateway{sip: fmt.Sprintf("127.0.0.1:%d", sipPort), http: fmt.Sprintf("127.0.0.1:%d", httpPort),
		token: loadToken, dir: dir, logFile: lf}
	g.cmd = exec.Command(bin, "run", "-c", "switchboard.yaml")
	g.cmd.Dir = dir
	g.cmd.Env = append(os.Environ(), "SWITCHBOARD_LOAD_TOKEN="+loadToken)
	g.cmd.Stdout, g.cmd.Stderr = lf, lf
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	g.pid = g.cmd.Process.Pid
	for i := 0; ; i++ {
		if resp, err := http.Get("http://" + g.http + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g, nil
			}
		}
		if i == 300 {
			g.stop(true)
			log, _ := os.ReadFile(filepath.Join(dir, "gateway.log"))
			return nil, fmt.Errorf("gateway not healthy after 15 s:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends a gateway this tool started (SIGTERM, then SIGKILL after 20 s).
func (g *gateway) stop(removeDir bool) {
	if g.cmd == nil {
		return
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { g.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-done
	}
	g.logFile.Close()
	if removeDir {
		os.RemoveAll(g.dir)
	}
}

func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port")
}

// procSample is the gateway's CPU time and resident memory at one moment.
type procSample struct {
	at     time.Time
	cpu    time.Duration // utime + stime
	rssKB  int64
	anonKB int64 // RssAnon: heap, stacks; the rest of VmRSS is file pages (the binary's code) and shmem
	gorout int
}

var clkTck = 100.0 // USER_HZ; 100 on Linux x86

func (g *gateway) sample() (procSample, error) {
	s := procSample{at: time.Now(), gorout: -1}
	if g.pid > 0 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", g.pid))
		if err != nil {
			return s, err
		}
		// Fields after the parenthesised command name; utime and stime are 14 and 15.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		s.cpu = time.Duration((ut + st) / clkTck * float64(time.Second))
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", g.pid))
		if err != nil {
			return s, err
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				s.rssKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
			if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
				s.anonKB, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	if g.http != "" {
		s.gorout = g.goroutines()
	}
	return s, nil
}

func (g *gateway) goroutines() int {
	m := g.metrics()
	if v, ok := m["go_goroutines"]; ok {
		return int(v)
	}
	return -1
}

// metrics scrapes the gateway's /metrics into series → value (the series
// name with its labels, as exposed); empty when it cannot.
func (g *gateway) metrics() map[string]float64 {
	out := map[string]float64{}
	if g.http == "" {
		return out
	}
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + g.http + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
				out[line[:i]] = v
			}
		}
	}
	return out
}

// cpuProfile fetches a CPU profile of the gateway over seconds.
func (g *gateway) cpuProfile(seconds int, path string) error {
	req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", g.http, seconds), nil)
	req.Header.Set("Authorization", "Bearer "+g.token)
	c := http.Client{Timeout: time.Duration(seconds+30) * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, resp.Body)
	return err
}
