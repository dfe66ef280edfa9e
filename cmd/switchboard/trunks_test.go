package main

// Inbound trunks with the real binary and sipp as the carrier: source allowlists (the
// whole of 127/8 is loopback, so 127.0.0.2 is the carrier and 127.0.0.1 a stranger),
// silence toward strangers, digest authentication.

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sippFrom runs sipp with source address ip against the gateway; it returns sipp's
// output followed by its error log. A free port can be taken by another test's
// socket before sipp binds it: sipp then sends nothing, and is run again on others.
func sippFrom(t *testing.T, g *gateway, ip string, limit time.Duration, args ...string) (string, error) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		dir := sippDir(t)
		base := []string{g.sipAddr(), "-i", ip, "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freePort(t)),
			"-m", "1", "-nostdin", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "err.log")}
		out, err := runTool(t, limit, dir, "sipp", append(base, args...)...)
		if b, rerr := os.ReadFile(filepath.Join(dir, "err.log")); rerr == nil {
			out += "\n" + string(b)
		}
		if err == nil || attempt == 3 || !strings.Contains(out, "errno = 98 (Address already in use)") {
			return out, err
		}
	}
}

// metricSum adds the series of name whose labels contain every one of labels.
func metricSum(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		if !strings.HasPrefix(k, name+"{") && k != name {
			continue
		}
		ok := true
		for _, l := range labels {
			ok = ok && strings.Contains(k, l)
		}
		if ok {
			sum += v
		}
	}
	return sum
}

func TestTrunkAllowlistE2E(t *testing.T) {
	g := startGateway(t, gwOptions{extra: `trunks:
  - name: carrier
    inbound:
      allow: [127.0.0.2/32]
      unknown_source: reject
`})
	// The carrier's call is routed to echo and counted under its trunk.
	if out, err := sippFrom(t, g, "127.0.0.2", 30*time.Second, "-sn", "uac", "-s", "echo", "-d", "500", "-timeout", "20s"); err != nil {
		t.Fatalf("sipp from the carrier's address: %v\n%s", err, tail(out))
	}
	// A stranger gets 403, whatever it dials.
	for _, to := range []string{"echo", "no-such-number"} {
		out, err := sippFrom(t, g, "127.0.0.1", 30*time.Second, "-sn", "uac", "-s", to, "-timeout", "10s")
		if err == nil || !strings.Contains(out, "SIP/2.0 403 Forbidden") {
			t.Fatalf("stranger dialling %s: err=%v, want a 403\n%s", to, err, tail(out))
		}
	}
	m := g.metrics()
	if n := metricSum(m, "switchboard_calls_total", `result="answered"`, `trunk="carrier"`); n != 1 {
		t.Errorf("answered calls on trunk carrier = %v, want 1", n)
	}
	if n := metricSum(m, "switchboard_sip_rejected_total", `reason="unknown_source"`, `code="403"`); n < 2 {
		t.Errorf("unknown_source 403s = %v, want ≥ 2", n)
	}
	if n := metricSum(m, "switchboard_calls_total"); n != 1 {
		t.Errorf("calls that reached the gateway = %v, want only the carrier's", n)
	}
}

func TestTrunkSilentE2E(t *testing.T) {
	g := startGateway(t, gwOptions{extra: `trunks:
  - name: carrier
    inbound:
      allow: [127.0.0.2/32]
      unknown_source: silent
`})
	start := time.Now()
	out, err := sippFrom(t, g, "127.0.0.1", 20*time.Second, "-sn", "uac", "-s", "echo", "-timeout", "3s")
	if err == nil {
		t.Fatalf("a stranger's call went through\n%s", tail(out))
	}
	if strings.Contains(out, "SIP/2.0 ") && strings.Contains(out, "received 'SIP/2.0") {
		t.Fatalf("a stranger got an answer:\n%s", tail(out))
	}
	t.Logf("stranger gave up after %v with no answer", time.Since(start).Round(time.Millisecond))
	if n := metricSum(g.metrics(), "switchboard_sip_dropped_total", `reason="unknown_source"`); n < 1 {
		t.Errorf("unknown_source drops = %v, want ≥ 1", n)
	}
	if out, err := sippFrom(t, g, "127.0.0.2", 30*time.Second, "-sn", "uac", "-s", "echo", "-d", "300", "-timeout", "20s"); err != nil {
		t.Fatalf("the carrier's call: %v\n%s", err, tail(out))
	}
}

func TestTrunkDigestE2E(t *testing.T) {
	t.Setenv("SB_TEST_PBX_PASSWORD", "pbx-secret")
	g := startGateway(t, gwOptions{extra: `trunks:
  - name: pbx
    inbound:
      auth: { user: pbx1, password_env: SB_TEST_PBX_PASSWORD }
`})
	scen, err := filepath.Abs("../../sip/testdata/uac_auth.xml")
	must(t, err)
	if out, err := sippFrom(t, g, "127.0.0.1", 30*time.Second, "-sf", scen, "-s", "echo",
		"-au", "pbx1", "-ap", "pbx-secret", "-timeout", "20s"); err != nil {
		t.Fatalf("sipp answering the 401: %v\n%s", err, tail(out))
	}
	out, err := sippFrom(t, g, "127.0.0.1", 30*time.Second, "-sf", scen, "-s", "echo",
		"-au", "pbx1", "-ap", "wrong", "-timeout", "10s")
	if err == nil || !strings.Contains(out, "SIP/2.0 403") {
		t.Fatalf("wrong password: err=%v, want 403\n%s", err, tail(out))
	}
	m := g.metrics()
	if n := metricSum(m, "switchboard_calls_total", `result="answered"`, `trunk="pbx"`); n != 1 {
		t.Errorf("answered on pbx = %v, want 1", n)
	}
	if n := metricSum(m, "switchboard_sip_rejected_total", `reason="auth_challenge"`, `code="401"`); n != 2 {
		t.Errorf("401 challenges = %v, want 2", n)
	}
}
