package sip

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"
)

// InboundTrunk is a carrier allowed to send us calls: recognised by source address, by
// digest credentials, or both.
type InboundTrunk struct {
	Name  string
	Allow []netip.Prefix // sources it sends from; empty: any source, so User must be set
	// User and Password, when set, make its INVITEs answer a 401 digest challenge.
	User, Password string
	// Silent drops requests from sources no trunk allows without an answer (invisible to
	// scanners); otherwise they get 403. Any trunk asking for silence makes it so for all.
	Silent bool
	// MaxCalls and CallsPerSecond cap its calls in progress and new calls; 503 beyond (0: no cap).
	MaxCalls       int
	CallsPerSecond float64
}

// OutboundTrunk is a carrier we place calls through.
type OutboundTrunk struct {
	Name      string
	Host      string // IP or DNS name; without Port a name is looked up by SRV (RFC 3263)
	Port      int    // 0: SRV, else 5060
	Transport string // "udp" (default) | "tcp"
	Auth      Credentials
	CallerID  string // From user of calls through it; "" uses the caller's own
	// Register, when set, keeps us registered with the carrier for this long (refreshed
	// before it runs out, retried with backoff when refused).
	Register time.Duration
	// OptionsPing sends OPTIONS this often and marks the trunk up or down by the answer.
	OptionsPing time.Duration
	// MaxCalls and CallsPerSecond cap calls through it; beyond them a call is refused (503).
	MaxCalls       int
	CallsPerSecond float64
	// AllowedDestinations are the only numbers it may dial (toll-fraud guard): "+4420*" is a
	// prefix, "~regexp" a Go regexp on the whole number, anything else exact. Empty allows none.
	AllowedDestinations []string
	// FailoverTimeout is how long a target may stay silent before the next SRV target is
	// tried (default 4 s).
	FailoverTimeout time.Duration
}

// Errors placing a call through a trunk.
var (
	ErrUnknownTrunk          = errors.New("sip: no such outbound trunk")
	ErrDestinationNotAllowed = errors.New("sip: destination not allowed on this trunk")
	ErrTrunkBusy             = errors.New("sip: trunk at its call limit")
	ErrTrunkDown             = errors.New("sip: trunk is down (OPTIONS ping unanswered)")
)

// limiter caps calls in progress and the rate of new ones.
type limiter struct {
	max  int
	rate float64

	mu     sync.Mutex
	active int
	tokens float64
	last   time.Time
}

func newLimiter(max int, rate float64) *limiter {
	return &limiter{max: max, rate: rate, tokens: max1(rate)}
}

func max1(r float64) float64 { return max(1, r) }

// acquire takes a call slot; false when either cap is reached.
func (l *limiter) acquire(now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.max > 0 && l.active >= l.max {
		return false
	}
	if l.rate > 0 {
		if !l.last.IsZero() {
			l.tokens = min(max1(l.rate), l.tokens+now.Sub(l.last).Seconds()*l.rate)
		}
		l.last = now
		if l.tokens < 1 {
			return false
		}
		l.tokens--
	}
	l.active++
	return true
}

func (l *limiter) release() {
	l.mu.Lock()
	l.active--
	l.mu.Unlock()
}

type inTrunk struct {
	InboundTrunk
	lim *limiter
}

type outTrunk struct {
	OutboundTrunk
	lim       *limiter
	allowed   []func(string) bool
	state     atomic.Int32 // 0 unknown, 1 up, 2 down (options_ping.go)
	registrar atomic.Bool  // registered now (register.go)
}

// trunks is the server's view of its carriers.
type trunks struct {
	in     []*inTrunk
	users  map[string]*InboundTrunk // digest user → trunk
	silent bool
	out    map[string]*outTrunk
	nonces *nonces
	realm  string
}

