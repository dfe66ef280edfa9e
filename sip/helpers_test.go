package sip

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() && os.Getenv("SIP_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testServer runs a Server on 127.0.0.1 with free UDP and TCP ports until the test ends.
func testServer(t testing.TB, h Handler, tweak ...func(*Config)) *Server {
	t.Helper()
	s := newTestServer(t, h, tweak...)
	serveTest(t, s)
	return s
}

// newTestServer is testServer's Server, not yet serving.
func newTestServer(t testing.TB, h Handler, tweak ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{
		Listen:    []Listen{{Transport: "udp", Addr: "127.0.0.1:0"}, {Transport: "tcp", Addr: "127.0.0.1:0"}},
		Codecs:    []string{"PCMU", "PCMA"},
		UserAgent: "switchboard-test",
		Logger:    testLogger(t),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	s, err := NewServer(cfg, h)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serveTest runs s until the test ends.
func serveTest(t testing.TB, s *Server) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Serve(ctx); err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return")
		}
	})
}

// freePort finds a free UDP+TCP port on 127.0.0.1 for a peer that needs a fixed one.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		pc.Close()
		if err == nil {
			ln.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

// callRecord collects what a test handler saw, for assertions after the call.
type callRecord struct {
	mu      sync.Mutex
	calls   []*InboundCall
	errs    []string
	started chan *InboundCall
	ended   chan *InboundCall
}

func newRecord() *callRecord {
	return &callRecord{started: make(chan *InboundCall, 16), ended: make(chan *InboundCall, 16)}
}

func (r *callRecord) errorf(format string, args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// handler wraps body so the record sees each call start and end.
func (r *callRecord) handler(body func(c *InboundCall)) Handler {
	return func(c *InboundCall) {
		r.mu.Lock()
		r.calls = append(r.calls, c)
		r.mu.Unlock()
		r.started <- c
		defer func() { r.ended <- c }()
		body(c)
	}
}

func (r *callRecord) waitEnded(t *testing.T) *InboundCall {
	t.Helper()
	select {
	case c := <-r.ended:
		<-c.Context().Done()
		return c
	case <-time.After(15 * time.Second):
		t.Fatal("no call ended")
		return nil
	}
}

func (r *callRecord) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.errs {
		t.Error(e)
	}
}

// sipp runs sipp against addr and returns its combined output and error.
func sipp(t *testing.T, addr string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("sipp"); err != nil {
		t.Skip("sipp not installed")
	}
	dir := t.TempDir()
	port := freePort(t)
	base := []string{addr, "-i", "127.0.0.1", "-p", fmt.Sprint(port),
		"-mp", fmt.Sprint(freePort(t)), "-cp", fmt.Sprint(freePort(t)),
		"-m", "1", "-nostdin", "-timeout", "20s", "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(dir, "err.log"), "-trace_msg", "-message_file", filepath.Join(dir, "msg.log")}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sipp", append(base, args...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	for _, f := range []string{"err.log", "msg.log"} {
		if b, rerr := os.ReadFile(filepath.Join(dir, f)); rerr == nil && len(b) > 0 && (err != nil || testing.Verbose()) {
			t.Logf("sipp %s:\n%s", f, tail(string(b), 6000))
		}
	}
	return out.String(), err
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// sippScenario runs one of our XML scenarios from testdata.
func sippScenario(t *testing.T, addr, name string, args ...string) error {
	t.Helper()
	path, err := filepath.Abs(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	out, err := sipp(t, addr, append([]string{"-sf", path}, args...)...)
	if err != nil {
		t.Logf("sipp output:\n%s", tail(out, 3000))
	}
	return err
}

// peer is a raw SIP endpoint over one socket, for checks sipp cannot express.
type peer struct {
	t      testing.TB
	conn   net.Conn
	udp    bool
	parser *sip.Parser
	buf    []byte
	stream *sip.ParserStream
	queue  []sip.Message
}

func dialPeer(t testing.TB, network, addr string) *peer {
	t.Helper()
	conn, err := net.Dial(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &peer{t: t, conn: conn, udp: network == "udp", parser: sip.NewParser(), buf: make([]byte, 65536)}
	return p
}

func (p *peer) local() netip.AddrPort {
	return netip.MustParseAddrPort(p.conn.LocalAddr().String())
}

func (p *peer) send(msg string) {
	p.t.Helper()
	if !strings.Contains(msg, "\r\n") {
		msg = strings.ReplaceAll(msg, "\n", "\r\n")
	}
	if _, err := p.conn.Write([]byte(msg)); err != nil {
		p.t.Fatal(err)
	}
}

// read returns the next SIP message, or nil when nothing arrives within d.
func (p *peer) read(d time.Duration) sip.Message {
	p.t.Helper()
	if len(p.queue) > 0 {
		m := p.queue[0]
		p.queue = p.queue[1:]
		return m
	}
	deadline := time.Now().Add(d)
	for {
		p.conn.SetReadDeadline(deadline)
		n, err := p.conn.Read(p.buf)
		if err != nil {
			return nil
		}
		if p.udp {
			m, err := p.parser.ParseSIP(p.buf[:n])
			if err != nil {
				p.t.Fatalf("unparsable message from server: %v\n%s", err, p.buf[:n])
			}
			return m
		}
		if p.stream == nil {
			p.stream = p.parser.NewSIPStream()
		}
		var msgs []sip.Message
		_ = p.stream.ParseSIPStream(p.buf[:n], func(m sip.Message) { msgs = append(msgs, m) })
		if len(msgs) > 0 {
			p.queue = append(p.queue, msgs[1:]...)
			return msgs[0]
		}
	}
}

// expectResponse reads until a response with the given status (skipping others listed as ok).
func (p *peer) expectResponse(status int, d time.Duration) *sip.Response {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := p.read(time.Until(deadline))
		if m == nil {
			p.t.Fatalf("no %d response within %v", status, d)
		}
		res, ok := m.(*sip.Response)
		if !ok {
			p.t.Fatalf("expected response %d, got request %s", status, m.(*sip.Request).Method)
		}
		if res.StatusCode == status {
			return res
		}
		if res.StatusCode >= 200 || status < 200 {
			p.t.Fatalf("expected %d, got %d %s", status, res.StatusCode, res.Reason)
		}
	}
}

func (p *peer) expectRequest(method sip.RequestMethod, d time.Duration) *sip.Request {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := p.read(time.Until(deadline))
		if m == nil {
			p.t.Fatalf("no %s within %v", method, d)
		}
		if req, ok := m.(*sip.Request); ok && req.Method == method {
			return req
		}
	}
}

// inviteMsg builds an INVITE from p with the given SDP and extra headers.
func (p *peer) invite(target, callID, branch string, sdp string, extra ...string) string {
	transport := "UDP"
	if !p.udp {
		transport = "TCP"
	}
	lp := p.local()
	h := []string{
		fmt.Sprintf("INVITE sip:1000@%s SIP/2.0", target),
		fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bK%s;rport", transport, lp, branch),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:alice@%s>;tag=a1", lp.Addr()),
		fmt.Sprintf("To: <sip:1000@%s>", target),
		"Call-ID: " + callID,
		"CSeq: 1 INVITE",
		fmt.Sprintf("Contact: <sip:alice@%s;transport=%s>", lp, strings.ToLower(transport)),
	}
	h = append(h, extra...)
	if sdp != "" {
		h = append(h, "Content-Type: application/sdp")
	}
	h = append(h, fmt.Sprintf("Content-Length: %d", len(strings.ReplaceAll(sdp, "\n", "\r\n"))), "", "")
	return strings.Join(h, "\n") + sdp
}

func (p *peer) ack(target, callID, toTag string, cseq int, extra ...string) string {
	transport := "UDP"
	if !p.udp {
		transport = "TCP"
	}
	lp := p.local()
	h := []string{
		fmt.Sprintf("ACK sip:1000@%s SIP/2.0", target),
		fmt.Sprintf("Via: SIP/2.0/%s %s;branch=z9hG4bKack%d%s;rport", transport, lp, cseq, toTag),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:alice@%s>;tag=a1", lp.Addr()),
		fmt.Sprintf("To: <sip:1000@%s>;tag=%s", target, toTag),
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d ACK", cseq),
	}
	h = append(h, extra...)
	h = append(h, "Content-Length: 0", "", "")
	return strings.Join(h, "\n")
}

// bye is the caller's BYE in the dialog the 2xx with toTag made.
func (p *peer) bye(target, callID, toTag string, cseq int) string {
	lp := p.local()
	return strings.Join([]string{
		fmt.Sprintf("BYE sip:1000@%s SIP/2.0", target),
		fmt.Sprintf("Via: SIP/2.0/UDP %s;branch=z9hG4bKbye%d%s;rport", lp, cseq, callID),
		"Max-Forwards: 70",
		fmt.Sprintf("From: <sip:alice@%s>;tag=a1", lp.Addr()),
		fmt.Sprintf("To: <sip:1000@%s>;tag=%s", target, toTag),
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d BYE", cseq),
		"Content-Length: 0", "", "",
	}, "\n")
}

const pcmuOffer = `v=0
o=- 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 40000 RTP/AVP 0 101
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
`

func toTag(res *sip.Response) string {
	tag, _ := res.To().Params.Get("tag")
	return tag
}
