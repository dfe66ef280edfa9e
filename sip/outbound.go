package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// DialOptions describe one outbound call.
type DialOptions struct {
	Target      string         // "sip:1000@127.0.0.1:5060"
	From        string         // our user, e.g. "switchboard"
	LocalRTP    netip.AddrPort // where we receive RTP; offered in SDP
	AdvertiseIP netip.Addr     // in SDP and Contact; LocalRTP's IP, else the route's source IP
	Codecs      []string       // offer order; default PCMU, PCMA
	Transport   string         // "udp" (default) | "tcp"
	UserAgent   string
	Logger      *slog.Logger

	// Trunk dialling (trunk.go): credentials for a 401/407, the resolved targets tried in
	// turn (each silent for FailoverTimeout makes way for the next), and 180/183 progress.
	CallID          string // "" makes one
	Auth            *Credentials
	Destinations    []netip.AddrPort
	FailoverTimeout time.Duration
	OnProgress      func(status int, early *Media)
}

// OutboundCall is an answered call we placed.
type OutboundCall struct {
	closers []io.Closer // the UA and our listener
	client  *sipgo.Client
	log     *slog.Logger
	dlg     *dialog
	media   Media
	t1      time.Duration

	ctx    context.Context
	cancel context.CancelFunc

	mu       sync.Mutex
	endBy    string
	endCause string
}

