package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Errors an InboundCall's methods return.
var (
	ErrCallEnded       = errors.New("sip: call has ended")
	ErrAlreadyAnswered = errors.New("sip: call already answered")
	ErrAckTimeout      = errors.New("sip: no ACK for 2xx")
)

type callState int

const (
	stateEarly     callState = iota // INVITE received, no final response yet
	stateAnswering                  // 2xx sent, waiting for the ACK
	stateConfirmed                  // ACK received
	stateEnded
)

// InboundCall is one INVITE we received and the dialog it creates.
type InboundCall struct {
	srv    *Server
	invite *sip.Request
	tx     sip.ServerTransaction
	callID string
	offer  *offer
	dlg    *dialog
	ip     netip.Addr // advertised in Contact and SDP
	taken  time.Time  // when the INVITE reached our handler

	ctx    context.Context
	cancel context.CancelFunc

	inviteDone chan struct{} // closed when the INVITE transaction no longer needs us
	doneOnce   sync.Once

	logOnce sync.Once
	log     *slog.Logger // use logger(): built on first use

	mu         sync.Mutex
	state      callState
	media      Media
	localRTP   netip.AddrPort
	okSent     time.Time // the 200 OK first handed to the transport
	txLetGo    bool      // the INVITE transaction was released (timerl.go)
	sessionID  uint64
	sdpVersion uint64
	endBy      string
	endCause   string
	ackWait    map[uint32]chan struct{} // INVITE CSeq → closed on its ACK
	dtmf       dtmfInfo                 // digits from SIP INFO (info.go)

	refer referState // a blind transfer in progress (refer.go)
	trunk string     // the inbound trunk it matched (trunk.go); "" with no trunks configured

	timer     sessionTimer  // RFC 4028 (session_timer.go); guarded by mu
	refreshed chan struct{} // a re-INVITE or UPDATE refreshed the session
	changes   chan Media    // media changed by re-INVITE or UPDATE (reinvite.go)
}

func newInboundCall(s *Server, req *sip.Request, tx sip.ServerTransaction, o *offer, m Media) *InboundCall {
	c := &InboundCall{
		srv:        s,
		invite:     req,
		tx:         tx,
		callID:     req.CallID().Value(),
		offer:      o,
		media:      m,
		inviteDone: make(chan struct{}),
		ackWait:    map[uint32]chan struct{}{},
		sessionID:  rand.Uint64N(1 << 62),
		refreshed:  make(chan struct{}, 1),
		changes:    make(chan Media, 1),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())

	var conn sip.Connection
	if cx, ok := tx.(interface{ Connection() sip.Connection }); ok {
		conn = cx.Connection()
	}
	c.ip = s.advertiseIP(req, conn)
	transport := upperTransport(req.Transport())
	port := 0
	var laddr sip.Addr
	if conn != nil {
		laddr = addrOf(conn.LocalAddr().String())
		port = laddr.Port
	}
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", Host: c.ip.String(), Port: port}}
	if u := req.Recipient.User; u != "" {
		contact.Address.User = u
	}
	if transport != "UDP" {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", lowerTransport(transport))
	}

	remoteTag, _ := req.From().Params.Get("tag")
	d := &dialog{
		key:          dialogKey{callID: c.callID, localTag: sip.GenerateTagN(16), remoteTag: remoteTag},
		localURI:     *req.To().Address.Clone(),
		remoteURI:    *req.From().Address.Clone(),
		remoteTarget: *req.Contact().Address.Clone(),
		transport:    transport,
		viaHost:      c.ip.String(),
		viaPort:      port,
		contact:      contact,
		userAgent:    s.cfg.UserAgent,
	}
	// The UAS route set is the Record-Route list in order (RFC 3261 12.1.1).
	for _, h := range req.GetHeaders("Record-Route") {
		if rr, ok := h.(*sip.RecordRouteHeader); ok {
			d.routeSet = append(d.routeSet, *rr.Address.Clone())
		}
	}
	if transport == "UDP" {
		d.laddr = laddr
	} else {
		d.source = req.Source()
	}
	d.cseq.Store(uint32(rand.IntN(1 << 15)))
	c.dlg = d
	c.ackWait[req.CSeq().SeqNo] = make(chan struct{})
	return c
}

