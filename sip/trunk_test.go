package sip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// sippAt runs sipp with its own source IP (the whole of 127/8 is loopback on Linux).
func sippAt(t *testing.T, ip, remote string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("sipp not installed")
	}
	dir := t.TempDir()
	base := []string{"-i", ip, "-p", fmt.Sprint(freePort(t)), "-mp", fmt.Sprint(freePort(t)),
		"-cp", fmt.Sprint(freePort(t)), "-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "err.log")}
	if remote != "" {
		base = append([]string{remote}, base...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", append(base, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if b, rerr := os.ReadFile(filepath.Join(dir, "err.log")); rerr == nil && len(b) > 0 && err != nil {
		t.Logf("sipp errors:\n%s", tail(string(b), 4000))
	}
	return out.String(), err
}

func scenario(t *testing.T, name string) string {
	p, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var carrierOnly = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}

// A carrier at an allowed address is routed and its calls carry the trunk's name; the
// rest of the world gets 403, the same for every number dialled.
func TestTrunkAllowlist(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), func(c *Config) {
		c.Inbound = []InboundTrunk{{Name: "carrier", Allow: carrierOnly}}
	})
	if out, err := sippAt(t, "127.0.0.2", s.Addr("udp"), "-sn", "uac", "-s", "1000", "-d", "200"); err != nil {
		t.Fatalf("sipp from 127.0.0.2: %v\n%s", err, tail(out, 2000))
	}
	c := r.waitEnded(t)
	r.check(t)
	if c.Trunk() != "carrier" {
		t.Errorf("Trunk() = %q, want carrier", c.Trunk())
	}

	p := dialPeer(t, "udp", s.Addr("udp"))
	var answers []string
	for i, to := range []string{"1000", "0000999"} { // a routable and a made-up number
		inv := p.invite(s.Addr("udp"), fmt.Sprintf("unknown-%d", i), fmt.Sprint(i), pcmuOffer)
		p.send(replaceUser(inv, to))
		res := p.expectResponse(403, 2*time.Second)
		answers = append(answers, res.StartLine())
	}
	if answers[0] != answers[1] {
		t.Errorf("known and unknown numbers answered differently: %q vs %q", answers[0], answers[1])
	}
}

func replaceUser(msg, user string) string {
	return string(bytes.ReplaceAll([]byte(msg), []byte("sip:1000@"), []byte("sip:"+user+"@")))
}

// With unknown_source: silent, a stranger's INVITE and OPTIONS get no answer at all.
func TestTrunkSilentToStrangers(t *testing.T) {
	t.Parallel()
	s := testServer(t, answerAndWait(newRecord()), func(c *Config) {
		c.Inbound = []InboundTrunk{{Name: "carrier", Allow: carrierOnly, Silent: true}}
	})
	p := dialPeer(t, "udp", s.Addr("udp"))
	p.send(p.invite(s.Addr("udp"), "silent-1", "s1", pcmuOffer))
	lp := p.local()
	p.send(fmt.Sprintf("OPTIONS sip:%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bKopt1;rport\nMax-Forwards: 70\n"+
		"From: <sip:scan@%s>;tag=o1\nTo: <sip:%s>\nCall-ID: silent-2\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n",
		s.Addr("udp"), lp, lp.Addr(), s.Addr("udp")))
	if m := p.read(1500 * time.Millisecond); m != nil {
		t.Fatalf("a stranger got an answer: %s", m.String())
	}
}

