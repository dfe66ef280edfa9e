package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Handler takes an inbound call; it runs in its own goroutine and owns the call for its life.
// When it returns, a call still up is hung up.
type Handler func(c *InboundCall)

// allowMethods is what we answer in Allow.
const allowMethods = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE"

// knownMethods are SIP methods we recognise but do not serve: 405 rather than 501.
var knownMethods = map[string]bool{
	"REGISTER": true, "SUBSCRIBE": true, "NOTIFY": true, "PUBLISH": true,
	"MESSAGE": true, "REFER": true, "PRACK": true,
}

// Server listens for SIP and turns INVITEs into InboundCalls.
type Server struct {
	cfg     Config
	handler Handler
	log     *slog.Logger

	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client

	udp   []net.PacketConn
	tcp   []net.Listener
	sec   secure            // TLS listeners (tls.go)
	addrs map[string]string // transport → first bound address

	draining atomic.Bool
	trunks   *trunks // carriers in and out (trunk.go)
	dialogs  dialogTable[*InboundCall]
	byes     byeMemory // dialogs ended by the caller's BYE, for retransmissions
	calls    sync.WaitGroup
}

// NewServer binds the configured listeners (so Addr works at once); Serve runs them.
func NewServer(cfg Config, h Handler) (*Server, error) {
	cfg.Listen = append([]Listen(nil), cfg.Listen...)
	cfg.Codecs = append([]string(nil), cfg.Codecs...)
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if h == nil {
		return nil, errors.New("sip: nil handler")
	}
	s := &Server{cfg: cfg, handler: h, log: cfg.Logger, addrs: map[string]string{}}
	g := newGuard(s)
	var err error
	if s.trunks, err = newTrunks(&s.cfg); err != nil {
		return nil, err
	}
	s.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent(cfg.UserAgent),
		sipgo.WithUserAgentDNSResolver(noDialResolver()), // never a reflector (guard.go)
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(s.log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(s.log),
			sip.WithTransportLayerReadFilter(g.filter),
			sip.WithTransportLayerTransports(sip.TransportsConfig{TCP: noDialTCP(), TLS: noDialTLS()})),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		s.ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	s.client, err = sipgo.NewClient(s.ua, sipgo.WithClientLogger(s.log))
	if err != nil {
		s.ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	for _, l := range cfg.Listen {
		switch l.Transport {
		case "udp":
			c, err := net.ListenPacket("udp", l.Addr)
			if err != nil {
				s.closeListeners()
				s.ua.Close()
				return nil, fmt.Errorf("sip: listen udp %s: %w", l.Addr, err)
			}
			s.udp = append(s.udp, c)
			if _, ok := s.addrs["udp"]; !ok {
				s.addrs["udp"] = c.LocalAddr().String()
			}
		case "tcp":
			ln, err := net.Listen("tcp", l.Addr)
			if err != nil {
				s.closeListeners()
				s.ua.Close()
				return nil, fmt.Errorf("sip: listen tcp %s: %w", l.Addr, err)
			}
			s.tcp = append(s.tcp, ln)
			if _, ok := s.addrs["tcp"]; !ok {
				s.addrs["tcp"] = ln.Addr().String()
			}
		case "tls":
			if err := s.listenTLS(l); err != nil {
				s.closeListeners()
				s.ua.Close()
				return nil, err
			}
		}
	}
	if cfg.OnMessage != nil {
		s.ua.TransportLayer().OnMessage(s.onWire) // counts what arrives (observe.go)
	}
	s.srv.OnInvite(s.safe(s.onInvite))
	s.srv.OnAck(s.safe(s.onAck))
	s.srv.OnBye(s.safe(s.onBye))
	s.srv.OnCancel(s.safe(s.onCancel))
	s.srv.OnOptions(s.safe(s.onOptions))
	s.srv.OnInfo(s.safe(s.onInfo))
	s.srv.OnUpdate(s.safe(s.onUpdate))
	s.srv.OnNotify(s.safe(s.onNotify)) // progress of our REFERs (refer.go)
	s.srv.OnNoRoute(s.safe(s.onNoRoute))
	return s, nil
}

// Addr is the bound address of the first listener of a transport ("udp", "tcp"), or "".
func (s *Server) Addr(transport string) string {
	return s.addrs[strings.ToLower(transport)]
}

// SetDraining makes new INVITEs get 503 while calls in progress run on.
func (s *Server) SetDraining(on bool) { s.draining.Store(on) }

// Serve runs the listeners until ctx is cancelled, then hangs up the calls still up.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.udp)+len(s.tcp)+len(s.sec.tls))
	for _, c := range s.udp {
		go func() { errc <- s.srv.ServeUDP(c) }()
	}
	for _, ln := range s.tcp {
		go func() { errc <- s.srv.ServeTCP(ln) }()
	}
	for _, ln := range s.sec.tls {
		go func() { errc <- s.srv.ServeTLS(ln) }()
	}
	s.log.Info("sip listening", "udp", s.addrs["udp"], "tcp", s.addrs["tcp"], "tls", s.addrs["tls"])
	s.startTrunks(ctx) // REGISTER and OPTIONS pings toward carriers (register.go)
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("sip: listener stopped: %w", err)
		}
	}
	var wg sync.WaitGroup
	for _, c := range s.dialogs.all() {
		wg.Go(func() { _ = c.hangup("shutdown", true) })
	}
	wg.Wait()
	handlers := make(chan struct{})
	go func() { s.calls.Wait(); close(handlers) }()
	select {
	case <-handlers:
	case <-time.After(5 * time.Second):
		s.log.Warn("sip shutdown: call handlers still running")
	}
	s.closeListeners()
	s.ua.Close()
	return err
}