// CallID is the SIP Call-ID.
func (c *InboundCall) CallID() string { return c.callID }

// From is the user part of the caller's From URI.
func (c *InboundCall) From() string { return c.invite.From().Address.User }

// To is the user part of the To URI (the number dialled).
func (c *InboundCall) To() string { return c.invite.To().Address.User }

// FromURI is the caller's full From URI.
func (c *InboundCall) FromURI() string { return c.invite.From().Address.String() }

// ToURI is the full To URI.
func (c *InboundCall) ToURI() string { return c.invite.To().Address.String() }

// RequestURI is the INVITE's Request-URI.
func (c *InboundCall) RequestURI() string { return c.invite.Recipient.String() }

// Source is the address the INVITE came from.
func (c *InboundCall) Source() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(c.invite.Source())
	return ap
}

// Transport is "udp" or "tcp".
func (c *InboundCall) Transport() string { return lowerTransport(c.dlg.transport) }

// Trunk is the name of the inbound trunk the INVITE was matched to by source or digest auth.
func (c *InboundCall) Trunk() string { return c.trunk }

// Header is the first value of a header of the INVITE, or "".
func (c *InboundCall) Header(name string) string { return headerValue(c.invite, name) }

// Logger carries call_id, from and to (and trunk).
func (c *InboundCall) Logger() *slog.Logger { return c.logger() }

// logger is built on first use: most calls log nothing at this layer, and
// With formats its attributes up front.
func (c *InboundCall) logger() *slog.Logger {
	c.logOnce.Do(func() {
		args := []any{"call_id", c.callID, "from", c.From(), "to", c.To()}
		if c.trunk != "" {
			args = append(args, "trunk", c.trunk)
		}
		c.log = c.srv.log.With(args...)
	})
	return c.log
}

// Media is the negotiated media (updated by a re-INVITE or UPDATE).
func (c *InboundCall) Media() Media {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.media
}

// Context is done when the call ends for any reason.
func (c *InboundCall) Context() context.Context { return c.ctx }

// Taken is when the INVITE reached the SIP handler, after the transport and
// transaction layers.
func (c *InboundCall) Taken() time.Time { return c.taken }

// OKSent is when the 200 OK was first sent, zero before; what the caller
// measures as set-up time ends there (Answer returns later, on the ACK).
func (c *InboundCall) OKSent() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.okSent
}

// EndCause says who ended the call ("caller" | "gateway") and why; empty while it is up.
func (c *InboundCall) EndCause() (by string, cause string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endBy, c.endCause
}

// response builds a response to the INVITE carrying our To tag.
func (c *InboundCall) response(code int, reason string, body []byte) *sip.Response {
	res := sip.NewResponseFromRequest(c.invite, code, reason, body)
	if to := res.To(); to != nil {
		to.Params.Add("tag", c.dlg.key.localTag)
	}
	res.AppendHeader(sip.NewHeader("Server", c.srv.cfg.UserAgent))
	if code > 100 && code < 300 {
		res.AppendHeader(c.dlg.contact.Clone())
	}
	return res
}

// Ringing sends 180 Ringing.
func (c *InboundCall) Ringing() error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st != stateEarly {
		return ErrCallEnded
	}
	return c.tx.Respond(c.response(180, "Ringing", nil))
}

// Reject sends a final non-2xx response and ends the call.
func (c *InboundCall) Reject(status int, reason string) error {
	if status < 300 || status > 699 {
		return fmt.Errorf("sip: reject status %d is not a failure status", status)
	}
	if reason == "" {
		reason = defaultReason(status)
	}
	return c.reject(status, reason, strconv.Itoa(status)+" "+reason)
}

func (c *InboundCall) reject(status int, reason, cause string) error {
	c.mu.Lock()
	if c.state != stateEarly {
		c.mu.Unlock()
		return ErrCallEnded
	}
	c.state = stateEnded
	c.mu.Unlock()
	err := c.tx.Respond(c.response(status, reason, nil))
	if errors.Is(err, sip.ErrTransactionCanceled) || c.ctx.Err() != nil {
		return ErrCallEnded // the CANCEL got there first; sipgo sent the 487
	}
	c.finish("gateway", cause)
	return err
}