// sipp's [authentication] answers our 401 and the call goes through as the auth trunk.
func TestTrunkDigestAuthSipp(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), func(c *Config) {
		c.Inbound = []InboundTrunk{
			{Name: "carrier", Allow: carrierOnly},
			{Name: "pbx", User: "pbx1", Password: "s3cret"},
		}
	})
	if out, err := sippAt(t, "127.0.0.1", s.Addr("udp"), "-sf", scenario(t, "uac_auth.xml"), "-s", "1000",
		"-au", "pbx1", "-ap", "s3cret"); err != nil {
		t.Fatalf("sipp with digest auth: %v\n%s", err, tail(out, 2000))
	}
	c := r.waitEnded(t)
	<-r.started
	r.check(t)
	if c.Trunk() != "pbx" {
		t.Errorf("Trunk() = %q, want pbx", c.Trunk())
	}
	// The wrong password is refused, and nothing reaches the handler.
	if _, err := sippAt(t, "127.0.0.1", s.Addr("udp"), "-sf", scenario(t, "uac_auth.xml"), "-s", "1000",
		"-au", "pbx1", "-ap", "wrong", "-timeout", "5s"); err == nil {
		t.Error("sipp with a wrong password got through")
	}
	select {
	case c := <-r.started:
		t.Errorf("a call with a wrong password reached the handler: %s", c.CallID())
	default:
	}
}

// An expired nonce with the right password gets a fresh challenge marked stale=true.
func TestNonceStale(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	n := newNonces(time.Minute)
	n.now = func() time.Time { return now }
	users := map[string]*InboundTrunk{"u": {Name: "t", User: "u", Password: "pw"}}
	nonce := n.issue()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "1000", Host: "127.0.0.1"})
	answer := func(password string) {
		cred, err := digest.Digest(&digest.Challenge{Realm: "switchboard", Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}},
			digest.Options{Method: "INVITE", URI: req.Recipient.Addr(), Username: "u", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		req.RemoveHeader("Authorization")
		req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
	}
	answer("pw")
	if res, tr := n.verifyDigest(req, "switchboard", users); res != authOK || tr.Name != "t" {
		t.Fatalf("fresh nonce: %v %v, want authOK", res, tr)
	}
	answer("nope")
	if res, _ := n.verifyDigest(req, "switchboard", users); res != authFailed {
		t.Fatalf("wrong password: %v, want authFailed", res)
	}
	now = now.Add(2 * time.Minute)
	answer("pw")
	if res, _ := n.verifyDigest(req, "switchboard", users); res != authStale {
		t.Fatalf("old nonce: %v, want authStale", res)
	}
	if h := n.challenge("switchboard", true).Value(); !bytes.Contains([]byte(h), []byte("stale=true")) {
		t.Errorf("stale challenge %q lacks stale=true", h)
	}
	last := "00" // the MAC's last byte changed: 1 nonce in 256 already ends in 00
	if strings.HasSuffix(nonce, last) {
		last = "01"
	}
	forged := nonce[:len(nonce)-2] + last
	if v, _ := n.check(forged); v {
		t.Error("a forged nonce passed")
	}
}

// The toll-fraud guard: only configured destinations, and at most MaxCalls at once.
func TestOutboundGuard(t *testing.T) {
	t.Parallel()
	s := testServer(t, answerAndWait(newRecord()), func(c *Config) {
		c.Outbound = []OutboundTrunk{{Name: "out", Host: "127.0.0.1", Port: 9, MaxCalls: 1,
			AllowedDestinations: []string{"+4420*", "~\\+1555\\d{7}"}}}
	})
	for _, to := range []string{"+900123", "+44201", "+15551234", "+441", ""} {
		tc, err := s.ReserveOutbound("out", to)
		if to == "+44201" && err == nil {
			tc.Release()
		} else if !errors.Is(err, ErrDestinationNotAllowed) {
			t.Errorf("%q: err = %v, want ErrDestinationNotAllowed", to, err)
		}
	}
	a, err := s.ReserveOutbound("out", "+15551234567")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReserveOutbound("out", "+442012345"); !errors.Is(err, ErrTrunkBusy) {
		t.Errorf("second call: err = %v, want ErrTrunkBusy", err)
	}
	a.Release()
	a.Release() // idempotent
	b, err := s.ReserveOutbound("out", "+442012345")
	if err != nil {
		t.Errorf("after release: %v", err)
	} else {
		b.Release()
	}
	if _, err := s.ReserveOutbound("nope", "+44201"); !errors.Is(err, ErrUnknownTrunk) {
		t.Errorf("unknown trunk: %v", err)
	}
}

