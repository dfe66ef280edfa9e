package sip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

var rtpAddr = netip.MustParseAddrPort("127.0.0.1:30000")

// answerAndWait is the handler of a well-behaved gateway: ring, answer, wait for the end.
func answerAndWait(r *callRecord) Handler {
	return r.handler(func(c *InboundCall) {
		if err := c.Ringing(); err != nil {
			r.errorf("Ringing: %v", err)
		}
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		<-c.Context().Done()
	})
}

func TestSippBasicCall(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r))
	if out, err := sipp(t, s.Addr("udp"), "-sn", "uac", "-s", "1000", "-d", "300"); err != nil {
		t.Fatalf("sipp uac failed: %v\n%s", err, tail(out, 3000))
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("EndCause = %q %q, want caller bye", by, cause)
	}
	if c.To() != "1000" || c.From() != "sipp" || c.Transport() != "udp" {
		t.Errorf("call identity: to=%q from=%q transport=%q", c.To(), c.From(), c.Transport())
	}
	if m := c.Media(); m.Codec.Name != "PCMU" || m.Codec.PayloadType != 0 || m.Direction != "sendrecv" {
		t.Errorf("media = %+v", m)
	}
}

func TestSippBasicCallTCP(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r))
	if out, err := sipp(t, s.Addr("tcp"), "-sn", "uac", "-s", "1000", "-d", "300", "-t", "t1"); err != nil {
		t.Fatalf("sipp uac over TCP failed: %v\n%s", err, tail(out, 3000))
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("EndCause = %q %q, want caller bye", by, cause)
	}
	if c.Transport() != "tcp" {
		t.Errorf("transport = %q", c.Transport())
	}
}

func TestSippCancelBeforeAnswer(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Ringing(); err != nil {
			r.errorf("Ringing: %v", err)
		}
		select {
		case <-c.Context().Done():
		case <-time.After(2 * time.Second): // sipp cancels right after the 180
			r.errorf("call context not cancelled by the CANCEL")
			<-c.Context().Done()
		}
		// The CANCEL already produced the 487: nothing we do now may send another final.
		if err := c.Answer(rtpAddr); !errors.Is(err, ErrCallEnded) {
			r.errorf("Answer after CANCEL = %v, want ErrCallEnded", err)
		}
		if err := c.Reject(486, ""); !errors.Is(err, ErrCallEnded) {
			r.errorf("Reject after CANCEL = %v, want ErrCallEnded", err)
		}
	}))
	if err := sippScenario(t, s.Addr("udp"), "cancel.xml", "-s", "1000"); err != nil {
		t.Fatalf("cancel scenario: %v", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "cancel" {
		t.Errorf("EndCause = %q %q, want caller cancel", by, cause)
	}
}

func TestSippByeFromGateway(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		if m := c.Media(); m.Codec.Name != "PCMU" || m.Codec.PayloadType != 0 {
			r.errorf("preference order ignored: %+v", m.Codec)
		}
		if err := c.Hangup("goodbye"); err != nil {
			r.errorf("Hangup: %v", err)
		}
	}))
	if err := sippScenario(t, s.Addr("udp"), "bye_from_us.xml", "-s", "1000"); err != nil {
		t.Fatalf("scenario: %v", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "gateway" || cause != "goodbye" {
		t.Errorf("EndCause = %q %q, want gateway goodbye", by, cause)
	}
}

func TestSippRecordRouteOnBye(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		if err := c.Hangup("done"); err != nil {
			r.errorf("Hangup: %v", err)
		}
	}))
	if err := sippScenario(t, s.Addr("udp"), "record_route.xml", "-s", "1000"); err != nil {
		t.Fatalf("record-route scenario: %v", err)
	}
	r.waitEnded(t)
	r.check(t)
}

func TestSippOptions(t *testing.T) {
	t.Parallel()
	s := testServer(t, func(*InboundCall) {})
	if err := sippScenario(t, s.Addr("udp"), "options.xml"); err != nil {
		t.Fatalf("options scenario: %v", err)
	}
}

func TestSippByeUnknownDialog(t *testing.T) {
	t.Parallel()
	s := testServer(t, func(*InboundCall) {})
	if err := sippScenario(t, s.Addr("udp"), "bye_unknown.xml", "-s", "1000"); err != nil {
		t.Fatalf("bye scenario: %v", err)
	}
}

