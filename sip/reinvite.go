package sip

import (
	"time"

	"github.com/emiago/sipgo/sip"
)

// MediaChanges delivers the call's media each time a re-INVITE or UPDATE
// changes it (hold, resume, a new codec or address), after our 2xx is sent.
// Only the latest change waits: a slow reader gets the current state.
func (c *InboundCall) MediaChanges() <-chan Media { return c.changes }

// Held reports whether m puts the call on hold for us: we must not send
// (the caller offered sendonly or inactive, so we answered recvonly or inactive).
func (m Media) Held() bool { return m.Direction == "recvonly" || m.Direction == "inactive" }

// publish hands the latest media to MediaChanges, replacing an unread one.
func (c *InboundCall) publish(m Media) {
	for {
		select {
		case c.changes <- m:
			return
		default:
		}
		select {
		case <-c.changes:
		default:
		}
	}
}

// modify answers a re-INVITE or an UPDATE on the confirmed dialog (hold, resume,
// codec change, session refresh). The answer mirrors the offered direction
// (sendonly → recvonly, inactive → inactive), keeps the current codec while it
// is offered, and a request without SDP gets no SDP back in an UPDATE.
func (c *InboundCall) modify(req *sip.Request, tx sip.ServerTransaction, invite bool) {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	if st == stateAnswering {
		// The ACK may be a moment behind this request (sipgo handles each in its own goroutine).
		select {
		case <-c.inviteDone:
		case <-time.After(2 * c.srv.cfg.T1):
		}
		c.mu.Lock()
		st = c.state
		c.mu.Unlock()
	}
	if st != stateConfirmed {
		c.srv.respond(req, tx, 491, "Request Pending", "")
		return
	}
	c.mu.Lock()
	timer := c.timer
	c.mu.Unlock()
	if !timer.refreshedBy(req, c.srv.cfg.MinSE) {
		c.srv.rejectTooSmall(req, tx)
		return
	}
	if req.Contact() != nil {
		c.dlg.setTarget(*req.Contact().Address.Clone()) // target refresh (RFC 3261 12.2.2)
	}
	old := c.Media()
	newMedia := old
	body := req.Body()
	var o *offer
	if len(body) > 0 {
		var err error
		o, err = parseSDP(body)
		if err != nil {
			c.srv.respond(req, tx, 488, "Not Acceptable Here", err.Error())
			return
		}
		// The codec in use first: a re-offer listing it does not change it (RFC 6337 5.3).
		prefs := append([]string{old.Codec.Name}, c.srv.cfg.Codecs...)
		if newMedia, err = negotiate(o, prefs); err == nil {
			newMedia.SRTP, err = renegotiateSRTP(o, old.SRTP) // the call's SDES keys stay (sdes.go)
		}
		if err != nil {
			c.srv.respond(req, tx, 488, "Not Acceptable Here", err.Error())
			return
		}
	}
	c.mu.Lock()
	var answer []byte
	var err error
	if o != nil || invite {
		if o == nil {
			o = c.offer // a re-INVITE without SDP: our 2xx carries an offer of what we have
		}
		if newMedia != old {
			c.sdpVersion++ // a new version only when the session changed (RFC 3264 8)
		}
		answer, err = answerSDP(o, newMedia, c.localRTP, c.ip, c.sessionID, c.sdpVersion)
	}
	c.media = newMedia
	if o != nil {
		c.offer = o
	}
	c.timer = timer
	var ack chan struct{}
	if invite {
		ack = make(chan struct{})
		c.ackWait[req.CSeq().SeqNo] = ack
	}
	c.mu.Unlock()
	if err != nil {
		c.srv.respond(req, tx, 500, "Server Internal Error", err.Error())
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	res.AppendHeader(c.dlg.contact.Clone())
	if answer != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	timer.addHeaders(res)
	if err := tx.Respond(res); err != nil {
		c.logger().Warn("re-INVITE answer failed", "error", err)
		return
	}
	c.noteRefresh()
	if newMedia != old {
		c.logger().Info("media updated", "direction", newMedia.Direction, "remote_rtp", newMedia.Remote, "codec", newMedia.Codec.Name)
		c.publish(newMedia)
	}
	if invite && c.awaitAck(res, ack) == nil {
		// Let the transaction go after T1, as the INVITE's (server.go); this
		// goroutine sent the 2xx, so the Timer L it armed is there to stop.
		c.srv.releaseLater(req, tx, func() { stopTimerL(tx) })
	}
}
