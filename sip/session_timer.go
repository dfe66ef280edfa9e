package sip

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028): a dialog whose refreshes stop is ended with BYE,
// so a call whose far end vanished without a BYE does not live forever.

// sessionTimer is one call's session-timer state. Guarded by InboundCall.mu.
type sessionTimer struct {
	interval     time.Duration // 0: no session timer on this call
	weRefresh    bool          // we send the refreshes; else we expect them
	peerSupports bool          // the caller said Supported: timer
	peerUpdate   bool          // the caller allows UPDATE: we refresh with it rather than re-INVITE
	minSE        time.Duration // the larger of ours and the caller's Min-SE
}

// minSEFloor is RFC 4028's lowest Min-SE; Config.MinSE may go below it only for tests.
const minSEFloor = 90 * time.Second

// sessionHeader reads Session-Expires (or its compact form x): the interval
// and the refresher parameter ("uac", "uas" or "").
func sessionHeader(req *sip.Request) (d time.Duration, refresher string, ok bool) {
	v := headerValue(req, "Session-Expires")
	if v == "" {
		v = headerValue(req, "x")
	}
	if v == "" {
		return 0, "", false
	}
	parts := strings.Split(v, ";")
	n, err := strconv.ParseUint(strings.TrimSpace(parts[0]), 10, 32)
	if err != nil || n == 0 {
		return 0, "", false
	}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			refresher = strings.ToLower(strings.TrimSpace(val))
		}
	}
	return time.Duration(n) * time.Second, refresher, true
}

// headerGetter is a request or a response.
type headerGetter interface {
	GetHeader(name string) sip.Header
	GetHeaders(name string) []sip.Header
}

// minSEHeader reads Min-SE, or 0.
func minSEHeader(m headerGetter) time.Duration {
	h := m.GetHeader("Min-SE")
	if h == nil {
		return 0
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
	if err != nil {
		return 0
	}
	return time.Duration(n) * time.Second
}

// hasOption reports whether a Supported/Require/Allow-style header list names opt.
func hasOption(m headerGetter, opt string, names ...string) bool {
	for _, name := range names {
		for _, h := range m.GetHeaders(name) {
			for _, v := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(v), opt) {
					return true
				}
			}
		}
	}
	return false
}

// seconds writes d as whole seconds, rounding up.
func seconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// sessionTimerFor reads the INVITE's session-timer request against our
// configuration. ok false: the interval is below our Min-SE and the INVITE
// gets 422 with our Min-SE.
func (s *Server) sessionTimerFor(req *sip.Request) (st sessionTimer, ok bool) {
	st.peerSupports = hasOption(req, "timer", "Supported", "k")
	st.peerUpdate = hasOption(req, "UPDATE", "Allow")
	st.minSE = max(s.cfg.MinSE, minSEHeader(req))
	se, refresher, has := sessionHeader(req)
	switch {
	case has && se < s.cfg.MinSE:
		return st, false
	case has:
		st.interval = max(se, st.minSE)
		// Without Supported: timer the caller cannot refresh: we do (RFC 4028 §9).
		st.weRefresh = refresher == "uas" || !st.peerSupports
	case st.peerSupports && s.cfg.SessionExpires > 0:
		st.interval = max(s.cfg.SessionExpires, st.minSE)
	}
	return st, true
}

// rejectTooSmall answers an INVITE, re-INVITE or UPDATE whose Session-Expires is below our Min-SE.
func (s *Server) rejectTooSmall(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, 422, "Session Interval Too Small", "", sip.NewHeader("Min-SE", seconds(s.cfg.MinSE)))
}

// addHeaders puts the session-timer headers in our 2xx to an INVITE, re-INVITE or UPDATE.
func (st *sessionTimer) addHeaders(res *sip.Response) {
	res.AppendHeader(sip.NewHeader("Supported", "timer"))
	if st.interval == 0 {
		return
	}
	// refresher is said from the answered request's point of view: uac is its sender.
	who := "uac"
	if st.weRefresh {
		who = "uas"
	}
	res.AppendHeader(sip.NewHeader("Session-Expires", seconds(st.interval)+";refresher="+who))
	if st.peerSupports {
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
}

// refreshedBy takes a re-INVITE or UPDATE from the caller: its Session-Expires
// (if any) sets the new interval and who refreshes. ok false: it gets 422.
func (st *sessionTimer) refreshedBy(req *sip.Request, ourMin time.Duration) (ok bool) {
	se, refresher, has := sessionHeader(req)
	if !has {
		return true // the interval stands; this request was the refresh
	}
	if se < ourMin {
		return false
	}
	if hasOption(req, "timer", "Supported", "k") {
		st.peerSupports = true
	}
	st.interval = max(se, st.minSE)
	st.weRefresh = refresher == "uas" || !st.peerSupports
	return true
}

// sessionExpired is the hang-up cause when the session timer runs out.
const sessionExpired = "session expired"

// hasSessionTimer reports whether the call negotiated a session timer.
func (c *InboundCall) hasSessionTimer() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timer.interval != 0
}