func TestSippG729Only(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) { r.errorf("handler called for a G.729-only offer") }))
	if err := sippScenario(t, s.Addr("udp"), "g729_only.xml", "-s", "1000"); err != nil {
		t.Fatalf("g729 scenario: %v", err)
	}
	r.check(t)
}

// Over UDP the 200 OK is retransmitted at T1, 2T1, 4T1... until the ACK, then stops.
func TestAnswerRetransmittedUntilAck(t *testing.T) {
	t.Parallel()
	r := newRecord()
	answered := make(chan error, 1)
	s := testServer(t, r.handler(func(c *InboundCall) {
		answered <- c.Answer(rtpAddr)
		<-c.Context().Done()
	}), func(cfg *Config) { cfg.T1 = 100 * time.Millisecond })
	p := dialPeer(t, "udp", s.Addr("udp"))
	p.send(p.invite(s.Addr("udp"), "retrans-1", "rt1", pcmuOffer))
	p.expectResponse(100, 2*time.Second)
	first := p.expectResponse(200, 2*time.Second)
	start := time.Now()
	count := 1
	// Withhold the ACK for ~1 s: expect resends near 100, 300 and 700 ms.
	for time.Since(start) < time.Second {
		m := p.read(time.Second - time.Since(start))
		if res, ok := m.(*sip.Response); ok && res.StatusCode == 200 {
			count++
			if toTag(res) != toTag(first) {
				t.Errorf("retransmitted 200 changed To tag: %q vs %q", toTag(res), toTag(first))
			}
		}
	}
	if count < 3 || count > 5 {
		t.Errorf("got %d 200 OKs in 1 s with T1=100ms, want 4 (T1 doubling)", count)
	}
	select {
	case err := <-answered:
		t.Fatalf("Answer returned before the ACK: %v", err)
	default:
	}
	p.send(p.ack(s.Addr("udp"), "retrans-1", toTag(first), 1))
	select {
	case err := <-answered:
		if err != nil {
			t.Fatalf("Answer: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Answer did not return on ACK")
	}
	if m := p.read(900 * time.Millisecond); m != nil {
		t.Errorf("message after ACK: %v", m)
	}
}

// Without any ACK the gateway gives up after 64*T1 and ends the call with BYE.
func TestAnswerNoAckSendsBye(t *testing.T) {
	t.Parallel()
	r := newRecord()
	answered := make(chan error, 1)
	s := testServer(t, r.handler(func(c *InboundCall) {
		answered <- c.Answer(rtpAddr)
		<-c.Context().Done()
	}), func(cfg *Config) { cfg.T1 = 10 * time.Millisecond; cfg.T2 = 80 * time.Millisecond })
	p := dialPeer(t, "udp", s.Addr("udp"))
	p.send(p.invite(s.Addr("udp"), "noack-1", "na1", pcmuOffer))
	p.expectResponse(200, 2*time.Second)
	bye := p.expectRequest(sip.BYE, 3*time.Second)
	p.send(sip.NewResponseFromRequest(bye, 200, "OK", nil).String())
	if err := <-answered; !errors.Is(err, ErrAckTimeout) {
		t.Errorf("Answer = %v, want ErrAckTimeout", err)
	}
	c := r.waitEnded(t)
	if by, cause := c.EndCause(); by != "gateway" || cause != "ack-timeout" {
		t.Errorf("EndCause = %q %q", by, cause)
	}
}

// Over TCP our BYE goes back on the caller's own connection, not to its Contact.
func TestByeReusesTCPConnection(t *testing.T) {
	t.Parallel()
	r := newRecord()
	hangup := make(chan struct{})
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		<-hangup
		if err := c.Hangup("done"); err != nil {
			r.errorf("Hangup: %v", err)
		}
	}), func(cfg *Config) { cfg.AdvertiseIP = netip.MustParseAddr("203.0.113.9") })
	p := dialPeer(t, "tcp", s.Addr("tcp"))
	dead := freePort(t) // Contact names a port nobody listens on
	inv := p.invite(s.Addr("tcp"), "tcp-reuse-1", "tr1", pcmuOffer)
	inv = strings.Replace(inv, fmt.Sprintf("Contact: <sip:alice@%s;transport=tcp>", p.local()),
		fmt.Sprintf("Contact: <sip:alice@127.0.0.1:%d;transport=tcp>", dead), 1)
	p.send(inv)
	ok := p.expectResponse(200, 2*time.Second)
	_, port, _ := net.SplitHostPort(s.Addr("tcp"))
	if ct := ok.Contact(); ct == nil || !strings.Contains(ct.Value(), "203.0.113.9:"+port) || !strings.Contains(ct.Value(), "transport=tcp") {
		t.Errorf("200 Contact = %v, want AdvertiseIP, our port %s and transport=tcp", ct, port)
	}
	if body := string(ok.Body()); !strings.Contains(body, "c=IN IP4 203.0.113.9") || !strings.Contains(body, "IN IP4 203.0.113.9\r\ns=") {
		t.Errorf("SDP answer does not advertise 203.0.113.9:\n%s", body)
	}
	p.send(p.ack(s.Addr("tcp"), "tcp-reuse-1", toTag(ok), 1))
	close(hangup)
	bye := p.expectRequest(sip.BYE, 3*time.Second)
	if got := bye.Recipient.Port; got != dead {
		t.Errorf("BYE Request-URI port %d, want the Contact's %d", got, dead)
	}
	if ft, _ := bye.From().Params.Get("tag"); ft != toTag(ok) {
		t.Errorf("BYE From tag %q, want our To tag %q", ft, toTag(ok))
	}
	if tt, _ := bye.To().Params.Get("tag"); tt != "a1" {
		t.Errorf("BYE To tag %q, want caller's a1", tt)
	}
	if bye.CSeq().SeqNo == 1 && bye.CSeq().MethodName == sip.BYE {
		t.Log("BYE CSeq happens to be 1")
	}
	p.send(sip.NewResponseFromRequest(bye, 200, "OK", nil).String())
	c := r.waitEnded(t)
	r.check(t)
	if by, _ := c.EndCause(); by != "gateway" {
		t.Errorf("EndCause by %q", by)
	}
}