// Answer sends 200 OK with our SDP answer and retransmits it until the ACK arrives
// (RFC 3261 13.3.1.4). It returns on the ACK; after 64*T1 without one it sends BYE.
func (c *InboundCall) Answer(localRTP netip.AddrPort) error {
	c.mu.Lock()
	switch c.state {
	case stateEnded:
		c.mu.Unlock()
		return ErrCallEnded
	case stateAnswering, stateConfirmed:
		c.mu.Unlock()
		return ErrAlreadyAnswered
	}
	c.state = stateAnswering
	c.localRTP = localRTP
	c.sdpVersion++
	body, err := answerSDP(c.offer, c.media, localRTP, c.ip, c.sessionID, c.sdpVersion)
	ack := c.ackWait[c.invite.CSeq().SeqNo]
	c.mu.Unlock()
	if err != nil {
		c.fail(500, "Server Internal Error", "build answer: "+err.Error())
		return err
	}
	res := c.okWithSDP(body)
	if err := c.tx.Respond(res); err != nil {
		if errors.Is(err, sip.ErrTransactionCanceled) {
			return ErrCallEnded
		}
		c.finish("gateway", "transport error")
		return fmt.Errorf("sip: send 200: %w", err)
	}
	sent := time.Now()
	c.mu.Lock()
	c.okSent = sent
	letGo := c.txLetGo
	c.mu.Unlock()
	if letGo {
		stopTimerL(c.tx) // released while Respond was still arming it (timerl.go)
	}
	if c.srv.debug() {
		c.logger().Debug("sip answered", "codec", c.media.Codec.Name, "remote_rtp", c.media.Remote, "direction", c.media.Direction)
	}

	err = c.awaitAck(res, ack)
	c.closeInvite()
	if errors.Is(err, ErrAckTimeout) {
		c.logger().Warn("no ACK for 200 OK, hanging up", "waited", 64*c.srv.cfg.T1)
		c.byeAndFinish("ack-timeout", false)
	}
	if err == nil && c.hasSessionTimer() {
		go c.runSessionTimer() // session_timer.go
	}
	return err
}

func (c *InboundCall) okWithSDP(body []byte) *sip.Response {
	res := c.response(200, "OK", body)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	c.mu.Lock()
	c.timer.addHeaders(res)
	c.mu.Unlock()
	return res
}

// awaitAck retransmits res at T1, 2*T1, ... capped at T2 until ack closes or 64*T1 passes.
func (c *InboundCall) awaitAck(res *sip.Response, ack <-chan struct{}) error {
	t1, t2 := c.srv.cfg.T1, c.srv.cfg.T2
	retransmit := !sip.IsReliable(c.dlg.transport)
	interval := t1
	timer := time.NewTimer(interval)
	defer timer.Stop()
	deadline := time.NewTimer(64 * t1)
	defer deadline.Stop()
	for {
		select {
		case <-ack:
			c.mu.Lock()
			if c.state == stateAnswering {
				c.state = stateConfirmed
			}
			c.mu.Unlock()
			return nil
		case <-c.ctx.Done():
			if by, cause := c.EndCause(); by == "caller" && cause == "bye" {
				return nil // the BYE overtook its ACK: the caller did get our 2xx
			}
			return ErrCallEnded
		case <-deadline.C:
			return ErrAckTimeout
		case <-timer.C:
			if retransmit {
				if err := c.tx.Respond(res); err != nil {
					c.logger().Debug("2xx retransmit failed", "error", err)
				}
			}
			interval = min(2*interval, t2)
			timer.Reset(interval)
		}
	}
}

// Hangup ends the call: BYE once answered, else a final 480 (or 487-style) response.
func (c *InboundCall) Hangup(reason string) error { return c.hangup(reason, false) }

// hangup with force skips waiting for the ACK of our 2xx (shutdown).
func (c *InboundCall) hangup(reason string, force bool) error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch st {
	case stateEnded:
		return nil
	case stateEarly:
		err := c.reject(480, "Temporarily Unavailable", reason)
		if errors.Is(err, ErrCallEnded) {
			return nil
		}
		return err
	case stateAnswering:
		if force {
			break
		}
		// RFC 3261 15: no BYE before the ACK; Answer sends it if the ACK never comes.
		select {
		case <-c.inviteDone:
		case <-c.ctx.Done():
			return nil
		}
	}
	return c.byeAndFinish(reason, force)
}