// An inbound trunk at max_calls answers the next INVITE 503.
func TestInboundTrunkCap(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), func(c *Config) {
		c.Inbound = []InboundTrunk{{Name: "lo", Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, MaxCalls: 1}}
	})
	p := dialPeer(t, "udp", s.Addr("udp"))
	p.send(p.invite(s.Addr("udp"), "cap-1", "c1", pcmuOffer))
	ok := p.expectResponse(200, 3*time.Second)
	p.send(p.ack(s.Addr("udp"), "cap-1", toTag(ok), 1))
	q := dialPeer(t, "udp", s.Addr("udp"))
	q.send(q.invite(s.Addr("udp"), "cap-2", "c2", pcmuOffer))
	res := q.expectResponse(503, 3*time.Second)
	if res.StatusCode != 503 {
		t.Fatalf("second call: %d", res.StatusCode)
	}
}

// dnsServer answers SRV and A questions from a table, on 127.0.0.1 (RFC 1035 by hand).
type dnsServer struct {
	pc  net.PacketConn
	srv map[string][]net.SRV // name → records
	a   map[string]netip.Addr
}

func startDNS(t *testing.T, srv map[string][]net.SRV, a map[string]netip.Addr) *net.Resolver {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{pc: pc, srv: srv, a: a}
	t.Cleanup(func() { pc.Close() })
	go d.serve()
	addr := pc.LocalAddr().String()
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var dl net.Dialer
		return dl.DialContext(ctx, "udp", addr)
	}}
}

func (d *dnsServer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := d.pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := d.answer(buf[:n]); out != nil {
			d.pc.WriteTo(out, from)
		}
	}
}

func (d *dnsServer) answer(q []byte) []byte {
	if len(q) < 12 {
		return nil
	}
	name, off := readName(q, 12)
	if off+4 > len(q) {
		return nil
	}
	qtype := int(q[off])<<8 | int(q[off+1])
	question := q[12 : off+4]
	var answers [][]byte
	switch qtype {
	case 33: // SRV
		for _, s := range d.srv[name] {
			rd := []byte{byte(s.Priority >> 8), byte(s.Priority), byte(s.Weight >> 8), byte(s.Weight), byte(s.Port >> 8), byte(s.Port)}
			rd = append(rd, encodeName(s.Target)...)
			answers = append(answers, rr(33, rd))
		}
	case 1: // A
		if ip, ok := d.a[name]; ok {
			b := ip.As4()
			answers = append(answers, rr(1, b[:]))
		}
	}
	rcode := byte(0)
	if len(answers) == 0 {
		if _, ok := d.a[name]; !ok && len(d.srv[name]) == 0 {
			rcode = 3 // NXDOMAIN
		}
	}
	out := []byte{q[0], q[1], 0x84, 0x80 | rcode, 0, 1, 0, byte(len(answers)), 0, 0, 0, 0}
	out = append(out, question...)
	for _, a := range answers {
		out = append(out, a...)
	}
	return out
}

// rr is an answer record pointing at the question's name (offset 12).
func rr(typ int, rdata []byte) []byte {
	b := []byte{0xc0, 12, 0, byte(typ), 0, 1, 0, 0, 0, 60, byte(len(rdata) >> 8), byte(len(rdata))}
	return append(b, rdata...)
}

func readName(b []byte, off int) (string, int) {
	var name []byte
	for off < len(b) && b[off] != 0 {
		l := int(b[off])
		if off+1+l > len(b) {
			return "", len(b)
		}
		name = append(name, b[off+1:off+1+l]...)
		name = append(name, '.')
		off += 1 + l
	}
	return string(bytes.ToLower(name)), off + 1
}

func encodeName(n string) []byte {
	var out []byte
	for _, l := range bytes.Split([]byte(n), []byte(".")) {
		if len(l) == 0 {
			continue
		}
		out = append(out, byte(len(l)))
		out = append(out, l...)
	}
	return append(out, 0)
}

