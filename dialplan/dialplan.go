// Package dialplan decides what happens to an inbound call: an ordered list of
// routes matched on the called number, the caller, the trunk, the source
// address, SIP headers and the time of day, and an optional default.
//
// A plan is loaded once from YAML and is then read-only, so Route is safe for
// concurrent use.
package dialplan

import (
	"net/netip"
	"time"
)

// Target types.
const (
	TypeEcho     = "echo"     // send the caller's audio back
	TypePlay     = "play"     // play File, then hang up
	TypeReject   = "reject"   // refuse the INVITE with Status and Reason
	TypeAgent    = "agent"    // hand the call to the agent named Agent, or a bot speaking Protocol at URL
	TypeTransfer = "transfer" // send the call on: to a number through Trunk, or to a SIP URI
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

// CallInfo is what a route can match on.
type CallInfo struct {
	To, From string                   // URI users of the request-URI and From
	Trunk    string                   // the inbound trunk's name; "" when the call came on none
	Source   netip.Addr               // the INVITE's signalling source address
	Header   func(name string) string // a header of the INVITE, "" if absent; nil: none
	At       time.Time                // when the call arrived; zero: now
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
	// Ring is how long the caller hears ringing before the call is answered,
	// at least (ring: 2s); the target connects meanwhile.
	Ring time.Duration
	// MaxDuration hangs up an answered call after this long, cause
	// "max duration"; 0: no limit.
	MaxDuration time.Duration
	// TransferMethod is how an agent's transfer goes: TransferRefer (the
	// default: REFER, bridging only when the caller's side refuses REFER) or
	// TransferBridge (always dial a second leg and bridge it).
	TransferMethod string

	to, from *matcher
}

// Target says what to do with a routed call. Which fields are set depends on Type.
type Target struct {
	Type     string // echo|play|reject|agent|transfer
	File     string // play: WAV path, resolved against the dialplan's directory
	Status   int    // reject: 400–699
	Reason   string // reject: optional reason phrase
	Agent    string // agent: name the bridge resolves ("default" is built in)
	URL      string // agent: optional endpoint, for agent kinds that need one
	Protocol string // agent: twilio|switchboard|audiosocket|openai-realtime; empty for a built-in agent
	// ConnectTimeout bounds connecting to the bot (agent with a protocol).
	ConnectTimeout time.Duration
	// ChunkMs is the audio per media message to a Twilio-protocol bot: 20
	// (Twilio's own, the default) to 100 in steps of 20.
	ChunkMs int
	// Params are rendered for each call and handed to the bot (Twilio
	// customParameters, the native start message); nil when none.
	Params *Params
	// OpenAI is the model session of a protocol: openai-realtime target.
	OpenAI *OpenAI
	// Room is the room of a room target (room.go).
	Room *Room
	// To is a transfer's destination: a SIP URI as written, or a number in
	// Dialable form ("+4930123456" for +49 30 123456 or 0049 30 123456).
	To string
	// Trunk is the outbound trunk a transfer goes through; always set for a
	// number, optional for a SIP URI.
	Trunk string
}

// Route returns the first route in file order whose match keys all match c,
// else the default; false if neither.
func (p *Plan) Route(c CallInfo) (*Route, bool) {
	to, from := Normalize(c.To), Normalize(c.From) // once per call, not per route
	for _, r := range p.routes {
		if r.matches(c, to, from) {
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
