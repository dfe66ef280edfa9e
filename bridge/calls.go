package bridge

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-voip/switchboard/media"
)

// Call states in a CallInfo.
const (
	StateRouting = "routing" // INVITE in, target not yet started
	StateRinging = "ringing" // target starting, caller hears ringing
	StateUp      = "answered"
)

// CallInfo is a snapshot of a call in progress, for the admin API.
type CallInfo struct {
	ID       string // the SIP Call-ID
	RecordID string // its call detail record; "" without records
	Trunk    string
	From, To string
	Route    string // "" until routed
	Target   string // target type of the route (echo, play, agent, ...)
	State    string // StateRouting, StateRinging or StateUp
	Start    time.Time
	Answer   time.Time // zero until answered

	Codec   string
	Stats   media.Stats   // zero until media is set up
	Quality media.Quality // live receive quality (MOS, loss, jitter)
}

// liveCall is one call in the gateway's registry: what drain, the admin API
// and the RTP collector need of it.
type liveCall struct {
	cancel context.CancelCauseFunc

	mu     sync.Mutex
	info   CallInfo
	stream *media.Stream // nil until media is open
}

func (l *liveCall) update(f func(*CallInfo)) {
	l.mu.Lock()
	f(&l.info)
	l.mu.Unlock()
}

func (l *liveCall) setStream(s *media.Stream, codec string) {
	l.mu.Lock()
	l.stream, l.info.Codec = s, codec
	l.mu.Unlock()
}

// labels are the call's trunk and route, as metric label values.
func (l *liveCall) labels() (trunk, route string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.info.Trunk, l.info.Route
}

// routed records the dialplan's choice and moves the call's gauge to its route.
func (l *liveCall) routed(m *Metrics, route, target string) {
	l.mu.Lock()
	trunk, was := l.info.Trunk, l.info.Route
	l.info.Route, l.info.Target = route, target
	l.mu.Unlock()
	m.routeActive.WithLabelValues(trunk, was).Dec()
	m.routeActive.WithLabelValues(trunk, route).Inc()
}

// snapshot reads the call's details and, when media is up, its live stats.
func (l *liveCall) snapshot() CallInfo {
	l.mu.Lock()
	info, s := l.info, l.stream
	l.mu.Unlock()
	if s != nil {
		info.Stats, info.Quality = s.Stats(), s.Quality()
	}
	return info
}

// ErrNoSuchCall is Hangup's answer for an id that is not up.
var ErrNoSuchCall = errors.New("no call in progress with that id")

// Calls lists the calls in progress, oldest first, with their live quality.
func (g *Gateway) Calls() []CallInfo {
	g.mu.Lock()
	ls := make([]*liveCall, 0, len(g.calls))
	for l := range g.calls {
		ls = append(ls, l)
	}
	g.mu.Unlock()
	out := make([]CallInfo, 0, len(ls))
	for _, l := range ls {
		out = append(out, l.snapshot())
	}
	slices.SortFunc(out, func(a, b CallInfo) int { return a.Start.Compare(b.Start) })
	return out
}

// Hangup ends the call in progress with SIP Call-ID id: BYE when answered,
// a final error response while it rings. reason goes to its log and record.
func (g *Gateway) Hangup(id, reason string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	found := false
	for l := range g.calls {
		l.mu.Lock()
		match := l.info.ID == id
		l.mu.Unlock()
		if match {
			l.cancel(errors.New(reason))
			found = true
		}
	}
	if !found {
		return ErrNoSuchCall
	}
	return nil
}

// Draining says whether the gateway has stopped taking calls.
func (g *Gateway) Draining() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.draining
}

// liveStats are the media counters of the calls in progress; g.mu keeps a call
// from being counted both here and in the ended totals (untrack).
func (g *Gateway) liveStats() []media.Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []media.Stats
	for l := range g.calls {
		l.mu.Lock()
		s := l.stream
		l.mu.Unlock()
		if s != nil {
			out = append(out, s.Stats())
		}
	}
	return out
}