func TestRejectsAndMethods(t *testing.T) {
	t.Parallel()
	s := testServer(t, func(c *InboundCall) { _ = c.Reject(486, "") })
	p := dialPeer(t, "udp", s.Addr("udp"))
	lp := p.local()
	req := func(method, callID, extra string) string {
		return fmt.Sprintf("%s sip:1000@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\nMax-Forwards: 70\n"+
			"From: <sip:a@%s>;tag=x\nTo: <sip:1000@%s>%s\nCall-ID: %s\nCSeq: 1 %s\nContent-Length: 0\n\n",
			method, s.Addr("udp"), lp, callID, lp.Addr(), s.Addr("udp"), extra, callID, method)
	}
	cases := []struct {
		name   string
		msg    string
		status int
		header string
	}{
		{"SUBSCRIBE is 405", req("SUBSCRIBE", "m1", ""), 405, "Allow"},
		{"PUBLISH is 405", req("PUBLISH", "m2", ""), 405, "Allow"},
		{"MESSAGE is 405", req("MESSAGE", "m3", ""), 405, "Allow"},
		{"unknown method is 501", req("FROBNICATE", "m4", ""), 501, ""},
		{"INFO outside a dialog is 481", req("INFO", "m5", ";tag=none"), 481, ""},
		{"UPDATE outside a dialog is 481", req("UPDATE", "m6", ";tag=none"), 481, ""},
		{"re-INVITE outside a dialog is 481", strings.Replace(req("INVITE", "m7", ";tag=none"), "Content-Length: 0", "Contact: <sip:a@127.0.0.1>\nContent-Length: 0", 1), 481, ""},
		{"OPTIONS is 200", req("OPTIONS", "m8", ""), 200, "Accept"},
		{"CANCEL for nothing is 481", req("CANCEL", "m9", ""), 481, ""},
		{"INVITE without SDP is 488", strings.Replace(req("INVITE", "m10", ""), "Content-Length: 0", "Contact: <sip:a@127.0.0.1>\nContent-Length: 0", 1), 488, "Warning"},
		{"INVITE with broken SDP is 400", p.invite(s.Addr("udp"), "m11", "m11", "v=0\nthis is not sdp\n"), 400, "Warning"},
		{"INVITE with video only is 488", p.invite(s.Addr("udp"), "m12", "m12", "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=video 4000 RTP/AVP 96\n"), 488, "Warning"},
		{"INVITE rejected by handler", p.invite(s.Addr("udp"), "m13", "m13", pcmuOffer), 486, ""},
		{"INVITE without Contact is 400", strings.Replace(p.invite(s.Addr("udp"), "m14", "m14", pcmuOffer), "Contact:", "X-Contact:", 1), 400, ""},
	}
	for _, tc := range cases {
		p.send(tc.msg)
		res := p.expectResponse(tc.status, 3*time.Second)
		if tc.header != "" && res.GetHeader(tc.header) == nil {
			t.Errorf("%s: no %s header in %d", tc.name, tc.header, res.StatusCode)
		}
	}
}

