package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// sumMetric adds the samples of a series whose labels include every one given
// (`result="answered"`), so a test need not spell out labels it does not care about.
func sumMetric(m map[string]float64, name string, labels ...string) float64 {
	var sum float64
	for k, v := range m {
		series, ls, _ := strings.Cut(k, "{")
		if series != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(","+strings.TrimSuffix(ls, "}")+",", ","+l+",") {
				ok = false
			}
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// rawSIP is a bare UDP SIP client for requests sipp has no scenario for.
type rawSIP struct {
	t    testing.TB
	conn *net.UDPConn
	dst  *net.UDPAddr
}

func newRawSIP(t testing.TB, local, dst string) *rawSIP {
	t.Helper()
	la, err := net.ResolveUDPAddr("udp", local)
	must(t, err)
	ra, err := net.ResolveUDPAddr("udp", dst)
	must(t, err)
	c, err := net.ListenUDP("udp", la)
	must(t, err)
	t.Cleanup(func() { c.Close() })
	return &rawSIP{t: t, conn: c, dst: ra}
}

// request builds a request; extra header lines end in \r\n.
func (r *rawSIP) request(method, user, callID, branch, extra, body string) []byte {
	la := r.conn.LocalAddr().String()
	ct := ""
	if body != "" {
		ct = "Content-Type: application/sdp\r\n"
	}
	return []byte(fmt.Sprintf("%s sip:%s@%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:tester@%s>;tag=t%s\r\n"+
		"To: <sip:%s@%s>\r\n"+
		"Call-ID: %s\r\n"+
		"CSeq: 1 %s\r\n"+
		"Contact: <sip:tester@%s>\r\n%s%s"+
		"Content-Length: %d\r\n\r\n%s",
		method, user, r.dst, la, branch, la, branch, user, r.dst, callID, method, la, extra, ct, len(body), body))
}

func testSDP(ip string, port int) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n", ip, ip, port)
}

// final sends a request and returns its final status (0: none within the timeout);
// a final answer to an INVITE is acknowledged as RFC 3261 17.1.1.3 says.
func (r *rawSIP) final(method, user, extra, body string, timeout time.Duration) int {
	r.t.Helper()
	branch := fmt.Sprintf("%x", rand.Uint64())
	callID := branch + "@test"
	_, err := r.conn.WriteToUDP(r.request(method, user, callID, branch, extra, body), r.dst)
	must(r.t, err)
	buf := make([]byte, 4096)
	deadline := time.Now().Add(timeout)
	for {
		r.conn.SetReadDeadline(deadline)
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			return 0
		}
		msg := string(buf[:n])
		var code int
		if _, err := fmt.Sscanf(msg, "SIP/2.0 %d", &code); err != nil || code < 200 || !strings.Contains(msg, callID) {
			continue
		}
		if method == "INVITE" {
			to := headerLine(msg, "To")
			ack := strings.Replace(string(r.request("ACK", user, callID, branch, "", "")), "To: <sip:"+user+"@"+r.dst.String()+">", "To: "+to, 1)
			r.conn.WriteToUDP([]byte(ack), r.dst)
		}
		return code
	}
}