// Dial places a call and returns once it is answered. A final non-2xx comes back as a
// *StatusError; cancelling ctx before the answer sends CANCEL.
func Dial(ctx context.Context, opts DialOptions) (*OutboundCall, error) {
	var target sip.Uri
	if err := sip.ParseUri(opts.Target, &target); err != nil {
		return nil, fmt.Errorf("sip: dial target %q: %w", opts.Target, err)
	}
	if target.Scheme == "" {
		target.Scheme = "sip"
	}
	transport := strings.ToLower(opts.Transport)
	if transport == "" {
		transport = strings.ToLower(target.UriParams.GetOr("transport", "udp"))
	}
	if transport != "udp" && transport != "tcp" {
		return nil, fmt.Errorf("sip: dial transport %q not supported (udp, tcp)", transport)
	}
	codecs, err := offerCodecs(opts.Codecs)
	if err != nil {
		return nil, fmt.Errorf("sip: dial: %w", err)
	}
	if !opts.LocalRTP.IsValid() || opts.LocalRTP.Port() == 0 {
		return nil, errors.New("sip: dial: LocalRTP must be set")
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	uaName := opts.UserAgent
	if uaName == "" {
		uaName = "switchboard"
	}
	from := opts.From
	if from == "" {
		from = "switchboard"
	}
	port := target.Port
	if port == 0 {
		port = 5060
	}
	remote := net.JoinHostPort(target.Host, fmt.Sprint(port))
	if len(opts.Destinations) > 0 {
		remote = opts.Destinations[0].String()
	}

	ip := opts.AdvertiseIP
	if !ip.IsValid() {
		ip = opts.LocalRTP.Addr()
	}
	if !ip.IsValid() || ip.IsUnspecified() {
		ip, err = sourceIPFor(remote)
		if err != nil {
			return nil, fmt.Errorf("sip: dial: no local address toward %s: %w", remote, err)
		}
	}
	bindIP := opts.LocalRTP.Addr()
	if !bindIP.IsValid() {
		bindIP = ip
	}

	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent(uaName),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
	)
	if err != nil {
		return nil, fmt.Errorf("sip: dial: %w", err)
	}
	srv, _ := sipgo.NewServer(ua, sipgo.WithServerLogger(log))
	client, _ := sipgo.NewClient(ua, sipgo.WithClientLogger(log))

	// Our own listener: the peer sends its BYE to our Contact, and over UDP our
	// requests leave from it so responses come back to the same socket.
	var laddr sip.Addr
	var localPort int
	closers := []io.Closer{ua}
	bind := netip.AddrPortFrom(bindIP, 0).String()
	switch transport {
	case "udp":
		pc, err := net.ListenPacket("udp", bind)
		if err != nil {
			closeAll(closers)
			return nil, fmt.Errorf("sip: dial: listen: %w", err)
		}
		laddr = addrOf(pc.LocalAddr().String())
		localPort = laddr.Port
		closers = append(closers, pc)
		go srv.ServeUDP(pc) //nolint:errcheck // ends when the socket closes
	case "tcp":
		ln, err := net.Listen("tcp", bind)
		if err != nil {
			closeAll(closers)
			return nil, fmt.Errorf("sip: dial: listen: %w", err)
		}
		localPort = addrOf(ln.Addr().String()).Port
		closers = append(closers, ln)
		go srv.ServeTCP(ln) //nolint:errcheck // ends when the listener closes
	}

	if transport == "udp" {
		// sipgo sends from our socket only once its reader has put it in the pool.
		for i := 0; ; i++ {
			if conn, err := ua.TransportLayer().GetConnection("udp", laddr.String()); err == nil {
				conn.TryClose()
				break
			}
			if i == 200 {
				closeAll(closers)
				return nil, errors.New("sip: dial: UDP listener did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}

	callID := opts.CallID
	if callID == "" {
		callID = uuid.NewString()
	}
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: from, Host: ip.String(), Port: localPort}}
	if transport == "tcp" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", "tcp")
	}
	d := &dialog{
		key:          dialogKey{callID: callID, localTag: sip.GenerateTagN(16)},
		localURI:     sip.Uri{Scheme: "sip", User: from, Host: ip.String()},
		remoteURI:    sip.Uri{Scheme: target.Scheme, User: target.User, Host: target.Host, Port: target.Port},
		remoteTarget: *target.Clone(),
		transport:    upperTransport(transport),
		viaHost:      ip.String(),
		viaPort:      localPort,
		laddr:        laddr,
		contact:      contact,
		userAgent:    uaName,
	}
	d.cseq.Store(uint32(rand.IntN(1 << 15)))
	c := &OutboundCall{closers: closers, client: client, dlg: d, t1: sip.T1,
		log: log.With("call_id", callID, "from", from, "to", target.User)}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	srv.OnBye(c.onBye)
	srv.OnAck(func(*sip.Request, sip.ServerTransaction) {})
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		res.AppendHeader(sip.NewHeader("Allow", allowMethods))
		_ = tx.Respond(res)
	})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		// re-INVITE toward a dial leg: refuse it, which leaves the session as it was (RFC 3261 14.2).
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
	})

	offerBody, err := buildSDP(sdpParams{
		sessionID: rand.Uint64N(1 << 62), version: 1, ip: advertiseFor(opts.AdvertiseIP, opts.LocalRTP.Addr(), ip),
		port: opts.LocalRTP.Port(), codecs: codecs, dtmfPT: 101, ptime: defaultPtime, direction: "sendrecv",
	})
	if err != nil {
		closeAll(c.closers)
		return nil, fmt.Errorf("sip: dial: offer: %w", err)
	}
	inv := d.newRequest(sip.INVITE)
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.AppendHeader(sip.NewHeader("Allow", allowMethods))
	inv.SetBody(offerBody)

	res, err := c.inviteVia(ctx, inv, opts, codecs) // trunk.go: auth, SRV failover, early media
	if err != nil {
		var se *StatusError
		if errors.As(err, &se) {
			// The transaction ACKs a non-2xx itself; keep the socket a while so
			// that ACK leaves and a retransmitted final response is ACKed again.
			go func() { time.Sleep(2 * c.t1); closeAll(c.closers) }()
		} else {
			closeAll(c.closers)
		}
		return nil, err
	}
	// The dialog: the peer's tag and Contact, and the route set reversed (RFC 3261 12.1.2).
	d.key.remoteTag, _ = res.To().Params.Get("tag")
	if ct := res.Contact(); ct != nil {
		d.setTarget(*ct.Address.Clone())
	}
	rrs := res.GetHeaders("Record-Route")
	for i := len(rrs) - 1; i >= 0; i-- {
		if rr, ok := rrs[i].(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *rr.Address.Clone())
		}
	}
	ack := c.ackFor(inv)
	if err := c.send(ack); err != nil {
		c.log.Warn("ACK failed", "error", err)
	}
	m, err := mediaFromAnswer(res.Body(), codecs)
	if err != nil {
		c.log.Warn("unusable SDP answer, hanging up", "error", err)
		_ = d.bye(client, 64*c.t1)
		closeAll(c.closers)
		return nil, fmt.Errorf("sip: dial: answer: %w", err)
	}
	c.media = m
	c.log.Debug("sip answered", "codec", m.Codec.Name, "remote_rtp", m.Remote)
	go func() {
		<-c.ctx.Done()
		time.Sleep(2 * c.t1) // answer a retransmitted BYE before the socket goes
		closeAll(c.closers)
	}()
	return c, nil
}