func (s *Server) closeListeners() {
	for _, c := range s.udp {
		c.Close()
	}
	for _, ln := range s.tcp {
		ln.Close()
	}
	for _, ln := range s.sec.tls {
		ln.Close()
	}
}

// safe keeps a panic in one request from taking the process down.
func (s *Server) safe(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if s.cfg.OnMessage != nil && tx != nil {
			tx = observedTx{tx, s} // counts the responses sent (observe.go)
		}
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("sip handler panic", "method", req.Method, "panic", r, "stack", string(debug.Stack()))
				if !req.IsAck() {
					_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
				}
			}
		}()
		if s.refuse(req, tx) { // validation and limits before any handler (validate.go, guard.go)
			return
		}
		if !req.IsInvite() || hasToTag(req) {
			if _, ok := s.screen(req, tx); !ok { // unknown sources (trunk.go); INVITEs in onInvite
				return
			}
		}
		h(req, tx)
	}
}

// respond sends a stateful response, with an optional Warning header explaining why.
func (s *Server) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason, warning string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	if warning != "" {
		res.AppendHeader(sip.NewHeader("Warning", fmt.Sprintf("399 switchboard %q", warning)))
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	res.AppendHeader(sip.NewHeader("Server", s.cfg.UserAgent))
	if err := tx.Respond(res); err != nil {
		s.log.Debug("sip respond failed", "status", code, "method", req.Method, "error", err)
	}
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params.Has("tag")
}