func TestDrainingRefusesInvites(t *testing.T) {
	t.Parallel()
	s := testServer(t, func(c *InboundCall) { _ = c.Answer(rtpAddr); <-c.Context().Done() })
	s.SetDraining(true)
	_, err := Dial(context.Background(), DialOptions{Target: "sip:1000@" + s.Addr("udp"), LocalRTP: netip.MustParseAddrPort("127.0.0.1:30100"), Logger: testLogger(t)})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("Dial while draining = %v, want 503", err)
	}
	s.SetDraining(false)
	oc, err := Dial(context.Background(), DialOptions{Target: "sip:1000@" + s.Addr("udp"), LocalRTP: netip.MustParseAddrPort("127.0.0.1:30100"), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Dial after draining: %v", err)
	}
	_ = oc.Hangup()
}

func TestDialOwnServer(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), func(cfg *Config) { cfg.Codecs = []string{"PCMA", "PCMU"} })
	oc, err := Dial(context.Background(), DialOptions{
		Target:   "sip:1000@" + s.Addr("udp"),
		From:     "tester",
		LocalRTP: netip.MustParseAddrPort("127.0.0.1:30200"),
		Codecs:   []string{"PCMU", "PCMA"},
		Logger:   testLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	in := <-r.started
	if in.From() != "tester" || in.To() != "1000" {
		t.Errorf("inbound from=%q to=%q", in.From(), in.To())
	}
	if im := in.Media(); im.Remote != netip.MustParseAddrPort("127.0.0.1:30200") || im.DTMFPayloadType != 101 || im.Codec.Name != "PCMA" {
		t.Errorf("inbound media = %+v", im)
	}
	if m := oc.Media(); m.Remote != rtpAddr || m.Codec.Name != "PCMA" || m.Codec.PayloadType != 8 || m.DTMFPayloadType != 101 || m.Ptime != 20*time.Millisecond {
		t.Errorf("outbound media = %+v", m)
	}
	if oc.CallID() != in.CallID() {
		t.Errorf("call ids differ: %q %q", oc.CallID(), in.CallID())
	}
	if err := oc.Hangup(); err != nil {
		t.Fatalf("Hangup: %v", err)
	}
	c := r.waitEnded(t)
	r.check(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("inbound EndCause = %q %q", by, cause)
	}
	select {
	case <-oc.Context().Done():
	default:
		t.Error("outbound context not done after Hangup")
	}
}

func TestDialRemoteHangsUp(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			r := newRecord()
			s := testServer(t, r.handler(func(c *InboundCall) {
				if err := c.Answer(rtpAddr); err != nil {
					r.errorf("Answer: %v", err)
					return
				}
				if err := c.Hangup("bye now"); err != nil {
					r.errorf("Hangup: %v", err)
				}
			}))
			oc, err := Dial(context.Background(), DialOptions{
				Target:    "sip:1000@" + s.Addr(transport),
				Transport: transport,
				LocalRTP:  netip.MustParseAddrPort("127.0.0.1:30300"),
				Logger:    testLogger(t),
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-oc.Context().Done():
			case <-time.After(5 * time.Second):
				t.Fatal("outbound call not ended by the remote BYE")
			}
			if by, cause := oc.EndCause(); by != "callee" || cause != "bye" {
				t.Errorf("EndCause = %q %q", by, cause)
			}
			r.waitEnded(t)
			r.check(t)
		})
	}
}