func newTrunks(cfg *Config) (*trunks, error) {
	ts := &trunks{users: map[string]*InboundTrunk{}, out: map[string]*outTrunk{},
		nonces: newNonces(cfg.NonceTTL), realm: cfg.Realm}
	if ts.realm == "" {
		ts.realm = "switchboard"
	}
	for i := range cfg.Inbound {
		t := cfg.Inbound[i]
		if len(t.Allow) == 0 && t.User == "" {
			return nil, fmt.Errorf("sip: inbound trunk %q: neither allowed sources nor digest user", t.Name)
		}
		it := &inTrunk{InboundTrunk: t, lim: newLimiter(t.MaxCalls, t.CallsPerSecond)}
		ts.in = append(ts.in, it)
		if t.User != "" {
			if _, dup := ts.users[t.User]; dup {
				return nil, fmt.Errorf("sip: inbound trunk %q: digest user %q used twice", t.Name, t.User)
			}
			ts.users[t.User] = &it.InboundTrunk
		}
		ts.silent = ts.silent || t.Silent
	}
	for _, t := range cfg.Outbound {
		if t.Transport == "" {
			t.Transport = "udp"
		}
		t.Transport = strings.ToLower(t.Transport)
		if t.FailoverTimeout <= 0 {
			t.FailoverTimeout = 4 * time.Second
		}
		ot := &outTrunk{OutboundTrunk: t, lim: newLimiter(t.MaxCalls, t.CallsPerSecond)}
		for _, p := range t.AllowedDestinations {
			m, err := DestinationPattern(p)
			if err != nil {
				return nil, fmt.Errorf("sip: outbound trunk %q: %w", t.Name, err)
			}
			ot.allowed = append(ot.allowed, m)
		}
		ts.out[t.Name] = ot
	}
	return ts, nil
}

// DestinationPattern compiles an allowed-destination pattern: "prefix*", "~regexp" or exact.
func DestinationPattern(p string) (func(string) bool, error) {
	switch {
	case p == "":
		return nil, errors.New("empty destination pattern")
	case strings.HasPrefix(p, "~"):
		re, err := regexp.Compile("^(?:" + p[1:] + ")$")
		if err != nil {
			return nil, fmt.Errorf("destination pattern %q: %w", p, err)
		}
		return re.MatchString, nil
	case strings.HasSuffix(p, "*"):
		prefix := p[:len(p)-1]
		if strings.Contains(prefix, "*") {
			return nil, fmt.Errorf("destination pattern %q: * only at the end", p)
		}
		return func(s string) bool { return strings.HasPrefix(s, prefix) }, nil
	}
	return func(s string) bool { return s == p }, nil
}

// screen applies the inbound trunks to a request: it returns the trunk it came from, or
// false when the request has been answered (403, 401) or dropped (silent).
func (s *Server) screen(req *sip.Request, tx sip.ServerTransaction) (*inTrunk, bool) {
	ts := s.trunks
	if len(ts.in) == 0 {
		return nil, true // no trunks configured: an open gateway
	}
	src, _ := netip.ParseAddrPort(req.Source())
	ip := src.Addr().Unmap()
	var byAddr, byAuth []*inTrunk
	for _, t := range ts.in {
		switch {
		case len(t.Allow) == 0:
			byAuth = append(byAuth, t)
		case containsIP(t.Allow, ip):
			if t.User == "" {
				byAddr = append(byAddr, t)
			} else {
				byAuth = append(byAuth, t)
			}
		}
	}
	if len(byAddr) == 0 && len(byAuth) == 0 {
		if ts.silent {
			s.refused("unknown_source", 0)
			s.log.Debug("sip request from unknown source dropped", "method", req.Method, "source", src)
			return nil, false
		}
		s.refused("unknown_source", 403)
		s.log.Debug("sip request from unknown source refused", "method", req.Method, "source", src)
		if !req.IsAck() {
			s.respond(req, tx, 403, "Forbidden", "")
		}
		return nil, false
	}
	if len(byAddr) > 0 {
		return byAddr[0], true
	}
	if !req.IsInvite() || hasToTag(req) {
		return byAuth[0], true // in-dialog and out-of-dialog pings need no credentials
	}
	users := map[string]*InboundTrunk{}
	for _, t := range byAuth {
		users[t.User] = &t.InboundTrunk
	}
	res, tr := ts.nonces.verifyDigest(req, ts.realm, users)
	switch res {
	case authOK:
		for _, t := range byAuth {
			if &t.InboundTrunk == tr {
				return t, true
			}
		}
	case authStale:
		s.refused("auth_stale", 401)
		s.respond(req, tx, 401, "Unauthorized", "", ts.nonces.challenge(ts.realm, true))
		return nil, false
	case authMissing:
		s.refused("auth_challenge", 401)
		s.respond(req, tx, 401, "Unauthorized", "", ts.nonces.challenge(ts.realm, false))
		return nil, false
	}
	s.refused("auth_failed", 403)
	s.log.Info("sip digest authentication failed", "source", src, "call_id", callIDOf(req))
	s.respond(req, tx, 403, "Forbidden", "")
	return nil, false
}

