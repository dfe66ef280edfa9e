package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
	"github.com/switchboard-voip/switchboard/sip"
)

// A route whose target is transfer forwards the call: the destination is
// dialled as a second leg while the caller hears ringing, the caller is
// answered only when the far end answers, and the two legs are then bridged
// on the call's 20 ms clock (the leg of b2bua.go). A leg that fails before
// answer fails the target, so the route's fallbacks run, or the caller gets
// the leg's status.

// forwardRingTimeout bounds the ringing of a forwarded call; under a carrier's
// usual INVITE timer so the caller gets our 480, not its own timeout.
var forwardRingTimeout = 60 * time.Second

// errForwardNoAnswer ends a forward whose destination rang too long.
var errForwardNoAnswer = errors.New("forward destination did not answer")

// forwardError is a forward that failed before answer, with the status the
// caller gets for it when no fallback takes the call.
type forwardError struct {
	status int
	reason string
	err    error
}

func (e *forwardError) Error() string { return fmt.Sprintf("forward failed (%d): %v", e.status, e.err) }
func (e *forwardError) Unwrap() error { return e.err }

// forward is a transfer target made ready; SetPlan binds it to the gateway
// that places its legs.
type forward struct {
	target dialplan.Target
	g      *Gateway
}

// SetTrunks gives the gateway the outbound trunks that transfer targets to a
// number dial through; *sip.Server satisfies Trunks. Call it before calls arrive.
func (g *Gateway) SetTrunks(t Trunks) { g.trunks.Store(&t) }

// bindForwards points the transfer targets of a prepared route at g.
func (g *Gateway) bindForwards(a agent.Agent) {
	c, ok := a.(*chain)
	if !ok {
		return
	}
	for _, st := range c.steps {
		if f, ok := st.agent.(*forward); ok {
			f.g = g
		}
	}
}

// Start implements agent.Agent: it returns once the far end has answered, so
// the gateway answers the caller then and not before.
func (f *forward) Start(ctx context.Context, call agent.Call, ctl agent.Controls) (agent.Session, error) {
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("forward_to", f.target.To)
	if f.target.Trunk != "" {
		log = log.With("forward_trunk", f.target.Trunk)
	}
	if f.g == nil {
		return nil, &forwardError{status: 503, err: errors.New("transfer target not bound to a gateway")}
	}
	log.Info("forwarding")
	start := time.Now()
	l, err := f.g.dialForward(ctx, f.target, call.From, log)
	if err != nil {
		var fe *forwardError
		if errors.As(err, &fe) {
			log.Warn("forward failed", "status", fe.status, "err", fe.err)
		}
		return nil, err
	}
	log.Info("forward answered", "after", time.Since(start).Round(time.Millisecond),
		"codec", l.call.Media().Codec.Name, "remote_rtp", l.call.Media().Remote)
	fs := &forwardSession{leg: l, ctl: ctl, stop: make(chan struct{})}
	go fs.watch()
	return fs, nil
}