func TestDialRejectedAndCancelled(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if c.To() == "busy" {
			_ = c.Reject(486, "Busy Here")
			return
		}
		_ = c.Ringing()
		<-c.Context().Done()
	}))
	_, err := Dial(context.Background(), DialOptions{Target: "sip:busy@" + s.Addr("udp"), LocalRTP: netip.MustParseAddrPort("127.0.0.1:30400"), Logger: testLogger(t)})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 486 {
		t.Fatalf("Dial busy = %v, want *StatusError 486", err)
	}
	<-r.ended

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-r.started // the first call's start
		<-r.started
		time.Sleep(100 * time.Millisecond)
		cancel()
	}()
	_, err = Dial(ctx, DialOptions{Target: "sip:ring@" + s.Addr("udp"), LocalRTP: netip.MustParseAddrPort("127.0.0.1:30400"), Logger: testLogger(t)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Dial = %v", err)
	}
	c := r.waitEnded(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "cancel" {
		t.Errorf("EndCause = %q %q, want caller cancel", by, cause)
	}
}

// Garbage on the SIP ports must not panic the server, and a call still works after it.
func TestGarbageThenCall(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r))
	rng := rand.New(rand.NewPCG(1, 2))
	valid := []byte(strings.ReplaceAll(dialPeer(t, "udp", s.Addr("udp")).invite(s.Addr("udp"), "garbage", "g1", pcmuOffer), "\n", "\r\n"))
	udp, err := net.Dial("udp", s.Addr("udp"))
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for i := range 300 {
		var b []byte
		switch i % 3 {
		case 0:
			b = make([]byte, 1+rng.IntN(1400))
			for j := range b {
				b[j] = byte(rng.UintN(256))
			}
		case 1:
			b = valid[:rng.IntN(len(valid))]
		case 2:
			b = append([]byte(nil), valid...)
			for range 5 {
				b[rng.IntN(len(b))] = byte(rng.UintN(256))
			}
		}
		_, _ = udp.Write(b)
	}
	for _, b := range [][]byte{[]byte("INVITE\r\n\r\n"), []byte("SIP/2.0 200\r\n\r\n"), valid[:len(valid)/2], []byte("\x00\x01\x02garbage\r\n\r\n")} {
		tcp, err := net.Dial("tcp", s.Addr("tcp"))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = tcp.Write(b)
		tcp.Close()
	}
	time.Sleep(200 * time.Millisecond)
	oc, err := Dial(context.Background(), DialOptions{Target: "sip:1000@" + s.Addr("udp"), LocalRTP: netip.MustParseAddrPort("127.0.0.1:30500"), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("call after garbage: %v", err)
	}
	_ = oc.Hangup()
	for {
		c := r.waitEnded(t)
		if c.From() == "switchboard" {
			break
		}
	}
}

// A re-INVITE putting the call on hold is answered with the mirrored direction; INFO gets
// 200; the caller's BYE ends the call. Hangup before answering sends 480.
func TestInDialogRequests(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if c.To() == "closed" {
			_ = c.Hangup("no route")
			return
		}
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
			return
		}
		<-c.Context().Done()
	}))
	addr := s.Addr("udp")
	p := dialPeer(t, "udp", addr)
	lp := p.local()
	p.send(p.invite(addr, "dlg-1", "d1", pcmuOffer))
	ok := p.expectResponse(200, 2*time.Second)
	tag := toTag(ok)
	p.send(p.ack(addr, "dlg-1", tag, 1))
	in := <-r.started

	inDialog := func(method string, cseq int, branch, body string) string {
		ct := ""
		if body != "" {
			ct = "Content-Type: application/sdp\n"
		}
		return fmt.Sprintf("%s sip:1000@%s SIP/2.0\nVia: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\nMax-Forwards: 70\n"+
			"From: <sip:alice@%s>;tag=a1\nTo: <sip:1000@%s>;tag=%s\nCall-ID: dlg-1\nCSeq: %d %s\nContact: <sip:alice@%s>\n%sContent-Length: %d\n\n%s",
			method, addr, lp, branch, lp.Addr(), addr, tag, cseq, method, lp, ct, len(strings.ReplaceAll(body, "\n", "\r\n")), body)
	}
	hold := strings.Replace(pcmuOffer, "a=fmtp:101 0-16\n", "a=fmtp:101 0-16\na=sendonly\n", 1)
	p.send(inDialog("INVITE", 2, "reinv", hold))
	res := p.expectResponse(200, 2*time.Second)
	if !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Errorf("hold answer lacks a=recvonly:\n%s", res.Body())
	}
	if toTag(res) != tag {
		t.Errorf("re-INVITE answer To tag %q, want %q", toTag(res), tag)
	}
	p.send(p.ack(addr, "dlg-1", tag, 2))
	if d := in.Media().Direction; d != "recvonly" {
		t.Errorf("Media().Direction after hold = %q", d)
	}
	p.send(inDialog("INFO", 3, "info", ""))
	p.expectResponse(200, 2*time.Second)
	p.send(inDialog("BYE", 4, "bye", ""))
	p.expectResponse(200, 2*time.Second)
	c := r.waitEnded(t)
	if by, cause := c.EndCause(); by != "caller" || cause != "bye" {
		t.Errorf("EndCause = %q %q", by, cause)
	}
	p.send(inDialog("BYE", 5, "bye2", ""))
	p.expectResponse(481, 2*time.Second)

	closed := strings.Replace(p.invite(addr, "dlg-2", "d2", pcmuOffer), "sip:1000@", "sip:closed@", 2)
	p.send(closed)
	p.expectResponse(480, 2*time.Second)
	c = r.waitEnded(t)
	if by, cause := c.EndCause(); by != "gateway" || cause != "no route" {
		t.Errorf("EndCause = %q %q", by, cause)
	}
	r.check(t)
}

