package sip

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

const optionsBase = "OPTIONS sip:1000@127.0.0.1 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-v1\r\n" +
	"Max-Forwards: 70\r\n" +
	"From: <sip:a@127.0.0.1>;tag=1\r\n" +
	"To: <sip:1000@127.0.0.1>\r\n" +
	"Call-ID: v1@127.0.0.1\r\n" +
	"CSeq: 1 OPTIONS\r\n"

func parseRequest(t testing.TB, raw string) *sip.Request {
	t.Helper()
	m, err := sip.NewParser().ParseSIP([]byte(raw))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, raw)
	}
	req, ok := m.(*sip.Request)
	if !ok {
		t.Fatalf("not a request: %s", raw)
	}
	return req
}

func TestValidateRequest(t *testing.T) {
	invite := strings.ReplaceAll(optionsBase, "OPTIONS", "INVITE")
	for _, tc := range []struct {
		name, raw string
		code      int
		header    string // a header the answer must carry, "Name: value"
	}{
		{"valid", optionsBase + "Content-Length: 0\r\n\r\n", 0, ""},
		{"version", strings.Replace(optionsBase, " SIP/2.0\r\n", " SIP/7.0\r\n", 1) + "\r\n", 505, ""},
		{"require", optionsBase + "Require: foo, 100rel\r\n\r\n", 420, "Unsupported: foo, 100rel"},
		{"require on ACK is ignored", strings.ReplaceAll(optionsBase, "OPTIONS", "ACK") + "Require: foo\r\n\r\n", 0, ""},
		{"no From", strings.Replace(optionsBase, "From: <sip:a@127.0.0.1>;tag=1\r\n", "", 1) + "\r\n", 400, ""},
		{"no To", strings.Replace(optionsBase, "To: <sip:1000@127.0.0.1>\r\n", "", 1) + "\r\n", 400, ""},
		{"no Call-ID", strings.Replace(optionsBase, "Call-ID: v1@127.0.0.1\r\n", "", 1) + "\r\n", 400, ""},
		{"no CSeq", strings.Replace(optionsBase, "CSeq: 1 OPTIONS\r\n", "", 1) + "\r\n", 400, ""},
		{"CSeq method", strings.Replace(optionsBase, "CSeq: 1 OPTIONS", "CSeq: 1 INVITE", 1) + "\r\n", 400, ""},
		{"two Call-IDs", optionsBase + "Call-ID: other\r\n\r\n", 400, ""},
		{"two Content-Lengths", optionsBase + "Content-Length: 0\r\nContent-Length: 0\r\n\r\n", 400, ""},
		{"Max-Forwards 300", strings.Replace(optionsBase, "Max-Forwards: 70", "Max-Forwards: 300", 1) + "\r\n", 400, ""},
		{"Max-Forwards 0 INVITE", strings.Replace(invite, "Max-Forwards: 70", "Max-Forwards: 0", 1) + "\r\n", 483, ""},
		{"Max-Forwards 0 OPTIONS", strings.Replace(optionsBase, "Max-Forwards: 70", "Max-Forwards: 0", 1) + "\r\n", 0, ""},
		{"no Max-Forwards", strings.Replace(optionsBase, "Max-Forwards: 70\r\n", "", 1) + "\r\n", 0, ""},
		{"URI scheme", strings.Replace(optionsBase, "sip:1000@127.0.0.1 SIP", "im:1000@127.0.0.1 SIP", 1) + "\r\n", 416, ""},
		{"tel URI", strings.Replace(optionsBase, "sip:1000@127.0.0.1 SIP", "tel:+15551234 SIP", 1) + "\r\n", 0, ""},
		{"URI headers", strings.Replace(optionsBase, "sip:1000@127.0.0.1 SIP", "sip:1000@127.0.0.1?Route=x SIP", 1) + "\r\n", 400, ""},
		{"Accept no SDP", invite + "Accept: text/plain\r\n\r\n", 406, "Accept: application/sdp"},
		{"Accept SDP", invite + "Accept: text/plain, application/sdp\r\n\r\n", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := validateRequest(parseRequest(t, tc.raw))
			switch {
			case tc.code == 0 && r != nil:
				t.Fatalf("refused with %d %q", r.code, r.warning)
			case tc.code != 0 && r == nil:
				t.Fatalf("accepted, want %d", tc.code)
			case tc.code != 0 && r.code != tc.code:
				t.Fatalf("status %d (%s), want %d", r.code, r.warning, tc.code)
			}
			if tc.header != "" {
				name, value, _ := strings.Cut(tc.header, ": ")
				found := false
				for _, h := range r.hdrs {
					found = found || h.Name() == name && h.Value() == value
				}
				if !found {
					t.Errorf("answer lacks %q: %v", tc.header, r.hdrs)
				}
			}
		})
	}
	if validateRequest(nil) == nil || validateRequest(&sip.Request{}) == nil {
		t.Error("empty requests accepted")
	}
}