func containsIP(ps []netip.Prefix, ip netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// admit takes a call slot on the trunk an INVITE came from; false after a 503.
func (s *Server) admit(t *inTrunk, req *sip.Request, tx sip.ServerTransaction) (release func(), ok bool) {
	if t == nil {
		return func() {}, true
	}
	if !t.lim.acquire(time.Now()) {
		s.refused("trunk_limit", 503)
		s.log.Info("sip trunk at its call limit", "trunk", t.Name, "call_id", callIDOf(req))
		s.respond(req, tx, 503, "Service Unavailable", "trunk call limit", sip.NewHeader("Retry-After", "5"))
		return nil, false
	}
	return t.lim.release, true
}

// TrunkCall is a call slot reserved on an outbound trunk for one destination.
type TrunkCall struct {
	s    *Server
	t    *outTrunk
	to   string
	once sync.Once
}

// ReserveOutbound checks that to may be dialled through trunk and takes one of its call
// slots; the slot is held until the dialled call ends or Release is called.
func (s *Server) ReserveOutbound(trunk, to string) (*TrunkCall, error) {
	t, ok := s.trunks.out[trunk]
	if !ok {
		return nil, ErrUnknownTrunk
	}
	allowed := false
	for _, m := range t.allowed {
		if m(to) {
			allowed = true
			break
		}
	}
	if !allowed || to == "" {
		s.log.Warn("outbound destination refused by toll-fraud guard", "trunk", trunk, "to", to)
		return nil, ErrDestinationNotAllowed
	}
	if t.state.Load() == trunkDown {
		return nil, ErrTrunkDown
	}
	if !t.lim.acquire(time.Now()) {
		s.log.Info("outbound trunk at its call limit", "trunk", trunk, "to", to)
		return nil, ErrTrunkBusy
	}
	return &TrunkCall{s: s, t: t, to: to}, nil
}

// Release gives the slot back; idempotent.
func (r *TrunkCall) Release() { r.once.Do(r.t.lim.release) }

// TrunkDialOptions are the parts of an outbound call that the trunk does not fix.
type TrunkDialOptions struct {
	CallID   string         // "" makes one
	From     string         // caller ID when the trunk has none
	LocalRTP netip.AddrPort // where we receive RTP
	Codecs   []string
	// OnProgress sees each provisional response; early is the 183's media, or nil.
	OnProgress func(status int, early *Media)
}

// Dial places the reserved call through the trunk: SRV targets tried in turn, digest
// challenges answered. The slot is released when the call ends or fails.
func (r *TrunkCall) Dial(ctx context.Context, o TrunkDialOptions) (*OutboundCall, error) {
	t := r.t
	targets, err := resolveTargets(ctx, r.s.cfg.Resolver, t.Host, t.Port, t.Transport)
	if err != nil {
		r.Release()
		return nil, err
	}
	from := t.CallerID
	if from == "" {
		from = o.From
	}
	uri := "sip:" + r.to + "@" + t.Host
	if t.Port != 0 {
		uri += ":" + strconv.Itoa(t.Port)
	}
	var auth *Credentials
	if t.Auth.User != "" {
		a := t.Auth
		auth = &a
	}
	call, err := Dial(ctx, DialOptions{
		Target:          uri,
		CallID:          o.CallID,
		From:            from,
		LocalRTP:        o.LocalRTP,
		AdvertiseIP:     r.s.cfg.AdvertiseIP,
		Codecs:          o.Codecs,
		Transport:       t.Transport,
		UserAgent:       r.s.cfg.UserAgent,
		Logger:          r.s.log.With("trunk", t.Name),
		Auth:            auth,
		Destinations:    targets,
		FailoverTimeout: t.FailoverTimeout,
		OnProgress:      o.OnProgress,
	})
	if err != nil {
		r.Release()
		return nil, err
	}
	go func() {
		<-call.Context().Done()
		r.Release()
	}()
	return call, nil
}

// inviteVia runs our INVITE to each destination in turn until one gives a final answer:
// a target that stays silent past the failover timeout, fails to send, or answers 503 makes
// way for the next (RFC 3263 4.3). A 401/407 is answered with the credentials, once per target.
func (c *OutboundCall) inviteVia(ctx context.Context, inv *sip.Request, o DialOptions, codecs []Codec) (*sip.Response, error) {
	dests := o.Destinations
	if len(dests) == 0 {
		return c.inviteOnce(ctx, inv, o, codecs, 0)
	}
	var last error
	for i, d := range dests {
		if i > 0 {
			inv.Via().Params.Add("branch", sip.GenerateBranchN(16))
			inv.CSeq().SeqNo++
		}
		inv.SetDestination(d.String())
		res, err := c.inviteOnce(ctx, inv, o, codecs, o.FailoverTimeout)
		var se *StatusError
		if err == nil || ctx.Err() != nil || (errors.As(err, &se) && se.Code != 503) {
			return res, err
		}
		c.log.Info("trunk target failed, trying the next", "target", d, "err", err)
		last = err
	}
	return nil, last
}

var errNoAnswer = errors.New("sip: target did not answer")

func (c *OutboundCall) inviteOnce(ctx context.Context, inv *sip.Request, o DialOptions, codecs []Codec, silence time.Duration) (*sip.Response, error) {
	for attempt := 0; ; attempt++ {
		tx, err := c.client.TransactionRequest(context.Background(), inv, noBuild)
		if err != nil {
			return nil, fmt.Errorf("sip: dial: %w", err)
		}
		var quiet <-chan time.Time
		if silence > 0 {
			tm := time.NewTimer(silence)
			defer tm.Stop()
			quiet = tm.C
		}
		res, err := c.await(ctx, inv, tx, o, codecs, quiet)
		if err != nil {
			return nil, err
		}
		if (res.StatusCode == 401 || res.StatusCode == 407) && o.Auth != nil && attempt < 2 {
			if attempt == 1 {
				if h := res.GetHeader(challengeHeader(res)); h == nil || !strings.Contains(strings.ToLower(h.Value()), "stale=true") {
					return nil, &StatusError{Code: res.StatusCode, Reason: res.Reason + " (credentials refused)"}
				}
			}
			if err := authorize(inv, res, *o.Auth); err != nil {
				return nil, err
			}
			inv.Via().Params.Add("branch", sip.GenerateBranchN(16))
			c.dlg.cseq.Store(inv.CSeq().SeqNo)
			c.log.Debug("dial: answering digest challenge", "status", res.StatusCode)
			continue
		}
		if !res.IsSuccess() {
			return nil, &StatusError{Code: res.StatusCode, Reason: res.Reason}
		}
		return res, nil
	}
}

func challengeHeader(res *sip.Response) string {
	if res.StatusCode == 407 {
		return "Proxy-Authenticate"
	}
	return "WWW-Authenticate"
}

// await waits for the final response of one INVITE transaction; quiet fires when the target
// has said nothing at all for too long.
func (c *OutboundCall) await(ctx context.Context, inv *sip.Request, tx sip.ClientTransaction, o DialOptions, codecs []Codec, quiet <-chan time.Time) (*sip.Response, error) {
	for {
		select {
		case res := <-tx.Responses():
			switch {
			case res.IsProvisional():
				quiet = nil
				c.log.Debug("dial progress", "status", res.StatusCode)
				if o.OnProgress != nil && res.StatusCode > 100 {
					var early *Media
					if res.StatusCode == 183 && len(res.Body()) > 0 {
						if m, err := mediaFromAnswer(res.Body(), codecs); err == nil {
							early = &m
						}
					}
					o.OnProgress(res.StatusCode, early)
				}
			case res.IsSuccess():
				tx.OnRetransmission(func(r *sip.Response) {
					if r.IsSuccess() {
						_ = c.send(c.ackFor(inv))
					}
				})
				return res, nil
			default:
				tx.Terminate()
				return res, nil
			}
		case <-quiet:
			tx.Terminate()
			return nil, errNoAnswer
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, fmt.Errorf("sip: dial: %w", err)
			}
			return nil, errors.New("sip: dial: transaction ended without a final response")
		case <-ctx.Done():
			c.sendCancel(inv, tx)
			tx.Terminate()
			return nil, ctx.Err()
		}
	}
}