// SRV lists a dead target first and a live one second: the call fails over and is answered.
func TestSRVFailover(t *testing.T) {
	t.Parallel()
	dead, err := net.ListenPacket("udp", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	r := newRecord()
	live := testServer(t, answerAndWait(r))
	livePort := netip.MustParseAddrPort(live.Addr("udp")).Port()
	deadPort := dead.LocalAddr().(*net.UDPAddr).Port
	res := startDNS(t, map[string][]net.SRV{
		"_sip._udp.carrier.test.": {
			{Target: "b.carrier.test.", Port: uint16(livePort), Priority: 20, Weight: 1},
			{Target: "a.carrier.test.", Port: uint16(deadPort), Priority: 10, Weight: 1},
		},
	}, map[string]netip.Addr{
		"a.carrier.test.": netip.MustParseAddr("127.0.0.1"),
		"b.carrier.test.": netip.MustParseAddr("127.0.0.1"),
	})

	got, err := resolveTargets(context.Background(), res, "carrier.test", 0, "udp")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Port() != uint16(deadPort) || got[1].Port() != uint16(livePort) {
		t.Fatalf("targets = %v, want priority 10 (:%d) then 20 (:%d)", got, deadPort, livePort)
	}
	if a, err := resolveTargets(context.Background(), res, "a.carrier.test", 5080, "udp"); err != nil || len(a) != 1 || a[0].String() != "127.0.0.1:5080" {
		t.Errorf("explicit port: %v %v, want A record on 5080", a, err)
	}

	s := testServer(t, answerAndWait(newRecord()), func(c *Config) {
		c.Resolver = res
		c.Outbound = []OutboundTrunk{{Name: "srv", Host: "carrier.test", FailoverTimeout: 400 * time.Millisecond,
			AllowedDestinations: []string{"1000"}}}
	})
	tc, err := s.ReserveOutbound("srv", "1000")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	call, err := tc.Dial(ctx, TrunkDialOptions{From: "gw", LocalRTP: netip.MustParseAddrPort("127.0.0.1:30100")})
	if err != nil {
		t.Fatalf("dial through SRV: %v", err)
	}
	took := time.Since(start)
	in := <-r.started
	if in.To() != "1000" || in.From() != "gw" {
		t.Errorf("live target saw to=%q from=%q", in.To(), in.From())
	}
	if took < 400*time.Millisecond {
		t.Errorf("answered after %v: the dead target was not tried first", took)
	}
	t.Logf("failed over and answered after %v", took.Round(time.Millisecond))
	if err := call.Hangup(); err != nil {
		t.Errorf("hangup: %v", err)
	}
	r.waitEnded(t)
}

// REGISTER at a sipp registrar: challenged, answered, granted 2 s, and refreshed before
// those run out (the scenario times out otherwise).
func TestRegisterRefreshSipp(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = sippAt(t, "127.0.0.1", "", "-sf", scenario(t, "register_uas.xml"), "-p", fmt.Sprint(port), "-timeout", "15s")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond) // sipp binds its port
	testServer(t, answerAndWait(newRecord()), func(c *Config) {
		c.Outbound = []OutboundTrunk{{Name: "reg", Host: "127.0.0.1", Port: port, Register: 2 * time.Second,
			Auth: Credentials{User: "reg", Password: "regsecret"}}}
	})
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sipp registrar: %v\n%s", err, tail(out, 2000))
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sipp registrar did not finish")
	}
}

