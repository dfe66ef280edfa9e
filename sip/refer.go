package sip

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// Errors of a blind transfer.
var (
	ErrNotAnswered     = errors.New("sip: transfer needs an answered call")
	ErrTransferPending = errors.New("sip: a transfer is already in progress")
	ErrBadReferTarget  = errors.New("sip: transfer target is not a SIP URI or a number")
	// ErrReferNoFinal: the peer ended the refer subscription without a final status.
	ErrReferNoFinal = errors.New("sip: refer subscription ended without a final status")
)

// referState is the one transfer a call may have in progress: the NOTIFYs of
// its implicit subscription (RFC 3515) go to notify as sipfrag status codes.
type referState struct {
	mu     sync.Mutex
	notify chan int
}

// Refer asks the caller's side to call target instead of us (a blind transfer,
// RFC 3515): REFER inside the dialog, then NOTIFYs carrying the new call's
// progress. It returns nil once a NOTIFY reports a 2xx; the caller of Refer
// then ends our part of the call. A refused REFER or a failed new call is a
// *StatusError, and the call stays up. target is a sip:/sips:/tel: URI, or a
// bare number sent as sip:NUMBER@ the caller's host.
func (c *InboundCall) Refer(ctx context.Context, target string) error {
	c.mu.Lock()
	st := c.state
	c.mu.Unlock()
	switch st {
	case stateEnded:
		return ErrCallEnded
	case stateEarly, stateAnswering:
		return ErrNotAnswered
	}
	referTo, err := c.referTarget(target)
	if err != nil {
		return err
	}
	ch := make(chan int, 8)
	c.refer.mu.Lock()
	if c.refer.notify != nil {
		c.refer.mu.Unlock()
		return ErrTransferPending
	}
	c.refer.notify = ch // before the REFER: a NOTIFY may overtake the 202
	c.refer.mu.Unlock()
	defer func() {
		c.refer.mu.Lock()
		c.refer.notify = nil
		c.refer.mu.Unlock()
	}()

	req := c.dlg.newRequest(sip.REFER)
	req.AppendHeader(sip.NewHeader("Refer-To", "<"+referTo+">"))
	req.AppendHeader(sip.NewHeader("Referred-By", "<"+c.dlg.localURI.String()+">"))
	c.logger().Info("sip REFER", "refer_to", referTo)
	res, err := c.dlg.do(ctx, c.srv.client, req)
	if err != nil {
		if c.ctx.Err() != nil {
			return ErrCallEnded
		}
		return err
	}
	if !res.IsSuccess() {
		return &StatusError{Code: res.StatusCode, Reason: res.Reason}
	}
	c.logger().Debug("sip REFER accepted", "status", res.StatusCode)
	for {
		select {
		case code := <-ch:
			switch {
			case code < 0:
				return ErrReferNoFinal
			case code < 200:
				continue
			case code < 300:
				c.logger().Info("sip transfer succeeded", "refer_to", referTo, "status", code)
				return nil
			default:
				return &StatusError{Code: code, Reason: "transfer target answered " + strconv.Itoa(code)}
			}
		case <-c.ctx.Done():
			return ErrCallEnded
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// referTarget is the Refer-To URI for target.
func (c *InboundCall) referTarget(target string) (string, error) {
	target = strings.TrimSpace(target)
	lower := strings.ToLower(target)
	switch {
	case strings.HasPrefix(lower, "sip:"), strings.HasPrefix(lower, "sips:"):
		var u sip.Uri
		if err := sip.ParseUri(target, &u); err != nil || u.Host == "" {
			return "", ErrBadReferTarget
		}
		return u.String(), nil
	case strings.HasPrefix(lower, "tel:"):
		if !isDialString(target[4:]) {
			return "", ErrBadReferTarget
		}
		return target, nil
	case isDialString(target):
		c.dlg.mu.Lock()
		u := *c.dlg.remoteTarget.Clone()
		c.dlg.mu.Unlock()
		u.User, u.Password, u.Headers = target, "", nil
		return u.String(), nil
	}
	return "", ErrBadReferTarget
}

// isDialString accepts what a bare number or SIP user may hold.
func isDialString(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case strings.ContainsRune("+*#.-_", r):
		default:
			return false
		}
	}
	return true
}

// onNotify takes NOTIFYs inside our dialogs: the progress of a REFER we sent.
func (s *Server) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	c, ok := s.lookup(req)
	if !ok {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist", "")
		return
	}
	ev, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(headerValue(req, "Event"))), ";")
	if strings.TrimSpace(ev) != "refer" {
		s.respond(req, tx, 489, "Bad Event", "only refer subscriptions", sip.NewHeader("Allow-Events", "refer"))
		return
	}
	c.refer.mu.Lock()
	ch := c.refer.notify
	c.refer.mu.Unlock()
	if ch == nil {
		s.respond(req, tx, 481, "Subscription Does Not Exist", "")
		return
	}
	s.respond(req, tx, 200, "OK", "")
	code := sipfragStatus(req.Body())
	state := strings.ToLower(strings.TrimSpace(headerValue(req, "Subscription-State")))
	c.logger().Debug("sip NOTIFY", "sipfrag", code, "subscription_state", state)
	if code == 0 {
		if !strings.HasPrefix(state, "terminated") {
			return
		}
		code = -1
	}
	select {
	case ch <- code:
	default:
	}
}

// sipfragStatus is the status code of a message/sipfrag body
// ("SIP/2.0 200 OK"), or 0 if it holds none.
func sipfragStatus(body []byte) int {
	line, _, _ := bytes.Cut(bytes.TrimLeft(body, " \r\n"), []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 2 || !strings.HasPrefix(strings.ToUpper(f[0]), "SIP/") {
		return 0
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 699 {
		return 0
	}
	return code
}
