package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/bridge/cdr"
	"github.com/switchboard-voip/switchboard/bridge/webroom"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/sip"
)

// Gateway answers inbound calls: route from the dialplan, media from the port
// pool, the route's target, and the call run to its end. Its HandleCall is the
// sip server's handler.
type Gateway struct {
	ports        *media.PortPool
	mediaTimeout time.Duration
	log          *slog.Logger
	metrics      *Metrics
	recordings   string // directory for record: true routes
	records      *cdr.Writer
	rooms        *webroom.Hub // built-in rooms; nil: room targets with builtin fail to load

	plan   atomic.Pointer[plan]
	trunks atomic.Pointer[Trunks] // outbound trunks that transfer targets dial through (forward.go)

	mu       sync.Mutex
	calls    map[*liveCall]struct{}
	draining bool
	wg       sync.WaitGroup
}

// Config is what a Gateway needs.
type Config struct {
	Ports        *media.PortPool
	MediaTimeout time.Duration
	Logger       *slog.Logger
	Metrics      *Metrics
	// RecordingsDir receives a stereo WAV of each call whose route says record: true.
	RecordingsDir string
	// Records keeps a call detail record of every call; nil keeps none.
	Records *cdr.Writer
	// Rooms hosts the rooms of room targets with builtin:.
	Rooms *webroom.Hub
}

// plan is a dialplan with every route's target made ready to start.
type plan struct {
	dp     *dialplan.Plan
	agents map[*dialplan.Route]agent.Agent
}

var errDrained = errors.New("gateway shutting down")

// errMaxDuration ends a call that reached its route's max_duration.
var errMaxDuration = errors.New("max duration")

// New makes a gateway; SetPlan must be called before it takes calls.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{
		ports:        cfg.Ports,
		mediaTimeout: cfg.MediaTimeout,
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		recordings:   cfg.RecordingsDir,
		records:      cfg.Records,
		rooms:        cfg.Rooms,
		calls:        make(map[*liveCall]struct{}),
	}
	g.metrics.live.Store(g) // RTP counters of live calls are read at scrape time
	g.metrics.ports.Store(cfg.Ports)
	return g
}