// dialForward places the leg: a SIP URI directly, or through the target's
// trunk (its guard, caps and credentials) for a number or a URI that names one.
func (g *Gateway) dialForward(ctx context.Context, t dialplan.Target, from string, log *slog.Logger) (*leg, error) {
	var tc *sip.TrunkCall
	if t.Trunk != "" {
		tp := g.trunks.Load()
		if tp == nil {
			return nil, &forwardError{status: 503, err: errors.New("no outbound trunks on this gateway")}
		}
		to := t.To
		if isSIPURI(to) {
			to = uriUser(to)
		}
		var err error
		if tc, err = (*tp).ReserveOutbound(t.Trunk, to); err != nil {
			return nil, &forwardError{status: 503, err: fmt.Errorf("trunk %s refused %s: %w", t.Trunk, to, err)}
		}
	}
	pcmu, _ := media.CodecByName("PCMU")
	stream, err := g.ports.Open(media.StreamConfig{Codec: pcmu, DTMFPayloadType: 101, Timeout: g.mediaTimeout, Logger: log})
	if err != nil {
		if tc != nil {
			tc.Release()
		}
		return nil, &forwardError{status: 503, err: fmt.Errorf("no media port: %w", err)}
	}
	dctx, cancel := context.WithTimeoutCause(ctx, forwardRingTimeout, errForwardNoAnswer)
	defer cancel()
	progress := func(status int, early *sip.Media) {
		if early != nil {
			// The caller has our 180; the far end's early media only primes the leg's codec.
			log.Info("forward early media", "status", status, "remote_rtp", early.Remote, "codec", early.Codec.Name)
			useMedia(stream, *early, log)
			return
		}
		log.Info("forward ringing", "status", status)
	}
	var call *sip.OutboundCall
	if tc != nil {
		call, err = tc.Dial(dctx, sip.TrunkDialOptions{From: from, LocalRTP: stream.LocalAddr(), Codecs: offerCodecs, OnProgress: progress})
	} else {
		call, err = sip.Dial(dctx, sip.DialOptions{Target: t.To, From: from, LocalRTP: stream.LocalAddr(),
			Codecs: offerCodecs, Logger: log, OnProgress: progress})
	}
	if err != nil {
		stream.Close()
		if ctx.Err() != nil {
			return nil, err // the caller went away; no status to give
		}
		if errors.Is(context.Cause(dctx), errForwardNoAnswer) {
			err = errForwardNoAnswer
		}
		status, reason := legFailStatus(err)
		return nil, &forwardError{status: status, reason: reason, err: err}
	}
	useMedia(stream, call.Media(), log)
	return &leg{call: call, stream: stream, log: log, legFrame: make([]int16, pcm.FrameSamples(stream.Rate()))}, nil
}

// legFailStatus is what the caller hears of a leg that failed before answer:
// the far end's own status where it means something to the caller, 480 when
// nobody answered, 408 when nothing answered at all.
func legFailStatus(err error) (int, string) {
	var se *sip.StatusError
	switch {
	case errors.Is(err, errForwardNoAnswer):
		return 480, "Temporarily Unavailable"
	case errors.As(err, &se):
		switch c := se.Code; {
		case c == 401 || c == 407: // our trunk credentials, not the caller's problem
			return 503, "Service Unavailable"
		case c == 487 || c < 400: // cancelled or redirected: nobody to talk to
			return 480, "Temporarily Unavailable"
		case c >= 400 && c <= 699:
			return c, se.Reason
		}
		return 503, "Service Unavailable"
	}
	return 408, "Request Timeout" // no final response (timer B, failover exhausted)
}

// forwardStatus is the status of a route whose targets all failed: the
// forward leg's when it was the last one tried and on_failure left the
// default 503.
func forwardStatus(errs []error, status int) (int, string) {
	var fe *forwardError
	if status == 503 && len(errs) > 0 && errors.As(errs[len(errs)-1], &fe) {
		return fe.status, fe.reason
	}
	return status, ""
}

// forwardSession is the answered leg as the call's target: the leg's frames
// go into the caller's playout queue at the caller's rate, and the far end's
// hang-up ends the call.
type forwardSession struct {
	*leg
	ctl      agent.Controls
	attached bool // on the clock goroutine only
	stop     chan struct{}
	once     sync.Once
}

// Audio implements agent.Session.
func (f *forwardSession) Audio(frame []int16, rate int) {
	if !f.attached {
		f.attached = true
		f.leg.attach(rate, func(s []int16) { f.ctl.Play(s, rate) })
	}
	f.leg.Audio(frame, rate)
}

// watch hangs up the caller when the far end ends its leg.
func (f *forwardSession) watch() {
	select {
	case <-f.call.Context().Done():
		f.log.Info("forward target hung up")
		f.ctl.Hangup("forward target hung up")
	case <-f.stream.Done():
		f.log.Warn("forward leg media lost", "err", f.stream.Err())
		f.ctl.Hangup("forward leg media lost")
	case <-f.stop:
	}
}

// Close implements agent.Session: BYE to the leg.
func (f *forwardSession) Close() {
	f.once.Do(func() { close(f.stop) })
	f.leg.Close()
}

func isSIPURI(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:")
}

// uriUser is the user part of a sip: URI, "" when it has none.
func uriUser(uri string) string {
	_, rest, _ := strings.Cut(uri, ":")
	user, _, found := strings.Cut(rest, "@")
	if !found {
		return ""
	}
	user, _, _ = strings.Cut(user, ";")
	return user
}