// byeAndFinish sends our BYE and ends the call.
func (c *InboundCall) byeAndFinish(reason string, hurry bool) error {
	c.mu.Lock()
	if c.state == stateEnded {
		c.mu.Unlock()
		return nil
	}
	c.state = stateEnded
	c.mu.Unlock()
	c.finish("gateway", reason)
	timeout := c.srv.byeTimeout()
	if hurry {
		timeout = min(timeout, 2*time.Second)
	}
	err := c.dlg.bye(c.srv.client, timeout)
	if err != nil {
		c.logger().Warn("BYE failed", "error", err)
	}
	return err
}

// fail answers the INVITE with a server-side failure and ends the call.
func (c *InboundCall) fail(code int, reason, warning string) {
	res := c.response(code, reason, nil)
	if warning != "" {
		res.AppendHeader(sip.NewHeader("Warning", fmt.Sprintf("399 switchboard %q", warning)))
	}
	_ = c.tx.Respond(res)
	c.finish("gateway", warning)
}

// finish marks the call ended once: cause recorded, context cancelled, dialog dropped.
func (c *InboundCall) finish(by, cause string) {
	c.mu.Lock()
	c.state = stateEnded
	first := c.endBy == ""
	if first {
		c.endBy, c.endCause = by, cause
	}
	c.mu.Unlock()
	if first && c.srv.debug() {
		c.logger().Debug("sip dialog ended", "by", by, "cause", cause)
	}
	c.cancel()
	c.srv.dialogs.remove(c.dlg.key)
	c.closeInvite()
}

func (c *InboundCall) closeInvite() {
	c.doneOnce.Do(func() { close(c.inviteDone) })
}

// onCancel runs inside sipgo's transaction FSM when a CANCEL matched our INVITE: sipgo has
// answered it 200 and sends the 487 itself, so we only end the call. No tx calls here.
func (c *InboundCall) onCancel(*sip.Request) {
	c.finish("caller", "cancel")
}

// transactionGone ends a call whose INVITE transaction died under it (e.g. TCP closed).
func (c *InboundCall) transactionGone() {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == stateEarly {
		if errors.Is(c.tx.Err(), sip.ErrTransactionCanceled) {
			c.finish("caller", "cancel")
			return
		}
		c.finish("caller", "transaction terminated")
	}
}

// gotAck matches an ACK to the 2xx it acknowledges.
func (c *InboundCall) gotAck(req *sip.Request) { c.ackFor(req.CSeq().SeqNo) }

// ackFor ends the wait for the ACK to the 2xx to the INVITE of CSeq seq.
func (c *InboundCall) ackFor(seq uint32) {
	c.mu.Lock()
	ch, ok := c.ackWait[seq]
	if ok {
		delete(c.ackWait, seq)
	}
	c.mu.Unlock()
	if ok {
		close(ch)
	}
}

// acked reports whether the ACK for the 2xx to the INVITE of CSeq seq arrived.
func (c *InboundCall) acked(seq uint32) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, waiting := c.ackWait[seq]
	return !waiting
}

// letGo stops the released INVITE transaction's Timer L. The ACK that
// released it may have overtaken Answer, still inside Respond where sipgo arms
// the timer after the 2xx is sent: of letGo and Answer, whichever comes second
// under mu finds the timer and stops it.
func (c *InboundCall) letGo() {
	c.mu.Lock()
	c.txLetGo = true
	c.mu.Unlock()
	stopTimerL(c.tx)
}

// byeFromCaller ends the call after we answered the caller's BYE with 200.
func (c *InboundCall) byeFromCaller() {
	c.mu.Lock()
	early := c.state == stateEarly
	c.state = stateEnded
	c.mu.Unlock()
	if early {
		// RFC 3261 15.1.2: a BYE on the early dialog terminates the INVITE with 487.
		_ = c.tx.Respond(c.response(487, "Request Terminated", nil))
	} else {
		// Past Answer the BYE stands for the ACK it may have overtaken: the INVITE
		// transaction is let go as after an ACK (server.go), not held for 64*T1.
		c.ackFor(c.invite.CSeq().SeqNo)
	}
	c.finish("caller", "bye")
}

func defaultReason(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 603:
		return "Decline"
	}
	return "Failed"
}