// SetPlan prepares every route's target (prompts read, agents resolved) and
// then switches new calls to dp. On error the running plan stays.
func (g *Gateway) SetPlan(dp *dialplan.Plan) error {
	p := &plan{dp: dp, agents: make(map[*dialplan.Route]agent.Agent)}
	prompts := map[string]agent.Prompt{}
	var errs []error
	for _, r := range allRoutes(dp) {
		a, err := prepareRoute(r, prompts, g.rooms) // targets.go
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q (line %d): %w", r.Name, r.Line, err))
			continue
		}
		if a != nil {
			g.bindForwards(a) // forward.go
			p.agents[r] = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g.plan.Store(p)
	return nil
}

// HandleCall runs one inbound call from routing to hang-up. Set-up (answer)
// and tear-down (hangUp) have large stack frames; the call waits out its
// life here, between them, in a small one, so that the goroutine's stack,
// grown during set-up, shrinks back to 4 KB at the next collections (8 KB
// or more when the wait sat under set-up's frame; docs/benchmarks.md,
// ninth round).
func (g *Gateway) HandleCall(c *sip.InboundCall) {
	k := &callRun{start: time.Now()}
	defer k.release(g)
	if !g.answer(c, k) {
		return
	}
	by, cause := k.s.run(k.runCtx, k.as)
	g.hangUp(c, k, by, cause)
}

// callRun is what a call's set-up hands its wait and tear-down, and what
// release undoes: each part is set once it exists.
type callRun struct {
	start    time.Time
	log      *slog.Logger
	rec      *cdr.Call
	live     *liveCall
	stream   *media.Stream
	as       agent.Session
	s        *session
	tap      *recordingStream
	runCtx   context.Context
	cancel   context.CancelFunc // of the route's max_duration
	answered time.Time
}

// release undoes what set-up made, last made first. The record is ended
// with a catch-all cause; one ended already keeps its own.
func (k *callRun) release(g *Gateway) {
	if k.cancel != nil {
		k.cancel()
	}
	if k.as != nil {
		k.as.Close()
	}
	if k.stream != nil {
		k.stream.Close()
	}
	if k.live != nil {
		g.untrack(k.live)
	}
	if k.rec != nil {
		k.rec.End(cdr.ByGateway, "ended without a recorded cause", 0, cdr.Quality{})
	}
}

// answer routes the call, opens its media, starts its target and answers;
// false when the call ended before answer (its record and count are done).
func (g *Gateway) answer(c *sip.InboundCall, k *callRun) bool {
	start := k.start
	log := g.log.With("call_id", c.CallID(), "from", c.From(), "to", c.To())
	k.log = log
	// The record exists from the INVITE on; every exit below ends it, and
	// release catches an exit that does not.
	rec := g.records.Begin(c.CallID(), c.From(), c.To())
	k.rec = rec

	live, ctx, ok := g.track(c, rec, start)
	if !ok {
		rec.Reject(503, "gateway draining")
		g.finish(log, nil, c.Reject(503, "Service Unavailable"), "rejected")
		return false
	}
	k.live = live

	p := g.plan.Load()
	route, found := p.dp.Route(dialplan.CallInfo{To: c.To(), From: c.From(), Trunk: c.Trunk(),
		Source: c.Source().Addr(), Header: c.Header, At: start})
	if !found {
		log.Info("no route", "status", 404)
		rec.Reject(404, "no route")
		g.finish(log, live, c.Reject(404, "Not Found"), "no_route")
		return false
	}
	log = log.With("route", route.Name)
	k.log = log
	rec.Route(route.Name, route.Target.Type, cdrTarget(route.Target))
	routed := time.Now()
	live.routed(g.metrics, route.Name, route.Target.Type)
	g.metrics.stage.WithLabelValues(stageInviteToRoute).Observe(routed.Sub(start).Seconds())

	if route.Target.Type == "reject" {
		log.Info("rejected by route", "status", route.Target.Status)
		rec.Reject(route.Target.Status, "rejected by route: "+route.Target.Reason)
		g.finish(log, live, c.Reject(route.Target.Status, route.Target.Reason), "rejected")
		return false
	}

	m := c.Media()
	stream, err := g.ports.Open(media.StreamConfig{
		Codec:           media.Codec{Name: m.Codec.Name, PayloadType: m.Codec.PayloadType, ClockRate: m.Codec.ClockRate, Fmtp: m.Codec.Fmtp},
		DTMFPayloadType: m.DTMFPayloadType,
		Remote:          m.Remote,
		Timeout:         g.mediaTimeout,
		Logger:          log,
		SRTP:            srtpKeys(m.SRTP),
	})
	if err != nil {
		log.Warn("no media port", "err", err)
		rec.Reject(503, "no media port: "+err.Error())
		g.finish(log, live, c.Reject(503, "Service Unavailable"), "failed")
		return false
	}
	k.stream = stream
	live.setStream(stream, m.Codec.Name)

	if err := c.Ringing(); err != nil {
		log.Debug("180", "err", err)
	}
	ringing := time.Now()
	var audio AudioStream = stream
	var tap *recordingStream // records from answer on, when the route asks
	if route.Record {
		tap = &recordingStream{AudioStream: stream}
		audio = tap
	}
	k.tap = tap
	rtp1 := &firstRTP{AudioStream: audio, packets: func() uint64 { return stream.Stats().PacketsIn },
		obs: g.metrics.stage.WithLabelValues(stageAnswerToRTP)} // stages.go
	audio = rtp1
	s := newSession(audio, log)
	k.s = s
	s.firstAudio = &firstAudio{obs: g.metrics.stage.WithLabelValues(stageAgentFirstAudio)}
	live.update(func(i *CallInfo) { i.State = StateRinging })
	s.sendDTMF = stream.SendDTMF
	agentCloser := &lateCloser{} // a bridged transfer hangs up the agent (b2bua.go)
	// REFER to the caller's side, or bridging a second leg where REFER is not taken (transfer.go).
	s.transfer = blindTransfer(ctx, c, s, log, g.bridgeTransfer(ctx, c, s, agentCloser.close, log),
		route.TransferMethod == dialplan.TransferBridge) // transfer_method: bridge skips the REFER
	// Runs while the caller hears ringing: bots connect (within their connect
	// timeout) and fallbacks are tried before the call is answered.
	connecting := time.Now()
	as, err := p.agents[route].Start(ctx, agent.Call{ID: c.CallID(), From: c.From(), To: c.To(), Route: route.Name,
		Trunk: c.Trunk(), Logger: log, Headers: c.Header}, s)
	if err == nil {
		g.metrics.stage.WithLabelValues(stageAgentConnect).Observe(time.Since(connecting).Seconds())
	}
	if err != nil {
		status, reason := failStatus(err)
		log.Warn("every target failed before answer", "status", status, "err", err)
		if by, cause := c.EndCause(); by != "" {
			rec.End(by, cause, cancelStatus(cause), cdr.Quality{}) // CANCEL while the bot was connecting
		} else {
			rec.Reject(status, "target failed: "+err.Error())
		}
		g.finish(log, live, c.Reject(status, reason), "failed")
		return false
	}
	k.as = as
	agentCloser.set(as)

	// The route's ring time counts from the 180; the target connected meanwhile.
	if wait := route.Ring - time.Since(ringing); wait > 0 {
		select {
		case <-time.After(wait):
		case <-ctx.Done():
		}
	}
	if err := c.Answer(stream.LocalAddr()); err != nil {
		if c.Context().Err() != nil {
			by, cause := c.EndCause()
			log.Info("call ended before answer", "by", by, "cause", cause)
			rec.End(by, cause, cancelStatus(cause), cdr.Quality{})
			g.count(live, "cancelled")
			return false
		}
		log.Warn("answer failed", "err", err)
		rec.End(cdr.ByGateway, "answer failed: "+err.Error(), 0, cdr.Quality{})
		g.count(live, "failed")
		return false
	}
	answered := time.Now()
	k.answered = answered
	rec.Answered()
	rtp1.answered = answered // before the session runs: it reads it on the call's clock
	s.firstAudio.answer(answered)
	live.update(func(i *CallInfo) { i.State, i.Answer = StateUp, answered })
	g.metrics.stage.WithLabelValues(stageRouteToAnswer).Observe(answered.Sub(routed).Seconds())
	if ok, taken := c.OKSent(), c.Taken(); !ok.IsZero() && !taken.IsZero() {
		g.metrics.stage.WithLabelValues(stageInviteTo200).Observe(ok.Sub(taken).Seconds())
	}
	g.count(live, "answered")
	log.Info("answered", "local_rtp", stream.LocalAddr(), "remote_rtp", m.Remote, "codec", m.Codec.Name)
	g.startRecording(tap, c.CallID(), stream.Rate(), log)
	if tap != nil && tap.rec != nil {
		rec.Recording(tap.rec.path)
	}

	s.watchDTMF(g.metrics, stream.DTMF(), c.DTMF()) // dtmf.go
	// Hold, resume and codec changes by re-INVITE or UPDATE (hold.go).
	s.followMedia(c.MediaChanges(), m, stream)
	s.grid = stream.ArrivalGrid
	k.runCtx = ctx
	if route.MaxDuration > 0 {
		k.runCtx, k.cancel = context.WithTimeoutCause(ctx, route.MaxDuration, errMaxDuration)
	}
	return true
}

// hangUp ends an answered call that s.run said is over: the BYE unless the
// caller sent one, then the metrics, the record and the log line.
func (g *Gateway) hangUp(c *sip.InboundCall, k *callRun, by, cause string) {
	log, stream := k.log, k.stream
	if c.Context().Err() != nil {
		by, cause = c.EndCause()
	} else if err := c.Hangup(cause); err != nil {
		log.Warn("bye", "err", err)
	}
	d := time.Since(k.answered)
	g.metrics.callDuration.Observe(d.Seconds())
	st := stream.Stats()
	q := stream.Quality()
	g.metrics.quality.observe(q)
	k.rec.End(by, cause, 0, cdrQuality(st, q))
	log.Info("call ended", "by", by, "cause", cause, "duration", d.Round(time.Millisecond),
		"rtp_in", st.PacketsIn, "rtp_out", st.PacketsOut, "lost", st.Lost, "late", st.Late, "malformed", st.Malformed,
		qualityAttrs(q), stopRecording(k.tap, log))
}

// finish counts a call that ended before answer.
func (g *Gateway) finish(log *slog.Logger, l *liveCall, err error, result string) {
	if err != nil {
		log.Warn("final response", "err", err)
	}
	g.count(l, result)
}

// count adds a call to switchboard_calls_total under its trunk and route (nil: neither known).
func (g *Gateway) count(l *liveCall, result string) {
	var trunk, route string
	if l != nil {
		trunk, route = l.labels()
	}
	g.metrics.callsTotal.WithLabelValues(trunk, route, result).Inc()
}

// track registers a call for drain, the admin API and metrics; it fails once
// the gateway is draining.
func (g *Gateway) track(c *sip.InboundCall, rec *cdr.Call, start time.Time) (*liveCall, context.Context, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(c.Context())
	l := &liveCall{cancel: cancel, info: CallInfo{ID: c.CallID(), RecordID: rec.ID(), From: c.From(), To: c.To(),
		Trunk: c.Trunk(), State: StateRouting, Start: start}}
	if t := c.Trunk(); t != "" {
		rec.Trunk(t) // a snapshot only when there is a trunk to record: one queued write fewer before the 200
	}
	g.calls[l] = struct{}{}
	g.wg.Add(1)
	g.metrics.callsActive.Inc()
	g.metrics.routeActive.WithLabelValues(l.labels()).Inc()
	return l, ctx, true
}

func (g *Gateway) untrack(l *liveCall) {
	l.cancel(nil)
	g.mu.Lock()
	delete(g.calls, l)
	if l.stream != nil {
		g.metrics.rtp.add(l.stream.Stats()) // under g.mu: never counted both live and ended
	}
	g.mu.Unlock()
	g.metrics.callsActive.Dec()
	g.metrics.routeActive.WithLabelValues(l.labels()).Dec()
	g.wg.Done()
}

// Active is the number of calls in progress.
func (g *Gateway) Active() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.calls)
}