// runSessionTimer runs after the ACK of our 2xx for the call's life: it
// refreshes at half the interval when we are the refresher, and sends BYE
// when the interval passes without a refresh (RFC 4028 §10).
func (c *InboundCall) runSessionTimer() {
	for {
		c.mu.Lock()
		st := c.timer
		c.mu.Unlock()
		if st.interval == 0 {
			return
		}
		// The refresher refreshes at half the interval; the other side ends the
		// session a little before it runs out (min(32 s, interval/3) early).
		wait := st.interval - min(32*time.Second, st.interval/3)
		if st.weRefresh {
			wait = st.interval / 2
		}
		t := time.NewTimer(wait)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return
		case <-c.refreshed:
			t.Stop()
			continue
		case <-t.C:
		}
		if !st.weRefresh {
			c.logger().Info("session timer expired without a refresh, hanging up", "interval", st.interval)
			_ = c.byeAndFinish(sessionExpired, false)
			return
		}
		if !c.refreshSession(st) {
			// A failed refresh leaves the rest of the interval to the caller's side.
			t := time.NewTimer(st.interval - wait - min(32*time.Second, st.interval/3))
			select {
			case <-c.ctx.Done():
				t.Stop()
				return
			case <-c.refreshed:
				t.Stop()
				continue
			case <-t.C:
			}
			c.logger().Info("session refresh failed and the session expired, hanging up", "interval", st.interval)
			_ = c.byeAndFinish(sessionExpired, false)
			return
		}
	}
}

// refreshSession sends one refresh: UPDATE without a body when the caller
// allows it, else a re-INVITE with our current SDP. true: a 2xx came back.
func (c *InboundCall) refreshSession(st sessionTimer) bool {
	interval := st.interval
	for attempt := 0; attempt < 2; attempt++ {
		method := sip.INVITE
		if st.peerUpdate {
			method = sip.UPDATE
		}
		req := c.dlg.newRequest(method)
		req.AppendHeader(sip.NewHeader("Session-Expires", seconds(interval)+";refresher=uac"))
		req.AppendHeader(sip.NewHeader("Min-SE", seconds(st.minSE)))
		req.AppendHeader(sip.NewHeader("Supported", "timer"))
		req.AppendHeader(sip.NewHeader("Allow", allowMethods))
		if method == sip.INVITE {
			c.mu.Lock()
			body, err := answerSDP(c.offer, c.media, c.localRTP, c.ip, c.sessionID, c.sdpVersion)
			c.mu.Unlock()
			if err != nil {
				c.logger().Warn("session refresh: SDP", "error", err)
				return false
			}
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(body)
		}
		ctx, cancel := context.WithTimeout(c.ctx, 64*c.srv.cfg.T1)
		res, err := c.dlg.do(ctx, c.srv.client, req)
		cancel()
		if err != nil {
			if c.ctx.Err() != nil {
				return false
			}
			c.logger().Warn("session refresh failed", "method", method, "error", err)
			return false
		}
		if method == sip.INVITE && res.IsSuccess() {
			ack := c.dlg.newRequest(sip.ACK)
			ack.CSeq().SeqNo = req.CSeq().SeqNo
			c.dlg.route(c.srv.client.TransportLayer(), ack)
			if err := c.srv.client.WriteRequest(ack, noBuild); err != nil {
				c.logger().Warn("session refresh: ACK", "error", err)
			}
		}
		switch {
		case res.IsSuccess():
			c.mu.Lock()
			if se, refresher, ok := sessionResponse(res); ok {
				c.timer.interval = max(se, c.timer.minSE)
				c.timer.weRefresh = refresher != "uas" // in our request's terms: uac is us
			}
			c.mu.Unlock()
			c.logger().Debug("session refreshed", "method", method, "interval", interval)
			return true
		case res.StatusCode == 422:
			if m := minSEHeader(res); m > interval {
				interval = m
				c.mu.Lock()
				c.timer.minSE = max(c.timer.minSE, m)
				c.mu.Unlock()
				continue
			}
		case res.StatusCode == 481 || res.StatusCode == 408:
			// The dialog is gone at the far end (RFC 3261 12.2.1.2).
			c.logger().Info("session refresh: dialog gone, hanging up", "status", res.StatusCode)
			_ = c.byeAndFinish(sessionExpired, false)
			return false
		}
		c.logger().Warn("session refresh refused", "method", method, "status", res.StatusCode)
		return false
	}
	return false
}

// sessionResponse reads Session-Expires from a response to our refresh.
func sessionResponse(res *sip.Response) (time.Duration, string, bool) {
	v := ""
	if h := res.GetHeader("Session-Expires"); h != nil {
		v = h.Value()
	} else if h := res.GetHeader("x"); h != nil {
		v = h.Value()
	}
	if v == "" {
		return 0, "", false
	}
	fake := sip.NewRequest(sip.UPDATE, sip.Uri{})
	fake.AppendHeader(sip.NewHeader("Session-Expires", v))
	return sessionHeader(fake)
}

// noteRefresh restarts the session timer after a successful re-INVITE or UPDATE.
func (c *InboundCall) noteRefresh() {
	select {
	case c.refreshed <- struct{}{}:
	default:
	}
}