func headerLine(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

const metricsDialplan = `routes:
  - name: echo
    match: { to: echo }
    target: { type: echo }
  - name: busy
    match: { to: busy }
    target: { type: reject, status: 486, reason: Busy Here }
`

// After a sipp run (50 calls of its uac scenario, 2 of uac_pcap with RTP) and a few
// refused, unrouted, invalid and scanner requests, /metrics counts each exactly.
func TestMetricsAfterSippRun(t *testing.T) {
	g := startGateway(t, gwOptions{dialplan: metricsDialplan, rtpPorts: 120})
	dir := sippDir(t)

	out, err := runTool(t, 60*time.Second, dir, "sipp", "-sn", "uac", g.sipAddr(), "-s", "echo",
		"-m", "50", "-r", "25", "-l", "50", "-d", "300", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)),
		"-nostdin", "-timeout", "50s")
	if err != nil {
		t.Fatalf("sipp uac: %v\n%s", err, tail(out))
	}
	out, err = runTool(t, 60*time.Second, dir, "sipp", "-sn", "uac_pcap", g.sipAddr(), "-s", "echo",
		"-m", "2", "-l", "2", "-r", "2", "-i", "127.0.0.1", "-p", fmt.Sprint(freePort(t)),
		"-mp", fmt.Sprint(freePort(t)), "-nostdin", "-timeout", "50s")
	if err != nil {
		t.Fatalf("sipp uac_pcap: %v\n%s", err, tail(out))
	}

	c := newRawSIP(t, "127.0.0.1:0", g.sipAddr())
	sdp := testSDP("127.0.0.1", 40000)
	for range 3 {
		if code := c.final("INVITE", "busy", "", sdp, 5*time.Second); code != 486 {
			t.Fatalf("INVITE to busy: %d, want 486", code)
		}
	}
	for range 2 {
		if code := c.final("INVITE", "nobody", "", sdp, 5*time.Second); code != 404 {
			t.Fatalf("INVITE to an unrouted number: %d, want 404", code)
		}
	}
	if code := c.final("OPTIONS", "x", "Require: frobnication\r\n", "", 5*time.Second); code != 420 {
		t.Fatalf("OPTIONS with an unknown Require: %d, want 420", code)
	}
	if code := c.final("OPTIONS", "x", "User-Agent: friendly-scanner\r\n", "", 500*time.Millisecond); code != 0 {
		t.Fatalf("scanner OPTIONS answered %d; drop_scanners should drop it", code)
	}
	waitFor(t, 10*time.Second, "every call to end", func() bool { return g.metrics()["switchboard_calls_active"] == 0 })

	m := g.metrics()
	want := map[string]float64{
		`switchboard_calls_total{result="answered",route="echo",trunk=""}`:             52,
		`switchboard_calls_total{result="rejected",route="busy",trunk=""}`:             3,
		`switchboard_calls_total{result="no_route",route="",trunk=""}`:                 2,
		`switchboard_route_calls_active{route="echo",trunk=""}`:                        0,
		`switchboard_sip_requests_total{direction="in",method="INVITE"}`:               57,
		`switchboard_sip_requests_total{direction="in",method="ACK"}`:                  57,
		`switchboard_sip_requests_total{direction="in",method="BYE"}`:                  52,
		`switchboard_sip_requests_total{direction="in",method="OPTIONS"}`:              1,
		`switchboard_sip_responses_total{code="100",direction="out",method="INVITE"}`:  57,
		`switchboard_sip_responses_total{code="180",direction="out",method="INVITE"}`:  52,
		`switchboard_sip_responses_total{code="200",direction="out",method="INVITE"}`:  52,
		`switchboard_sip_responses_total{code="486",direction="out",method="INVITE"}`:  3,
		`switchboard_sip_responses_total{code="404",direction="out",method="INVITE"}`:  2,
		`switchboard_sip_responses_total{code="200",direction="out",method="BYE"}`:     52,
		`switchboard_sip_responses_total{code="420",direction="out",method="OPTIONS"}`: 1,
		`switchboard_sip_rejected_total{code="420",reason="invalid"}`:                  1,
		`switchboard_sip_dropped_total{reason="scanner"}`:                              1,
		`switchboard_sip_dropped_total{reason="rate"}`:                                 0,
		`switchboard_call_stage_seconds_count{stage="invite_to_route"}`:                55,
		`switchboard_call_stage_seconds_count{stage="route_to_answer"}`:                52,
		`switchboard_call_stage_seconds_count{stage="invite_to_200"}`:                  52,
		`switchboard_call_stage_seconds_count{stage="agent_connect"}`:                  52,
		`switchboard_call_stage_seconds_count{stage="agent_first_audio"}`:              52, // echo plays from the first tick
		`switchboard_call_stage_seconds_count{stage="answer_to_first_rtp"}`:            2,  // only uac_pcap sends RTP
		`switchboard_call_mos_count`:                                                   2,
		`switchboard_call_duration_seconds_count`:                                      52,
		`switchboard_rtp_ports_in_use`:                                                 0,
	}
	for k, v := range want {
		got, ok := m[k]
		if !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	// sipp's g711a.pcap holds 246 RTP packets; the echo sends 50 a second back on every call.
	if in := m[`switchboard_rtp_packets_total{direction="in"}`]; in != 2*246 {
		t.Errorf("RTP packets in: %v, want the two pcaps' 492", in)
	}
	if o := m[`switchboard_rtp_packets_total{direction="out"}`]; o < 480 {
		t.Errorf("RTP packets out: %v, want at least 480", o)
	}
	t.Logf("RTP in %v out %v; stage sums: invite→route %.4fs, route→answer %.3fs, answer→RTP %.3fs",
		m[`switchboard_rtp_packets_total{direction="in"}`], m[`switchboard_rtp_packets_total{direction="out"}`],
		m[`switchboard_call_stage_seconds_sum{stage="invite_to_route"}`], m[`switchboard_call_stage_seconds_sum{stage="route_to_answer"}`],
		m[`switchboard_call_stage_seconds_sum{stage="answer_to_first_rtp"}`])
	for _, k := range []string{`switchboard_rtp_lost_packets_total{kind="lost"}`, `switchboard_rtp_concealed_seconds_total`,
		`switchboard_call_jitter_seconds_count`, `switchboard_call_loss_ratio_count`} {
		if _, ok := m[k]; !ok {
			t.Errorf("%s missing from /metrics", k)
		}
	}
	if got := sumMetric(m, "switchboard_calls_total", `result="answered"`); got != 52 {
		t.Errorf("answered calls summed over routes: %v", got)
	}
	if t.Failed() {
		for k, v := range m {
			if strings.HasPrefix(k, "switchboard_sip") || strings.HasPrefix(k, "switchboard_calls") {
				t.Logf("%s %v", k, v)
			}
		}
	}
}