// sendCancel cancels a pending INVITE (RFC 3261 9.1) and waits briefly for the 487.
func (c *OutboundCall) sendCancel(inv *sip.Request, tx sip.ClientTransaction) {
	cancel := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	cancel.AppendHeader(sip.HeaderClone(inv.Via()))
	maxfwd := sip.MaxForwardsHeader(70)
	cancel.AppendHeader(&maxfwd)
	cancel.AppendHeader(sip.HeaderClone(inv.From()))
	cancel.AppendHeader(sip.HeaderClone(inv.To()))
	cancel.AppendHeader(sip.HeaderClone(inv.CallID()))
	cancel.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	sip.CopyHeaders("Route", inv, cancel)
	cancel.SetBody(nil)
	cancel.SetTransport(inv.Transport())
	cancel.Laddr = inv.Laddr
	ctx, done := context.WithTimeout(context.Background(), 4*c.t1)
	defer done()
	if _, err := c.dlg.do(ctx, c.client, cancel); err != nil {
		c.log.Debug("CANCEL", "error", err)
	}
	wait := time.NewTimer(4 * c.t1)
	defer wait.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return
			}
		case <-tx.Done():
			return
		case <-wait.C:
			return
		}
	}
}

// ackFor builds the ACK for our INVITE's 2xx, routed like any in-dialog request.
func (c *OutboundCall) ackFor(inv *sip.Request) *sip.Request {
	ack := c.dlg.newRequest(sip.ACK)
	ack.CSeq().SeqNo = inv.CSeq().SeqNo
	return ack
}

func (c *OutboundCall) send(req *sip.Request) error {
	c.dlg.route(c.client.TransportLayer(), req)
	return c.client.WriteRequest(req, noBuild)
}

func (c *OutboundCall) onBye(req *sip.Request, tx sip.ServerTransaction) {
	k, ok := keyFromRequest(req)
	if !ok || k != c.dlg.key {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	c.finish("callee", "bye")
}

func (c *OutboundCall) finish(by, cause string) bool {
	c.mu.Lock()
	first := c.endBy == ""
	if first {
		c.endBy, c.endCause = by, cause
	}
	c.mu.Unlock()
	if first {
		c.log.Debug("sip dialog ended", "by", by, "cause", cause)
		c.cancel()
	}
	return first
}

// CallID is the SIP Call-ID.
func (c *OutboundCall) CallID() string { return c.dlg.key.callID }

// Media is what the answer negotiated.
func (c *OutboundCall) Media() Media { return c.media }

// Context is done when the call ends.
func (c *OutboundCall) Context() context.Context { return c.ctx }

// Logger carries call_id, from and to.
func (c *OutboundCall) Logger() *slog.Logger { return c.log }

// EndCause says who ended the call ("callee" | "gateway") and why; empty while it is up.
func (c *OutboundCall) EndCause() (by, cause string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endBy, c.endCause
}

// Hangup sends BYE and ends the call; a no-op once the call has ended.
func (c *OutboundCall) Hangup() error {
	if !c.finish("gateway", "hangup") {
		return nil
	}
	return c.dlg.bye(c.client, 64*c.t1)
}

// sourceIPFor is the local address the kernel would use toward addr (no packet is sent).
func sourceIPFor(addr string) (netip.Addr, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	ap, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}

// advertiseFor picks the SDP address: configured, else the RTP bind IP, else the SIP one.
func advertiseFor(adv, rtp, sipIP netip.Addr) netip.Addr {
	if adv.IsValid() {
		return adv
	}
	if rtp.IsValid() && !rtp.IsUnspecified() {
		return rtp
	}
	return sipIP
}

func closeAll(cs []io.Closer) {
	for _, c := range cs {
		_ = c.Close()
	}
}