// missingHeader names the first mandatory header (RFC 3261 8.1.1) a request lacks.
func missingHeader(req *sip.Request) string {
	switch {
	case req.From() == nil:
		return "From"
	case req.To() == nil:
		return "To"
	case req.CallID() == nil:
		return "Call-ID"
	case req.CSeq() == nil:
		return "CSeq"
	case req.Via() == nil:
		return "Via"
	}
	if req.CSeq().MethodName != req.Method {
		return "CSeq method"
	}
	return ""
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	taken := time.Now()
	if m := missingHeader(req); m != "" {
		s.respond(req, tx, 400, "Bad Request", "missing or invalid "+m)
		return
	}
	if hasToTag(req) {
		s.onReInvite(req, tx)
		return
	}
	trunk, ok := s.screen(req, tx) // source allowlist and digest auth before anything else (trunk.go)
	if !ok {
		return
	}
	if s.draining.Load() {
		s.refused("draining", 503)
		s.respond(req, tx, 503, "Service Unavailable", "draining", sip.NewHeader("Retry-After", "30"))
		return
	}
	s.respond(req, tx, 100, "Trying", "")
	if req.Contact() == nil {
		s.respond(req, tx, 400, "Bad Request", "missing Contact")
		return
	}
	timer, ok := s.sessionTimerFor(req) // RFC 4028 (session_timer.go)
	if !ok {
		s.rejectTooSmall(req, tx)
		return
	}
	o, status, reason, warn := s.readOffer(req)
	if o == nil {
		s.respond(req, tx, status, reason, warn, sip.NewHeader("Accept", "application/sdp"))
		return
	}
	m, err := negotiate(o, s.cfg.Codecs)
	if err == nil {
		m.SRTP, err = negotiateSRTP(o, s.srtpModeFor(req, tx)) // SDES (sdes.go)
	}
	if err != nil {
		s.respond(req, tx, 488, "Not Acceptable Here", err.Error(), sip.NewHeader("Accept", "application/sdp"))
		return
	}
	release, ok := s.admit(trunk, req, tx) // per-trunk caps: 503 beyond
	if !ok {
		return
	}
	c := newInboundCall(s, req, tx, o, m)
	c.taken = taken
	if trunk != nil {
		c.trunk = trunk.Name
	}
	context.AfterFunc(c.ctx, release) // no goroutine per call waiting for its end
	c.timer = timer
	if s.debug() {
		s.log.Debug("sip invite", "call_id", c.callID, "from", c.From(), "to", c.To(), "source", req.Source(), "transport", c.Transport(), "srtp", m.SRTP != nil)
	}
	s.dialogs.put(c.dlg.key, c)
	// sipgo keeps a finished transaction, and so its cancel hook, for 64*T1 after the
	// final response: the hook reaches the call only while the INVITE is pending.
	var pending atomic.Pointer[InboundCall]
	pending.Store(c)
	if !tx.OnCancel(func(r *sip.Request) {
		if c := pending.Load(); c != nil {
			c.onCancel(r)
		}
	}) {
		c.onCancel(nil)
	}
	defer pending.Store(nil)
	s.calls.Add(1)
	go s.run(c)

	// sipgo terminates the transaction when this returns, so hold it until the final
	// response is out and, for a 2xx, the ACK is settled.
	select {
	case <-c.inviteDone:
	case <-tx.Done():
		c.transactionGone()
		<-c.inviteDone
	}
	if c.acked(req.CSeq().SeqNo) {
		s.releaseLater(req, tx, c.letGo)
	}
}

// releaseLater ends an INVITE server transaction whose 2xx was ACKed after
// T1 rather than sipgo's 64*T1: the caller ACKs because it has our 2xx, so
// it retransmits no INVITE (T1 covers one still in flight), and at 1,000
// calls/s 64*T1 would hold some 32,000 transactions of ~11 KB each. letGo
// then stops its Timer L, which sipgo leaves armed (timerl.go).
func (s *Server) releaseLater(req *sip.Request, tx sip.ServerTransaction, letGo func()) {
	if sip.IsReliable(req.Transport()) {
		letGo() // sipgo ends the transaction itself when onInvite returns
		return
	}
	time.AfterFunc(s.cfg.T1, func() {
		tx.Terminate()
		letGo()
	})
}

// readOffer parses the INVITE's SDP, or gives the status to refuse it with.
func (s *Server) readOffer(req *sip.Request) (o *offer, status int, reason, warning string) {
	body := req.Body()
	if len(body) == 0 {
		return nil, 488, "Not Acceptable Here", "SDP offer required (no late offer)"
	}
	if ct := req.ContentType(); ct != nil {
		mt, _, _ := strings.Cut(strings.ToLower(ct.Value()), ";")
		if strings.TrimSpace(mt) != "application/sdp" {
			return nil, 415, "Unsupported Media Type", "body must be application/sdp, got " + ct.Value()
		}
	}
	o, err := parseSDP(body)
	switch {
	case errors.Is(err, errSDPMalformed):
		return nil, 400, "Bad Request", err.Error()
	case err != nil:
		return nil, 488, "Not Acceptable Here", err.Error()
	}
	return o, 0, "", ""
}

