// Package dialplan decides what happens to an inbound call: an ordered list of
// routes matched on the request-URI user and the caller, and an optional default.
//
// A plan is loaded once from YAML and is then read-only, so Route is safe for
// concurrent use.
package dialplan

import (
	"regexp"
	"time"
)

// Target types.
const (
	TypeEcho   = "echo"   // send the caller's audio back
	TypePlay   = "play"   // play File, then hang up
	TypeReject = "reject" // refuse the INVITE with Status and Reason
	TypeAgent  = "agent"  // hand the call to the agent named Agent, or a bot speaking Protocol at URL
)

// Agent protocols (target.protocol): how the gateway talks to a bot.
const (
	ProtocolTwilio      = "twilio"          // Twilio Media Streams over WebSocket
	ProtocolSwitchboard = "switchboard"     // the native WebSocket protocol
	ProtocolAudioSocket = "audiosocket"     // Asterisk AudioSocket over TCP
	ProtocolOpenAI      = "openai-realtime" // OpenAI Realtime over WebSocket
)

// DefaultConnectTimeout bounds connecting to a bot when connect_timeout is unset.
const DefaultConnectTimeout = 5 * time.Second

// CallInfo is what a route can match on: URI users of the request-URI and From.
type CallInfo struct {
	To, From string
}

// Plan is a parsed dialplan.
type Plan struct {
	File   string // the name it was loaded from, for logs
	routes []*Route
	def    *Route
}

// Route is one entry of the plan; the default is a Route named "default".
type Route struct {
	Name   string
	Line   int   // line of the route in File, for logs
	Match  Match // as written; empty for the default
	Target Target
	// Fallback targets are tried in order when Target fails before answer,
	// or when an agent is lost mid-call.
	Fallback []Target
	// FailStatus is the SIP status sent when every target failed before answer
	// (on_failure.status; 503 unless set, so a carrier fails over).
	FailStatus int
	// Record asks for a stereo WAV of the call (record: true).
	Record bool

	to, from *matcher
}

// Match holds the patterns as written: an exact URI user, or "~" and a Go regexp.
type Match struct {
	To, From string
}

// Target says what to do with a routed call. Which fields are set depends on Type.
type Target struct {
	Type     string // echo|play|reject|agent
	File     string // play: WAV path, resolved against the dialplan's directory
	Status   int    // reject: 400–699
	Reason   string // reject: optional reason phrase
	Agent    string // agent: name the bridge resolves ("default" is built in)
	URL      string // agent: optional endpoint, for agent kinds that need one
	Protocol string // agent: twilio|switchboard|audiosocket|openai-realtime; empty for a built-in agent
	// ConnectTimeout bounds connecting to the bot (agent with a protocol).
	ConnectTimeout time.Duration
	// Params are rendered for each call and handed to the bot (Twilio
	// customParameters, the native start message); nil when none.
	Params *Params
	// OpenAI is the model session of a protocol: openai-realtime target.
	OpenAI *OpenAI
}

// Route returns the first route in file order whose match keys all match c,
// else the default; false if neither.
func (p *Plan) Route(c CallInfo) (*Route, bool) {
	for _, r := range p.routes {
		if r.matches(c) {
			return r, true
		}
	}
	return p.def, p.def != nil
}

// Routes returns the routes in file order, without the default.
func (p *Plan) Routes() []*Route {
	return append([]*Route(nil), p.routes...)
}

// Default returns the default route, if the plan has one.
func (p *Plan) Default() (*Route, bool) {
	return p.def, p.def != nil
}

func (r *Route) matches(c CallInfo) bool {
	return r.to.match(c.To) && r.from.match(c.From)
}

// matcher is an exact string or a regexp; a nil matcher matches anything.
type matcher struct {
	exact string
	re    *regexp.Regexp
}

func (m *matcher) match(s string) bool {
	switch {
	case m == nil:
		return true
	case m.re != nil:
		return m.re.MatchString(s)
	default:
		return s == m.exact
	}
}
