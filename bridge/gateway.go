package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
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

	plan atomic.Pointer[plan]

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
}

// plan is a dialplan with every route's target made ready to start.
type plan struct {
	dp     *dialplan.Plan
	agents map[*dialplan.Route]agent.Agent
}

type liveCall struct {
	cancel context.CancelCauseFunc
}

var errDrained = errors.New("gateway shutting down")

// New makes a gateway; SetPlan must be called before it takes calls.
func New(cfg Config) *Gateway {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Gateway{
		ports:        cfg.Ports,
		mediaTimeout: cfg.MediaTimeout,
		log:          cfg.Logger,
		metrics:      cfg.Metrics,
		calls:        make(map[*liveCall]struct{}),
	}
}

// SetPlan prepares every route's target (prompts read, agents resolved) and
// then switches new calls to dp. On error the running plan stays.
func (g *Gateway) SetPlan(dp *dialplan.Plan) error {
	p := &plan{dp: dp, agents: make(map[*dialplan.Route]agent.Agent)}
	prompts := map[string]agent.Prompt{}
	var errs []error
	for _, r := range allRoutes(dp) {
		a, err := g.prepare(r, prompts)
		if err != nil {
			errs = append(errs, fmt.Errorf("route %q (line %d): %w", r.Name, r.Line, err))
			continue
		}
		if a != nil {
			p.agents[r] = a
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g.plan.Store(p)
	return nil
}

func (g *Gateway) prepare(r *dialplan.Route, prompts map[string]agent.Prompt) (agent.Agent, error) {
	t := r.Target
	switch t.Type {
	case "echo":
		return agent.Echo{}, nil
	case "play":
		if p, ok := prompts[t.File]; ok {
			return p, nil
		}
		f, err := os.Open(t.File)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		samples, rate, err := pcm.ReadWAV(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", t.File, err)
		}
		p := agent.Prompt{Samples: samples, Rate: rate}
		prompts[t.File] = p
		return p, nil
	case "agent":
		return agent.Builtin(t.Agent)
	case "reject":
		return nil, nil
	}
	return nil, fmt.Errorf("target type %q is not supported yet", t.Type)
}

// HandleCall runs one inbound call from routing to hang-up.
func (g *Gateway) HandleCall(c *sip.InboundCall) {
	start := time.Now()
	log := g.log.With("call_id", c.CallID(), "from", c.From(), "to", c.To())

	live, ctx, ok := g.track(c.Context())
	if !ok {
		g.finish(log, c.Reject(503, "Service Unavailable"), "rejected")
		return
	}
	defer g.untrack(live)

	p := g.plan.Load()
	route, found := p.dp.Route(dialplan.CallInfo{To: c.To(), From: c.From()})
	if !found {
		log.Info("no route", "status", 404)
		g.finish(log, c.Reject(404, "Not Found"), "no_route")
		return
	}
	log = log.With("route", route.Name)
	g.metrics.stage.WithLabelValues("invite_to_route").Observe(time.Since(start).Seconds())

	if route.Target.Type == "reject" {
		log.Info("rejected by route", "status", route.Target.Status)
		g.finish(log, c.Reject(route.Target.Status, route.Target.Reason), "rejected")
		return
	}

	m := c.Media()
	stream, err := g.ports.Open(media.StreamConfig{
		Codec:           media.Codec{Name: m.Codec.Name, PayloadType: m.Codec.PayloadType, ClockRate: m.Codec.ClockRate},
		DTMFPayloadType: m.DTMFPayloadType,
		Remote:          m.Remote,
		Timeout:         g.mediaTimeout,
		Logger:          log,
	})
	if err != nil {
		log.Warn("no media port", "err", err)
		g.finish(log, c.Reject(503, "Service Unavailable"), "failed")
		return
	}
	defer stream.Close()

	if err := c.Ringing(); err != nil {
		log.Debug("180", "err", err)
	}
	s := newSession(stream, log)
	as, err := p.agents[route].Start(ctx, agent.Call{ID: c.CallID(), From: c.From(), To: c.To(), Route: route.Name}, s)
	if err != nil {
		log.Warn("target failed before answer", "err", err)
		g.finish(log, c.Reject(503, "Service Unavailable"), "failed")
		return
	}
	defer as.Close()

	if err := c.Answer(stream.LocalAddr()); err != nil {
		if c.Context().Err() != nil {
			by, cause := c.EndCause()
			log.Info("call ended before answer", "by", by, "cause", cause)
			g.metrics.callsTotal.WithLabelValues("cancelled").Inc()
			return
		}
		log.Warn("answer failed", "err", err)
		g.metrics.callsTotal.WithLabelValues("failed").Inc()
		return
	}
	answered := time.Now()
	g.metrics.stage.WithLabelValues("route_to_answer").Observe(answered.Sub(start).Seconds())
	g.metrics.callsTotal.WithLabelValues("answered").Inc()
	log.Info("answered", "local_rtp", stream.LocalAddr(), "remote_rtp", m.Remote, "codec", m.Codec.Name)

	by, cause := s.run(ctx, as)
	if c.Context().Err() != nil {
		by, cause = c.EndCause()
	} else if err := c.Hangup(cause); err != nil {
		log.Warn("bye", "err", err)
	}
	d := time.Since(answered)
	g.metrics.callDuration.Observe(d.Seconds())
	st := stream.Stats()
	log.Info("call ended", "by", by, "cause", cause, "duration", d.Round(time.Millisecond),
		"rtp_in", st.PacketsIn, "rtp_out", st.PacketsOut, "lost", st.Lost, "late", st.Late, "malformed", st.Malformed)
}

// finish counts a call that ended before answer.
func (g *Gateway) finish(log *slog.Logger, err error, result string) {
	if err != nil {
		log.Warn("final response", "err", err)
	}
	g.metrics.callsTotal.WithLabelValues(result).Inc()
}

// track registers a call for drain; it fails once the gateway is draining.
func (g *Gateway) track(parent context.Context) (*liveCall, context.Context, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.draining {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(parent)
	l := &liveCall{cancel: cancel}
	g.calls[l] = struct{}{}
	g.wg.Add(1)
	g.metrics.callsActive.Inc()
	return l, ctx, true
}

func (g *Gateway) untrack(l *liveCall) {
	l.cancel(nil)
	g.mu.Lock()
	delete(g.calls, l)
	g.mu.Unlock()
	g.metrics.callsActive.Dec()
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

// allRoutes is every route of dp, the default last.
func allRoutes(dp *dialplan.Plan) []*dialplan.Route {
	rs := dp.Routes()
	if d, ok := dp.Default(); ok {
		rs = append(rs[:len(rs):len(rs)], d)
	}
	return rs
}
