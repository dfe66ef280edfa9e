package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"
)

// Registration retry backoff: doubled after each failure, from the first to the last.
var (
	registerRetryFirst = time.Second
	registerRetryMax   = time.Minute
)

// startTrunks runs the REGISTER and OPTIONS loops of the outbound trunks until ctx ends.
func (s *Server) startTrunks(ctx context.Context) {
	for _, t := range s.trunks.out {
		if t.Register <= 0 && t.OptionsPing <= 0 {
			continue
		}
		if !s.waitUDPReady() {
			s.log.Error("sip trunks: UDP listener not ready; no REGISTER or OPTIONS pings")
			return
		}
		if t.Register > 0 {
			go s.keepRegistered(ctx, t)
		}
		if t.OptionsPing > 0 {
			go s.pingLoop(ctx, t)
		}
	}
}

// waitUDPReady waits until sipgo has our UDP listener in its pool: requests sent before
// that would leave from another socket, and the answers would miss us.
func (s *Server) waitUDPReady() bool {
	if len(s.udp) == 0 {
		return false
	}
	for range 200 {
		if conn, err := s.ua.TransportLayer().GetConnection("udp", s.udp[0].LocalAddr().String()); err == nil {
			conn.TryClose()
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// keepRegistered keeps us registered with the trunk: refreshed before the granted expiry
// runs out, retried with backoff after a failure, removed (Expires: 0) on shutdown.
func (s *Server) keepRegistered(ctx context.Context, t *outTrunk) {
	r := &registration{s: s, t: t, callID: uuid.NewString(), fromTag: sip.GenerateTagN(16), cseq: 1}
	log := s.log.With("trunk", t.Name)
	backoff := registerRetryFirst
	for {
		granted, err := r.register(ctx, t.Register)
		if ctx.Err() != nil {
			break
		}
		var wait time.Duration
		if err != nil {
			t.registrar.Store(false)
			wait = backoff
			backoff = min(2*backoff, registerRetryMax)
			log.Warn("trunk registration failed", "err", err, "retry_in", wait)
		} else {
			t.registrar.Store(true)
			backoff = registerRetryFirst
			wait = granted - min(granted/2, time.Minute)
			log.Info("trunk registered", "expires", granted, "refresh_in", wait)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
			continue
		}
		break
	}
	if t.registrar.Load() {
		uctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := r.register(uctx, 0)
		cancel()
		log.Info("trunk unregistered", "err", err)
	}
}

type registration struct {
	s       *Server
	t       *outTrunk
	callID  string
	fromTag string
	cseq    uint32
}

// register sends one REGISTER (answering a digest challenge) and returns the granted expiry.
func (r *registration) register(ctx context.Context, expires time.Duration) (time.Duration, error) {
	t := r.t
	targets, err := resolveTargets(ctx, r.s.cfg.Resolver, t.Host, t.Port, t.Transport)
	if err != nil {
		return 0, err
	}
	var last error
	for _, dest := range targets {
		granted, err := r.registerAt(ctx, dest, expires)
		if err == nil || ctx.Err() != nil {
			return granted, err
		}
		var se *StatusError
		if errors.As(err, &se) && se.Code != 503 {
			return 0, err // the registrar said no; another target will say the same
		}
		last = err
	}
	return 0, last
}

func (r *registration) registerAt(ctx context.Context, dest netip.AddrPort, expires time.Duration) (time.Duration, error) {
	t := r.t
	user := t.Auth.User
	if user == "" {
		user = t.CallerID
	}
	aor := sip.Uri{Scheme: "sip", User: user, Host: t.Host}
	req := r.s.trunkRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: t.Host, Port: t.Port}, dest, r.callID, r.fromTag, r.cseq)
	req.From().Address = aor
	req.To().Address = aor
	contact := r.s.trunkContact(user)
	req.AppendHeader(contact)
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(int(expires/time.Second))))
	defer func() { r.cseq = req.CSeq().SeqNo + 1 }()
	for attempt := 0; ; attempt++ {
		res, err := r.s.roundTrip(ctx, req, 8*time.Second)
		if err != nil {
			return 0, err
		}
		if (res.StatusCode == 401 || res.StatusCode == 407) && t.Auth.User != "" && attempt < 2 {
			if err := authorize(req, res, t.Auth); err != nil {
				return 0, err
			}
			req.Via().Params.Add("branch", sip.GenerateBranchN(16))
			continue
		}
		if !res.IsSuccess() {
			return 0, &StatusError{Code: res.StatusCode, Reason: res.Reason}
		}
		return grantedExpiry(res, contact, expires), nil
	}
}

// grantedExpiry is what the registrar granted for our Contact (its expires parameter, else
// the Expires header), or what we asked for.
func grantedExpiry(res *sip.Response, ours *sip.ContactHeader, asked time.Duration) time.Duration {
	for _, h := range res.GetHeaders("Contact") {
		if c, ok := h.(*sip.ContactHeader); ok && c.Address.Host == ours.Address.Host && c.Address.Port == ours.Address.Port {
			if v, ok := c.Params.Get("expires"); ok {
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					return time.Duration(n) * time.Second
				}
			}
		}
	}
	if h := res.GetHeader("Expires"); h != nil {
		if n, err := strconv.Atoi(h.Value()); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
	}
	return asked
}

// trunkRequest builds an out-of-dialog request that leaves from our UDP listener to dest.
func (s *Server) trunkRequest(method sip.RequestMethod, ruri sip.Uri, dest netip.AddrPort, callID, fromTag string, cseq uint32) *sip.Request {
	laddr := addrOf(s.udp[0].LocalAddr().String())
	ip := s.cfg.AdvertiseIP
	if !ip.IsValid() {
		ip, _ = netip.ParseAddr(laddr.IP.String())
	}
	req := sip.NewRequest(method, ruri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: ip.String(), Port: laddr.Port, Params: sip.NewParams()}
	via.Params.Add("branch", sip.GenerateBranchN(16))
	via.Params.Add("rport", "")
	req.AppendHeader(via)
	maxfwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxfwd)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "switchboard", Host: ip.String()}, Params: sip.NewParams()}
	from.Params.Add("tag", fromTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: ruri, Params: sip.NewParams()})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	if s.cfg.UserAgent != "" {
		req.AppendHeader(sip.NewHeader("User-Agent", s.cfg.UserAgent))
	}
	req.SetBody(nil)
	req.SetTransport("UDP")
	req.SetDestination(dest.String())
	laddr.Copy(&req.Laddr)
	return req
}

// trunkContact is the Contact a carrier reaches us on: our UDP listener.
func (s *Server) trunkContact(user string) *sip.ContactHeader {
	laddr := addrOf(s.udp[0].LocalAddr().String())
	ip := s.cfg.AdvertiseIP
	if !ip.IsValid() {
		ip, _ = netip.ParseAddr(laddr.IP.String())
	}
	return &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: ip.String(), Port: laddr.Port}, Params: sip.NewParams()}
}

// roundTrip runs a non-INVITE client transaction and returns its final response.
func (s *Server) roundTrip(ctx context.Context, req *sip.Request, timeout time.Duration) (*sip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tx, err := s.client.TransactionRequest(ctx, req, noBuild)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				return res, nil
			}
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("sip: %s: transaction ended without a final response", req.Method)
		case <-ctx.Done():
			return nil, fmt.Errorf("sip: %s to %s: no answer: %w", req.Method, req.Destination(), ctx.Err())
		}
	}
}