// TrunkUp reports a trunk's OPTIONS state: known is false until the first ping settles it.
func (s *Server) TrunkUp(name string) (up, known bool) {
	t, ok := s.trunks.out[name]
	if !ok {
		return false, false
	}
	st := t.state.Load()
	return st == trunkUp, st != trunkUnknown
}

// OutboundTrunks names the configured outbound trunks.
func (s *Server) OutboundTrunks() []string {
	var out []string
	for n := range s.trunks.out {
		out = append(out, n)
	}
	return out
}

// ParseTrunkURI reads a trunk's "sip:host[:port][;transport=tcp]" (a bare host works too).
func ParseTrunkURI(s string) (host string, port int, transport string, err error) {
	if !strings.Contains(s, ":") || strings.HasPrefix(s, "[") {
		s = "sip:" + s
	}
	var u sip.Uri
	if err := sip.ParseUri(s, &u); err != nil {
		return "", 0, "", err
	}
	if u.Host == "" || u.User != "" {
		return "", 0, "", fmt.Errorf("%q: want sip:host[:port][;transport=udp|tcp] without a user", s)
	}
	if u.Scheme != "sip" {
		return "", 0, "", fmt.Errorf("%q: scheme %s not supported; want sip:", s, u.Scheme)
	}
	return u.Host, u.Port, strings.ToLower(u.UriParams.GetOr("transport", "")), nil
}