// run calls the handler and makes sure the call is over when it returns.
func (s *Server) run(c *InboundCall) {
	defer s.calls.Done()
	defer func() {
		if r := recover(); r != nil {
			c.logger().Error("call handler panic", "panic", r, "stack", string(debug.Stack()))
		}
		_ = c.Hangup("handler returned")
	}()
	s.handler(c)
}

func (s *Server) lookup(req *sip.Request) (*InboundCall, bool) {
	k, ok := keyFromRequest(req)
	if !ok {
		return nil, false
	}
	return s.dialogs.get(k)
}

func (s *Server) onAck(req *sip.Request, tx sip.ServerTransaction) {
	c, ok := s.lookup(req)
	if !ok {
		s.log.Debug("sip ACK for unknown dialog dropped", "call_id", callIDOf(req))
		return
	}
	c.gotAck(req)
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if m := missingHeader(req); m != "" {
		s.respond(req, tx, 400, "Bad Request", "missing or invalid "+m)
		return
	}
	c, ok := s.lookup(req)
	if !ok {
		if k, kok := keyFromRequest(req); kok && s.byes.ended(k, req.CSeq().SeqNo, time.Now(), s.timerJ()) {
			s.respond(req, tx, 200, "OK", "") // a retransmission: the same answer, for Timer J
			tx.Terminate()
			return
		}
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	s.respond(req, tx, 200, "OK", "")
	if !sip.IsReliable(req.Transport()) {
		// Remembered for Timer J instead of the transaction (byememory.go).
		s.byes.add(c.dlg.key, req.CSeq().SeqNo, time.Now(), s.timerJ())
		tx.Terminate()
	}
	c.byeFromCaller()
}

// onCancel sees only CANCELs that matched no INVITE transaction: sipgo answers the rest.
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, 200, "OK", "",
		sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", "application/sdp"))
}

func (s *Server) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c, ok := s.lookup(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	c.info(req, tx) // DTMF bodies to the call (info.go)
}

func (s *Server) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c, ok := s.lookup(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	c.modify(req, tx, false)
}

func (s *Server) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c, ok := s.lookup(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	c.modify(req, tx, true)
}

func (s *Server) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	if knownMethods[string(req.Method)] {
		s.respond(req, tx, 405, "Method Not Allowed", "", sip.NewHeader("Allow", allowMethods))
		return
	}
	s.respond(req, tx, 501, "Not Implemented", "", sip.NewHeader("Allow", allowMethods))
}

// advertiseIP is the address we put in Contact and SDP for a request that reached conn.
func (s *Server) advertiseIP(req *sip.Request, conn sip.Connection) netip.Addr {
	if s.cfg.AdvertiseIP.IsValid() {
		return s.cfg.AdvertiseIP
	}
	if conn != nil {
		if ap, err := netip.ParseAddrPort(conn.LocalAddr().String()); err == nil && !ap.Addr().IsUnspecified() {
			return ap.Addr().Unmap()
		}
	}
	if ip, err := netip.ParseAddr(req.Recipient.Host); err == nil && !ip.IsUnspecified() {
		return ip
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

func callIDOf(req *sip.Request) string {
	if c := req.CallID(); c != nil {
		return c.Value()
	}
	return ""
}

func headerValue(req *sip.Request, name string) string {
	if h := req.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// debug reports whether debug lines are logged: the call path builds their
// arguments only then.
func (s *Server) debug() bool { return s.log.Enabled(context.Background(), slog.LevelDebug) }

// timerJ is how long a UAS absorbs retransmissions of a non-INVITE request
// over UDP (RFC 3261 17.2.2).
func (s *Server) timerJ() time.Duration { return 64 * s.cfg.T1 }

// byeTimeout bounds how long we wait for the answer to our BYE.
func (s *Server) byeTimeout() time.Duration { return 64 * s.cfg.T1 }
