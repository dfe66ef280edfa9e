package bridge

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/bridge/cdr"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/sip"
)

// Trunks reserves outbound trunk capacity; *sip.Server satisfies it.
type Trunks interface {
	ReserveOutbound(trunk, to string) (*sip.TrunkCall, error)
}

// OutboundRequest is a call to place: To through Trunk, from From, and once answered
// bridged to Target (a route named so, else the route the dialplan picks for Target).
type OutboundRequest struct {
	To, From, Trunk, Target string
}

// Errors of Originate that are the caller's to fix.
var (
	ErrUnknownTarget = errors.New("no route for that target")
	ErrDraining      = errors.New("gateway is draining")
)

// offerCodecs are what an outbound call offers; both run at 8 kHz, so the stream opened
// before the answer switches to whichever the carrier picks.
var offerCodecs = []string{"PCMU", "PCMA"}

// Originate checks and reserves the call synchronously (unknown trunk or target, a
// destination the toll-fraud guard refuses, a trunk at its caps) and places it in the
// background. The id is the call's SIP Call-ID, as Calls and Hangup know it.
func (g *Gateway) Originate(trunks Trunks, req OutboundRequest) (string, error) {
	p := g.plan.Load()
	route := outboundRoute(p.dp, req)
	if route == nil || route.Target.Type == dialplan.TypeReject {
		return "", ErrUnknownTarget
	}
	tc, err := trunks.ReserveOutbound(req.Trunk, req.To)
	if err != nil {
		return "", err
	}
	id := uuid.NewString()
	rec := g.records.Begin(id, req.From, req.To)
	rec.Trunk(req.Trunk)
	live, ctx, ok := g.trackOutbound(id, req, rec)
	if !ok {
		tc.Release()
		rec.Reject(503, "gateway draining")
		return "", ErrDraining
	}
	live.routed(g.metrics, route.Name, route.Target.Type)
	rec.Route(route.Name, route.Target.Type, cdrTarget(route.Target))
	go g.runOutbound(ctx, live, rec, tc, p, route, req, id)
	return id, nil
}

// outboundRoute is the route named req.Target, else the one the dialplan gives a call to it.
func outboundRoute(dp *dialplan.Plan, req OutboundRequest) *dialplan.Route {
	for _, r := range allRoutes(dp) {
		if r.Name == req.Target {
			return r
		}
	}
	if r, ok := dp.Route(dialplan.CallInfo{To: req.Target, From: req.To}); ok {
		return r
	}
	return nil
}

func (g *Gateway) trackOutbound(id string, req OutboundRequest, rec *cdr.Call) (*liveCall, context.Context, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	l := &liveCall{cancel: cancel, info: CallInfo{ID: id, RecordID: rec.ID(), From: req.From, To: req.To,
		Trunk: req.Trunk, State: StateRouting, Start: time.Now()}}
	g.calls[l] = struct{}{}
	g.wg.Add(1)
	g.metrics.callsActive.Inc()
	g.metrics.routeActive.WithLabelValues(l.labels()).Inc()
	return l, ctx, true
}