// A BYE retransmitted within Timer J (64*T1) gets the same 200, though the
// transaction itself is let go at once (byememory.go); after it, 481.
func TestByeTransactionHeld(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, answerAndWait(r), func(cfg *Config) { cfg.T1 = 25 * time.Millisecond })
	addr := s.Addr("udp")
	p := dialPeer(t, "udp", addr)
	p.send(p.invite(addr, "held-1", "held1", pcmuOffer))
	tag := toTag(p.expectResponse(200, 2*time.Second))
	p.send(p.ack(addr, "held-1", tag, 1))
	bye := p.bye(addr, "held-1", tag, 2)
	p.send(bye)
	p.expectResponse(200, 2*time.Second)
	r.waitEnded(t)
	p.send(bye) // our 200 was "lost": the retransmission is absorbed
	p.expectResponse(200, 2*time.Second)
	time.Sleep(8*25*time.Millisecond + 300*time.Millisecond)
	p.send(bye) // past the ACKed INVITE's short hold, still inside the BYE's Timer J: the same 200
	p.expectResponse(200, 2*time.Second)
	time.Sleep(64*25*time.Millisecond - 8*25*time.Millisecond)
	p.send(bye) // Timer J is over: the dialog is gone
	p.expectResponse(481, 2*time.Second)
	r.check(t)
}

// A re-INVITE's 200 OK is retransmitted until its ACK too (RFC 3261 13.3.1.4),
// on the re-INVITE's own transaction: the caller that lost it retransmits the
// re-INVITE, which the transaction layer absorbs without answering.
func TestReinviteAnswerRetransmittedUntilAck(t *testing.T) {
	t.Parallel()
	r := newRecord()
	s := testServer(t, r.handler(func(c *InboundCall) {
		if err := c.Answer(rtpAddr); err != nil {
			r.errorf("Answer: %v", err)
		}
		<-c.Context().Done()
	}), func(cfg *Config) { cfg.T1 = 100 * time.Millisecond })
	p := dialPeer(t, "udp", s.Addr("udp"))
	p.send(p.invite(s.Addr("udp"), "reinv-rt", "rr1", pcmuOffer))
	tag := toTag(p.expectResponse(200, 2*time.Second))
	p.send(p.ack(s.Addr("udp"), "reinv-rt", tag, 1))

	reinvite := strings.NewReplacer(
		"CSeq: 1 INVITE", "CSeq: 2 INVITE",
		fmt.Sprintf("To: <sip:1000@%s>", s.Addr("udp")), fmt.Sprintf("To: <sip:1000@%s>;tag=%s", s.Addr("udp"), tag),
	).Replace(p.invite(s.Addr("udp"), "reinv-rt", "rr2", pcmuOffer))
	p.send(reinvite)
	start := time.Now()
	count := 0
	// Withhold the ACK for ~1 s: expect the 200 and resends near 100, 300 and 700 ms.
	for time.Since(start) < time.Second {
		res, ok := p.read(time.Second - time.Since(start)).(*sip.Response)
		if ok && res.StatusCode == 200 && res.CSeq().SeqNo == 2 {
			count++
			if toTag(res) != tag {
				t.Errorf("re-INVITE 200 has To tag %q, the dialog's is %q", toTag(res), tag)
			}
		}
	}
	if count < 3 || count > 5 {
		t.Errorf("got %d 200 OKs to the re-INVITE in 1 s with T1=100ms, want 4 (the first and resends at T1 doubling)", count)
	}
	p.send(p.ack(s.Addr("udp"), "reinv-rt", tag, 2))
	for end := time.Now().Add(900 * time.Millisecond); time.Now().Before(end); {
		if res, ok := p.read(time.Until(end)).(*sip.Response); ok && res.CSeq().SeqNo == 2 {
			t.Errorf("re-INVITE answer after its ACK: %d", res.StatusCode)
		}
	}
	p.send(p.bye(s.Addr("udp"), "reinv-rt", tag, 3))
	p.expectResponse(200, 2*time.Second)
	r.waitEnded(t)
	r.check(t)
}