// Drain stops taking calls, lets the running ones go on until ctx ends, then
// hangs up the rest and waits for them to finish.
func (g *Gateway) Drain(ctx context.Context) {
	g.mu.Lock()
	g.draining = true
	g.mu.Unlock()

	done := make(chan struct{})
	go func() { g.wg.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-ctx.Done():
	}
	g.mu.Lock()
	n := len(g.calls)
	for l := range g.calls {
		l.cancel(errDrained)
	}
	g.mu.Unlock()
	g.log.Info("drain time over, hanging up", "calls", n)
	<-done
}

// cancelStatus is the final status of an INVITE that ended before answer: a
// CANCEL gets 487 Request Terminated.
func cancelStatus(cause string) int {
	if cause == "cancel" {
		return 487
	}
	return 0
}

// cdrQuality is a call's media summary for its record; with nothing received
// there is no jitter or MOS to speak of.
func cdrQuality(st media.Stats, q media.Quality) cdr.Quality {
	out := cdr.Quality{PacketsIn: st.PacketsIn, PacketsOut: st.PacketsOut, Lost: st.Lost, Late: st.Late}
	if q.Packets > 0 {
		out.JitterMs, out.MOS = float64(q.Jitter.Microseconds())/1000, q.MOS
	}
	return out
}

// cdrTarget names a route's target in its call record: the agent, bot URL or prompt file.
func cdrTarget(t dialplan.Target) string {
	if r := t.Room; r != nil && r.LiveKit != nil {
		return "livekit " + r.LiveKit.URL
	} else if r != nil && r.Builtin != nil {
		return "builtin room"
	}
	for _, s := range []string{t.URL, t.Agent, t.File, t.To} {
		if s != "" {
			return s
		}
	}
	return t.Protocol
}

// allRoutes is every route of dp, the default last.
func allRoutes(dp *dialplan.Plan) []*dialplan.Route {
	rs := dp.Routes()
	if d, ok := dp.Default(); ok {
		rs = append(rs[:len(rs):len(rs)], d)
	}
	return rs
}

// srtpKeys hands the SDES keys sip negotiated to the media stream; nil is plain RTP.
func srtpKeys(k *sip.SRTP) *media.SRTP {
	if k == nil {
		return nil
	}
	return &media.SRTP{Local: k.Local, Remote: k.Remote}
}