func TestWithRport(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1\r\n", "Via: SIP/2.0/UDP 192.0.2.7:5060;branch=z9hG4bK1;rport\r\n"},
		{"v: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2\r\n", "v: SIP/2.0/UDP a;branch=z9hG4bK1;rport, SIP/2.0/UDP b;branch=z9hG4bK2\r\n"},
		{"Via: SIP/2.0/UDP a;rport;branch=z9hG4bK1\r\n", "Via: SIP/2.0/UDP a;rport;branch=z9hG4bK1\r\n"},
		{"Via: SIP/2.0/UDP a;rport=5;branch=z9hG4bK1\r\n", "Via: SIP/2.0/UDP a;rport=5;branch=z9hG4bK1\r\n"},
		{"Via  : SIP/2.0/UDP\r\n  a;branch=z9hG4bK1  \r\nVia: SIP/2.0/UDP b\r\n", "Via  : SIP/2.0/UDP\r\n  a;branch=z9hG4bK1;rport  \r\nVia: SIP/2.0/UDP b\r\n"},
	} {
		msg := "OPTIONS sip:a@b SIP/2.0\r\n" + tc.in + "CSeq: 1 OPTIONS\r\n\r\n"
		want := "OPTIONS sip:a@b SIP/2.0\r\n" + tc.want + "CSeq: 1 OPTIONS\r\n\r\n"
		if got := string(withRport([]byte(msg))); got != want {
			t.Errorf("withRport(%q) =\n%q\nwant\n%q", tc.in, got, want)
		}
	}
	res := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n\r\n"
	if got := string(withRport([]byte(res))); got != res {
		t.Errorf("response changed: %q", got)
	}
}