// runOutbound dials, follows early media, and once answered runs the route's target on
// the call's clock exactly as for an inbound call.
func (g *Gateway) runOutbound(ctx context.Context, live *liveCall, rec *cdr.Call, tc *sip.TrunkCall,
	p *plan, route *dialplan.Route, req OutboundRequest, id string) {
	defer g.untrack(live)
	defer rec.End(cdr.ByGateway, "ended without a recorded cause", 0, cdr.Quality{})
	start := time.Now()
	log := g.log.With("call_id", id, "direction", "outbound", "trunk", req.Trunk, "from", req.From, "to", req.To, "route", route.Name)

	pcmu, _ := media.CodecByName("PCMU")
	stream, err := g.ports.Open(media.StreamConfig{Codec: pcmu, DTMFPayloadType: 101, Timeout: g.mediaTimeout, Logger: log})
	if err != nil {
		tc.Release()
		log.Warn("no media port", "err", err)
		rec.Reject(503, "no media port: "+err.Error())
		g.count(live, "failed")
		return
	}
	defer stream.Close()
	live.setStream(stream, pcmu.Name)

	log.Info("dialling")
	call, err := tc.Dial(ctx, sip.TrunkDialOptions{
		CallID: id, From: req.From, LocalRTP: stream.LocalAddr(), Codecs: offerCodecs,
		OnProgress: func(status int, early *sip.Media) {
			live.update(func(i *CallInfo) { i.State = StateRinging })
			if early != nil {
				log.Info("early media", "status", status, "remote_rtp", early.Remote, "codec", early.Codec.Name)
				useMedia(stream, *early, log)
			} else {
				log.Info("ringing", "status", status)
			}
		},
	})
	if err != nil {
		status := 0
		var se *sip.StatusError
		if errors.As(err, &se) {
			status = se.Code
		}
		if ctx.Err() != nil {
			log.Info("call cancelled before answer", "cause", context.Cause(ctx))
			rec.End(cdr.ByGateway, "cancelled", 487, cdr.Quality{})
			g.count(live, "cancelled")
			return
		}
		log.Warn("outbound call failed", "status", status, "err", err)
		rec.End(cdr.ByGateway, "dial failed: "+err.Error(), status, cdr.Quality{})
		g.count(live, "failed")
		return
	}
	m := call.Media()
	useMedia(stream, m, log)
	answered := time.Now()
	rec.Answered()
	live.update(func(i *CallInfo) { i.State, i.Answer, i.Codec = StateUp, answered, m.Codec.Name })
	g.metrics.stage.WithLabelValues(stageRouteToAnswer).Observe(answered.Sub(start).Seconds())
	g.count(live, "answered")
	log.Info("answered", "local_rtp", stream.LocalAddr(), "remote_rtp", m.Remote, "codec", m.Codec.Name)

	// The call ends when the callee hangs up, the API hangs it up, or the target does.
	runCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	context.AfterFunc(call.Context(), func() { stop(errors.New("callee hung up")) })

	s := newSession(stream, log)
	s.sendDTMF = stream.SendDTMF
	s.transfer = func(string) error { return errors.New("transfer of an outbound call is not supported") }
	as, err := p.agents[route].Start(runCtx, agent.Call{ID: id, From: req.From, To: req.To, Route: route.Name, Logger: log}, s)
	if err != nil {
		log.Warn("target failed after answer", "err", err)
		_ = call.Hangup()
		rec.End(cdr.ByGateway, "target failed: "+err.Error(), 0, cdr.Quality{})
		return
	}
	defer as.Close()
	s.watchDTMF(g.metrics, stream.DTMF(), nil)
	s.grid = stream.ArrivalGrid
	by, cause := s.run(runCtx, as)
	if call.Context().Err() != nil {
		by, cause = call.EndCause()
	} else if err := call.Hangup(); err != nil {
		log.Warn("bye", "err", err)
	}
	d := time.Since(answered)
	g.metrics.callDuration.Observe(d.Seconds())
	st, q := stream.Stats(), stream.Quality()
	g.metrics.quality.observe(q)
	rec.End(by, cause, 0, cdrQuality(st, q))
	log.Info("call ended", "by", by, "cause", cause, "duration", d.Round(time.Millisecond),
		"rtp_in", st.PacketsIn, "rtp_out", st.PacketsOut, "lost", st.Lost, qualityAttrs(q))
}

// useMedia points the stream at negotiated media, switching codec when the carrier chose PCMA.
func useMedia(stream *media.Stream, m sip.Media, log *slog.Logger) {
	c := media.Codec{Name: m.Codec.Name, PayloadType: m.Codec.PayloadType, ClockRate: m.Codec.ClockRate, Fmtp: m.Codec.Fmtp}
	if err := stream.Reconfigure(c, m.Remote); err != nil {
		log.Warn("media from answer not usable; keeping the offer's", "err", err)
		stream.SetRemote(m.Remote)
	}
}

func newTrunkMetric(reg prometheus.Registerer) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "switchboard_trunk_up",
		Help: "Outbound trunks by their OPTIONS ping verdict: 1 up, 0 down (absent until the first ping).",
	}, []string{"trunk"})
	reg.MustRegister(g)
	return g
}

// TrunkState records an OPTIONS ping verdict; it is the sip server's Config.OnTrunkState.
func (m *Metrics) TrunkState(trunk string, up bool) {
	v := 0.0
	if up {
		v = 1
	}
	m.trunkUp.WithLabelValues(trunk).Set(v)
}
