package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// farDialplan is the destination gateway's: an echo by URI user (ringing a
// second first) and by number (as a trunk delivers it), and a busy line.
const farDialplan = `routes:
  - { name: echo, match: { to: echo }, target: { type: echo }, ring: 1s }
  - { name: number, match: { to: "+49 30 111" }, target: { type: echo } }
  - { name: busy, match: { to: busy }, target: { type: reject, status: 486, reason: Busy Here } }
`

// Routes of type transfer forward the call: gateway A dials gateway B as a
// second leg while the caller rings, answers when B answers, and bridges the
// two. The caller hears its own 1 kHz tone echoed by B (A has no echo route
// of its own on these numbers). A busy B gives the caller 486, unless the
// route names a fallback; the call records name the forward.
func TestForwardTransferTarget(t *testing.T) {
	far := startGateway(t, gwOptions{dialplan: farDialplan})
	db := filepath.Join(t.TempDir(), "cdr.db")
	g := startGateway(t, gwOptions{dialplan: fmt.Sprintf(`routes:
  - name: to-uri
    match: { to: fwd }
    target: { type: transfer, to: "sip:echo@%[1]s" }
  - name: to-number
    match: { to: num }
    target: { type: transfer, to: "+49 30 111", trunk: far }
  - name: to-busy
    match: { to: busy }
    target: { type: transfer, to: "sip:busy@%[1]s" }
  - name: to-busy-then-echo
    match: { to: busyfb }
    target: { type: transfer, to: "sip:busy@%[1]s" }
    fallback: [ { type: echo } ]
  - name: premium
    match: { to: premium }
    target: { type: transfer, to: "+900111", trunk: far }
`, far.sipAddr()), extra: fmt.Sprintf(`trunks:
  - name: far
    outbound: { host: 127.0.0.1, port: %d, allowed_destinations: ["+4930*"] }
cdr: { driver: sqlite, dsn: %q, node: fwd-test }
`, far.sipPort, db)})

	dir := t.TempDir()
	in := filepath.Join(dir, "tone.wav")
	writeTone(t, in, 1000, 8000, 3*time.Second)
	uri := func(to string) string { return "sip:" + to + "@" + g.sipAddr() }

	for _, c := range []struct{ name, to string }{{"sip URI", "fwd"}, {"number through a trunk", "num"}, {"busy, then fallback", "busyfb"}} {
		t.Run(c.name, func(t *testing.T) {
			heard := filepath.Join(dir, c.to+".wav")
			res, err := runTool(t, 30*time.Second, dir, binPath, "dial", uri(c.to), "--play", in, "--record", heard, "--seconds", "4")
			if err != nil {
				t.Fatalf("dial: %v\n%s", err, res)
			}
			checkTone(t, heard, 1000, 2*time.Second)
		})
	}
	for _, c := range []struct{ to, want string }{{"busy", "486"}, {"premium", "503"}} {
		res, err := runTool(t, 30*time.Second, dir, binPath, "dial", uri(c.to), "--seconds", "2")
		if err == nil || !strings.Contains(res, c.want) {
			t.Errorf("dial %s: err %v, output %q; want a %s rejection", c.to, err, tail(res), c.want)
		}
	}
	noRaceReports(t, g, far)

	l := g.logs.String()
	for _, want := range []string{"msg=forwarding", "forward_to=+4930111 forward_trunk=far", "trunk far refused +900111",
		"target failed before answer; fell back"} {
		if !strings.Contains(l, want) {
			t.Errorf("gateway log lacks %q", want)
		}
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`msg="forward ringing" .*forward_to=sip:echo@\S+ status=180`),
		regexp.MustCompile(`msg="forward failed" .*forward_to=sip:busy@\S+ status=486`),
		regexp.MustCompile(`msg="every target failed before answer" .*route=to-busy status=486`),
	} {
		if !want.MatchString(l) {
			t.Errorf("gateway log lacks a line matching %s", want)
		}
	}
	// The caller is answered when the far end answers, after its second of ringing.
	if m := regexp.MustCompile(`msg="forward answered" .*forward_to=sip:echo@\S+ after=(\S+)`).FindStringSubmatch(l); m == nil {
		t.Errorf("no forward answered line for the URI forward")
	} else if d, err := time.ParseDuration(m[1]); err != nil || d < 900*time.Millisecond {
		t.Errorf("forward answered after %s; want after the far end's 1 s of ringing", m[1])
	} else {
		t.Logf("URI forward answered after %s (far end rings 1 s)", d)
	}
	// The far gateway saw the legs: the number arrived as the trunk dialled it.
	fl := far.logs.String()
	if !strings.Contains(fl, "route=number") || !strings.Contains(fl, "route=busy") {
		t.Errorf("far gateway did not see the number and busy legs")
	}
	// Either side's BYE ends the other: the caller's BYE reached B through A.
	waitFor(t, 5*time.Second, "the legs' BYE at the far gateway", func() bool {
		return strings.Count(far.logs.String(), "by=caller") >= 2
	})

	g.stop()
	recs := map[string]cdrRow{}
	for _, r := range g.exportCDRs() {
		recs[r.Route] = r
	}
	if r := recs["to-uri"]; r.TargetType != "transfer" || r.Target != "sip:echo@"+far.sipAddr() || r.Answer == "" || r.EndedBy != "caller" {
		t.Errorf("record of the forward: %+v", r)
	}
	if r := recs["to-number"]; r.Target != "+4930111" || r.Answer == "" {
		t.Errorf("record of the forward through the trunk: %+v", r)
	}
	if r := recs["to-busy"]; r.Status != 486 || r.Answer != "" {
		t.Errorf("record of the busy forward: %+v, want sip_status 486 and no answer", r)
	}
}

// transfer_method: bridge makes an agent's transfer dial a second leg without
// trying REFER first; the caller hears the far end's echo.
func TestTransferMethodBridge(t *testing.T) {
	far := startGateway(t, gwOptions{})
	var botClosed atomic.Int64
	url := transferringNativeBot(t, "sip:echo@"+far.sipAddr(), &botClosed)
	g := startGateway(t, gwOptions{dialplan: botPlan(fmt.Sprintf(`{ type: agent, protocol: switchboard, url: "%s" }`, url),
		"    transfer_method: bridge\n")})

	dir := t.TempDir()
	in, heard := filepath.Join(dir, "tone.wav"), filepath.Join(dir, "heard.wav")
	writeTone(t, in, 1000, 8000, 4*time.Second)
	res, err := runTool(t, 40*time.Second, dir, binPath, "dial", "sip:bot@"+g.sipAddr(), "--play", in, "--record", heard, "--seconds", "5")
	if err != nil {
		t.Fatalf("dial: %v\n%s", err, res)
	}
	checkTone(t, heard, 1000, 2*time.Second)
	noRaceReports(t, g, far)
	l := g.logs.String()
	if !strings.Contains(l, "REFER not tried: the route bridges transfers") || !strings.Contains(l, "transferred by bridging") {
		t.Errorf("gateway log lacks the bridged transfer without REFER")
	}
	if strings.Contains(l, "405 Method Not Allowed") || strings.Contains(l, "msg=\"sip refer") {
		t.Errorf("a REFER was sent although the route says transfer_method: bridge")
	}
	if botClosed.Load() == 0 {
		t.Errorf("the bot was not hung up at the transfer")
	}
}