func TestScannerAndRateGuard(t *testing.T) {
	for ua, want := range map[string]bool{"friendly-scanner": true, "sipvicious 0.3.4": true, "VaxSIPUserAgent/3.1": true, "sipcli/v1.8": true, "Zoiper rv2.10": false, "switchboard": false} {
		if got := isScanner([]byte(optionsBase + "User-Agent: " + ua + "\r\n\r\n")); got != want {
			t.Errorf("isScanner(%q) = %v", ua, got)
		}
	}
	for msg, want := range map[string]bool{
		optionsBase + "user-agent : Friendly-Scanner\r\n\r\n":                true,
		optionsBase + "User-Agent: Zoiper\r\nUser-Agent: sipvicious\r\n\r\n": true,
		optionsBase + "User-Agent: x,\r\n friendly-scanner\r\nTo: y\r\n\r\n": true, // folded
		optionsBase + "User-Agent: friendly-\r\n scanner\r\n\r\n":            false,
		optionsBase + "Subject: friendly-scanner\r\n\r\n":                    false,
		optionsBase + "\r\nUser-Agent: friendly-scanner\r\n":                 false, // in the body
	} {
		if got := isScanner([]byte(msg)); got != want {
			t.Errorf("isScanner(%q) = %v, want %v", msg, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { isScanner([]byte(optionsBase + "User-Agent: Zoiper rv2.10\r\n\r\n")) }); n > 1 {
		t.Errorf("isScanner allocates %v times a message; every datagram passes there", n)
	}
	s := &Server{cfg: Config{RatePerSource: 10, RateBurst: 5}}
	g := newGuard(s)
	a := parseAddr("192.0.2.1")
	now := parseTime()
	allowed := 0
	for range 20 {
		if g.allow(a, now) {
			allowed++
		}
	}
	if allowed != 5 {
		t.Errorf("burst: %d of 20 allowed at once, want 5", allowed)
	}
	if !g.allow(a, now.Add(110*time.Millisecond)) || g.allow(a, now.Add(111*time.Millisecond)) {
		t.Error("after 110 ms at 10/s one more message should pass, and only one")
	}
	if !g.allow(parseAddr("192.0.2.2"), now) {
		t.Error("another source is limited by the first one's flood")
	}
}

func TestRawAnswer(t *testing.T) {
	bad := "OPTIONS sip:user@example.org SIP/2.0\r\nVia: SIP/2.0/UDP h:5060;branch=z9hG4bK1\r\n" +
		"From: \"B\" <sip:a@example.com>;tag=1\r\nTo: \"W\" < sip:t@example.org >\r\nCall-ID: x\r\nCSeq: 3 OPTIONS\r\nl: 0\r\n\r\n"
	res := rawAnswer([]byte(bad), errSDPMalformed, "sb")
	if !bytes.HasPrefix(res, []byte("SIP/2.0 400 Bad Request\r\n")) || !bytes.Contains(res, []byte("Call-ID: x\r\n")) ||
		!bytes.Contains(res, []byte("To: \"W\" < sip:t@example.org >;tag=")) || !bytes.HasSuffix(res, []byte("Content-Length: 0\r\n\r\n")) {
		t.Errorf("400 to an unparsable request:\n%s", res)
	}
	for _, raw := range []string{
		"SIP/2.0 200 OK\r\nVia: x\r\n\r\n",            // a response
		"INVITE sip:a@b\r\nVia: x\r\n\r\n",            // no version
		strings.Replace(bad, "Call-ID: x\r\n", "", 1), // nothing to address the answer with
		strings.Replace(bad, "OPTIONS", "ACK", -1),    // ACKs are never answered
	} {
		if res := rawAnswer([]byte(raw), errSDPMalformed, "sb"); res != nil {
			t.Errorf("answered %q with\n%s", raw, res)
		}
	}
	novel := strings.Replace(bad, "sip:user@example.org SIP", "soap.beep://192.0.2.103:3002 SIP", 1)
	if res := rawAnswer([]byte(novel), errSDPMalformed, "sb"); !bytes.HasPrefix(res, []byte("SIP/2.0 416 ")) {
		t.Errorf("unknown scheme answered:\n%s", res)
	}
}

// Any bytes sipgo parses as a request: validation never panics, and neither do the raw
// checks the guard runs on every datagram before parsing.
func FuzzValidate(f *testing.F) {
	f.Add([]byte(optionsBase + "Content-Length: 0\r\n\r\n"))
	f.Add([]byte(strings.ReplaceAll(optionsBase, "OPTIONS", "INVITE") + "Max-Forwards: 0\r\nRequire: x\r\nAccept: a/b\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:a@b SIP/7.0\r\nv: SIP/2.0/UDP a,\r\n b\r\nUser-Agent: friendly-scanner\r\n\r\n"))
	parser := sip.NewParser()
	f.Fuzz(func(t *testing.T, b []byte) {
		isScanner(b)
		out := withRport(b)
		if len(out) != len(b) && len(out) != len(b)+len(";rport") {
			t.Fatalf("withRport changed %d bytes to %d", len(b), len(out))
		}
		rawAnswer(b, errSDPMalformed, "sb")
		m, err := parser.ParseSIP(b)
		if err != nil {
			return
		}
		if req, ok := m.(*sip.Request); ok {
			if r := validateRequest(req); r != nil && (r.code < 400 || r.code > 599) {
				t.Fatalf("refusal with status %d", r.code)
			}
		}
	})
}

func parseAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func parseTime() time.Time { return time.Unix(1700000000, 0) }

// The guard on a running server: scanners get silence, a flood from one source is cut
// at its rate, and INVITEs beyond max_calls get 503 while the call in progress runs on.
func TestGuardOnServer(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	s := testServer(t, func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			return
		}
		select {
		case <-c.Context().Done():
		case <-release:
		}
	}, func(cfg *Config) {
		cfg.DropScanners = true
		cfg.MaxCalls = 1
		cfg.RatePerSource = 1000
		cfg.RateBurst = 1000
	})
	defer close(release)
	addr := s.Addr("udp")
	options := func(ua string) []byte {
		msg := hostileRequest("OPTIONS", "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-"+ua, addr)
		return []byte(strings.Replace(msg, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nUser-Agent: "+ua+"\r\n", 1))
	}
	if got := exchange(t, "udp", addr, options("friendly-scanner"), 0); len(got) != 0 {
		t.Errorf("scanner answered %v", got)
	}
	if got := exchange(t, "udp", addr, options("Zoiper"), 1); !slices.Equal(got, []int{200}) {
		t.Errorf("a phone's OPTIONS answered %v, want [200]", got)
	}

	// One call up (the peer answers our 200 with an ACK), then a second INVITE gets 503.
	p := dialPeer(t, "udp", addr)
	p.send(p.invite(addr, "guard-1", "g1", pcmuOffer))
	res := p.expectResponse(200, 3*time.Second)
	p.send(p.ack(addr, "guard-1", toTag(res), 1))
	second := []byte(strings.Replace(hostileRequest("INVITE", "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK-g2", addr), hostileAddr, "127.0.0.1", -1))
	if got := exchange(t, "udp", addr, second, 1); !slices.Equal(got, []int{503}) {
		t.Errorf("INVITE over max_calls answered %v, want [503]", got)
	}
}