// OPTIONS pings mark a trunk that answers up and one that stays silent down.
func TestOptionsPingUpDown(t *testing.T) {
	t.Parallel()
	peer := testServer(t, answerAndWait(newRecord()))
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	states := make(chan string, 8)
	s := testServer(t, answerAndWait(newRecord()), func(c *Config) {
		pp := netip.MustParseAddrPort(peer.Addr("udp")).Port()
		c.Outbound = []OutboundTrunk{
			{Name: "alive", Host: "127.0.0.1", Port: int(pp), OptionsPing: 300 * time.Millisecond},
			{Name: "dead", Host: "127.0.0.1", Port: silent.LocalAddr().(*net.UDPAddr).Port, OptionsPing: 300 * time.Millisecond,
				AllowedDestinations: []string{"x"}},
		}
		c.OnTrunkState = func(trunk string, up bool) { states <- fmt.Sprintf("%s=%v", trunk, up) }
	})
	seen := map[string]bool{}
	deadline := time.After(5 * time.Second)
	for len(seen) < 2 {
		select {
		case st := <-states:
			seen[st] = true
		case <-deadline:
			t.Fatalf("trunk states seen: %v", seen)
		}
	}
	if !seen["alive=true"] || !seen["dead=false"] {
		t.Errorf("states = %v, want alive=true and dead=false", seen)
	}
	if up, known := s.TrunkUp("alive"); !up || !known {
		t.Errorf("TrunkUp(alive) = %v %v", up, known)
	}
	if _, err := s.ReserveOutbound("dead", "x"); !errors.Is(err, ErrTrunkDown) {
		t.Errorf("dead trunk: %v", err)
	}
}

// A carrier that answers our INVITE with 407, then 180, 183 with SDP and 200: the
// challenge is answered, early media reported, the call answered.
func TestDialTrunk407Sipp(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	rtp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rtp.Close()
	rtpPort := rtp.LocalAddr().(*net.UDPAddr).Port
	done := make(chan error, 1)
	var out string
	go func() {
		var err error
		out, err = sippAt(t, "127.0.0.1", "", "-sf", scenario(t, "uas_407.xml"), "-p", fmt.Sprint(port),
			"-key", "rtp_port", fmt.Sprint(rtpPort), "-timeout", "15s")
		done <- err
	}()
	time.Sleep(300 * time.Millisecond)
	s := testServer(t, answerAndWait(newRecord()), func(c *Config) {
		c.Outbound = []OutboundTrunk{{Name: "carrier", Host: "127.0.0.1", Port: port,
			Auth: Credentials{User: "out", Password: "outsecret"}, CallerID: "+15550100",
			AllowedDestinations: []string{"+1555*"}}}
	})
	tc, err := s.ReserveOutbound("carrier", "+15550199")
	if err != nil {
		t.Fatal(err)
	}
	var progress []string
	var early *Media
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call, err := tc.Dial(ctx, TrunkDialOptions{From: "ignored", LocalRTP: netip.MustParseAddrPort("127.0.0.1:30200"),
		OnProgress: func(status int, m *Media) {
			progress = append(progress, fmt.Sprint(status))
			if m != nil {
				early = m
			}
		}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if fmt.Sprint(progress) != "[180 183]" {
		t.Errorf("progress = %v, want [180 183]", progress)
	}
	if early == nil || early.Remote.Port() != uint16(rtpPort) {
		t.Errorf("early media = %+v, want remote port %d", early, rtpPort)
	}
	if m := call.Media(); m.Codec.Name != "PCMU" || m.Remote.Port() != uint16(rtpPort) {
		t.Errorf("media = %+v", m)
	}
	if err := call.Hangup(); err != nil {
		t.Errorf("hangup: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sipp carrier: %v\n%s", err, tail(out, 2000))
		}
	case <-time.After(15 * time.Second):
		t.Fatal("sipp carrier did not finish")
	}
}

// calls_per_second: a burst past the rate is refused until time refills the bucket.
func TestLimiterRate(t *testing.T) {
	l := newLimiter(0, 2)
	now := time.Unix(0, 0)
	got := 0
	for range 5 {
		if l.acquire(now) {
			got++
		}
	}
	if got != 2 {
		t.Fatalf("burst of 5 at 2/s admitted %d, want 2", got)
	}
	if l.acquire(now.Add(100 * time.Millisecond)) {
		t.Error("admitted after 100 ms at 2/s")
	}
	if !l.acquire(now.Add(600 * time.Millisecond)) {
		t.Error("refused after 600 ms at 2/s")
	}
	c := newLimiter(2, 0)
	if !c.acquire(now) || !c.acquire(now) || c.acquire(now) {
		t.Error("max_calls 2 did not stop the third")
	}
	c.release()
	if !c.acquire(now) {
		t.Error("released slot not reusable")
	}
}
