package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/bridge/webroom"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

// protocolAgents makes the agent for a bot target, by dialplan protocol.
// Adding a protocol is one entry here.
var protocolAgents = map[string]func(t dialplan.Target) (agent.Agent, error){
	dialplan.ProtocolTwilio: func(t dialplan.Target) (agent.Agent, error) {
		return agent.Twilio{URL: t.URL, ConnectTimeout: t.ConnectTimeout, ChunkMs: t.ChunkMs}, nil
	},
	dialplan.ProtocolSwitchboard: func(t dialplan.Target) (agent.Agent, error) {
		return agent.Native{URL: t.URL, ConnectTimeout: t.ConnectTimeout}, nil
	},
	dialplan.ProtocolAudioSocket: func(t dialplan.Target) (agent.Agent, error) {
		return agent.NewAudioSocket(t.URL, t.ConnectTimeout, nil)
	},
	dialplan.ProtocolOpenAI: openaiAgent,
}

// prepareRoute makes a route's targets ready to start: its target and then
// its fallbacks, tried in order. nil for a route that rejects the call.
func prepareRoute(r *dialplan.Route, prompts map[string]agent.Prompt, rooms *webroom.Hub) (agent.Agent, error) {
	if r.Target.Type == dialplan.TypeReject {
		return nil, nil
	}
	c := &chain{failStatus: r.FailStatus}
	for i, t := range append([]dialplan.Target{r.Target}, r.Fallback...) {
		a, err := prepareTarget(t, prompts, rooms)
		if err != nil {
			if i > 0 {
				err = fmt.Errorf("fallback %d: %w", i, err)
			}
			return nil, err
		}
		c.steps = append(c.steps, step{target: t, agent: a})
	}
	return c, nil
}

// prepareTarget makes one target ready to start; nil agent for reject.
func prepareTarget(t dialplan.Target, prompts map[string]agent.Prompt, rooms *webroom.Hub) (agent.Agent, error) {
	switch t.Type {
	case dialplan.TypeEcho:
		return agent.Echo{}, nil
	case dialplan.TypePlay:
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
	case dialplan.TypeAgent:
		if t.Protocol == "" {
			return agent.Builtin(t.Agent)
		}
		mk, ok := protocolAgents[t.Protocol]
		if !ok {
			return nil, fmt.Errorf("agent protocol %q is not supported yet", t.Protocol)
		}
		return mk(t)
	case dialplan.TypeReject:
		return nil, nil
	case dialplan.TypeRoom:
		if t.Room.Builtin != nil {
			return builtinRoom(t.Room.Builtin, rooms)
		}
		if t.Room.LiveKit != nil {
			return newLiveKitRoom(t.Room.LiveKit) // livekit.go
		}
	case dialplan.TypeTransfer:
		return &forward{target: t}, nil // forward.go; SetPlan binds it to the gateway
	}
	return nil, fmt.Errorf("target type %q is not supported yet", t.Type)
}

// describe names a target in logs.
func describe(t dialplan.Target) string {
	switch {
	case t.Protocol != "":
		return t.Protocol + " " + t.URL
	case t.Type == dialplan.TypeAgent:
		return "agent " + t.Agent
	case t.Type == dialplan.TypePlay:
		return "play " + t.File
	case t.Type == dialplan.TypeReject:
		return fmt.Sprintf("reject %d", t.Status)
	case t.Type == dialplan.TypeTransfer:
		return "transfer " + t.To
	}
	return t.Type
}

// rejectError says which SIP status a call gets when every target failed
// before answer.
type rejectError struct {
	status int
	reason string
	err    error
}

func (e *rejectError) Error() string { return e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

// failStatus is the final response for a call whose targets all failed to
// start: the route's on_failure status (503 by default).
func failStatus(err error) (int, string) {
	var re *rejectError
	if errors.As(err, &re) && re.status != 0 {
		return re.status, re.reason
	}
	return 503, "Service Unavailable"
}

// chain is a route's target and its fallbacks. Start tries them in order
// until one starts; a session lost mid-call (agent.Fail) is replaced by the
// next one, or the call is hung up.
type chain struct {
	steps      []step
	failStatus int
}

type step struct {
	target dialplan.Target
	agent  agent.Agent // nil: reject
}

// Start implements agent.Agent.
func (c *chain) Start(ctx context.Context, call agent.Call, ctl agent.Controls) (agent.Session, error) {
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	cs := &chainSession{c: c, ctx: ctx, call: call, ctl: ctl, log: log}
	cs.mu.Lock() // a failure reported during Start waits until Start is done
	defer cs.mu.Unlock()
	var errs []error
	for i := range c.steps {
		_, err := cs.start(i)
		if err == nil {
			if i > 0 {
				log.Warn("target failed before answer; fell back", "to", describe(c.steps[i].target), "errors", errors.Join(errs...))
			}
			return cs, nil
		}
		var re *rejectError
		if errors.As(err, &re) { // a reject fallback ends the chain with its own status
			return nil, err
		}
		log.Warn("target failed before answer", "target", describe(c.steps[i].target), "err", err)
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	status := c.failStatus
	if status == 0 {
		status = 503
	}
	status, reason := forwardStatus(errs, status) // a failed forward leg's own status (forward.go)
	return nil, &rejectError{status: status, reason: reason, err: errors.Join(errs...)}
}

// chainSession is the running step of a chain. Audio and Event go to the
// current session; a fallback swaps it.
type chainSession struct {
	c    *chain
	ctx  context.Context
	call agent.Call
	ctl  agent.Controls
	log  *slog.Logger

	cur atomic.Pointer[stepSession]

	mu     sync.Mutex // held while starting or replacing a step
	idx    int        // the step running (or last tried)
	closed bool
	wg     sync.WaitGroup // a fallback in progress
}

type stepSession struct {
	s   agent.Session
	idx int
}

// start starts step i, with mu held; it becomes the current session.
func (cs *chainSession) start(i int) (agent.Session, error) {
	cs.idx = i
	st := cs.c.steps[i]
	if st.agent == nil {
		t := st.target
		return nil, &rejectError{status: t.Status, reason: t.Reason, err: fmt.Errorf("route falls back to reject %d", t.Status)}
	}
	call := cs.call
	params, err := st.target.Params.Render(dialplan.CallData{From: call.From, To: call.To, CallID: call.ID, Route: call.Route, Headers: call.Headers})
	if err != nil {
		return nil, fmt.Errorf("params: %w", err)
	}
	call.Params = params
	s, err := st.agent.Start(cs.ctx, call, stepControls{Controls: cs.ctl, cs: cs, idx: i})
	if err != nil {
		return nil, err
	}
	cs.cur.Store(&stepSession{s: s, idx: i})
	return s, nil
}

// Audio implements agent.Session.
func (cs *chainSession) Audio(frame []int16, rate int) {
	if p := cs.cur.Load(); p != nil {
		p.s.Audio(frame, rate)
	}
}

// Event implements agent.Session.
func (cs *chainSession) Event(e agent.Event) {
	if p := cs.cur.Load(); p != nil {
		p.s.Event(e)
	}
}

// Close implements agent.Session; it waits for a fallback in progress.
func (cs *chainSession) Close() {
	cs.mu.Lock()
	cs.closed = true
	cs.mu.Unlock()
	cs.wg.Wait()
	if p := cs.cur.Swap(nil); p != nil {
		p.s.Close()
	}
}

// stepControls are the call's controls as one step sees them: Fail replaces
// that step by the next.
type stepControls struct {
	agent.Controls
	cs  *chainSession
	idx int
}

// Fail is how agent.Fail reaches the chain.
func (sc stepControls) Fail(err error) {
	cs := sc.cs
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed || cs.idx != sc.idx {
		return // already replaced, or the call is ending
	}
	cs.idx = -1 // one fallback per failed step
	cs.wg.Add(1)
	go cs.fallback(sc.idx, err) // not on the failed session's own goroutine: Close waits for it
}

// fallback replaces failed step i mid-call with the next step that starts,
// or hangs up.
func (cs *chainSession) fallback(i int, cause error) {
	defer cs.wg.Done()
	if p := cs.cur.Swap(nil); p != nil {
		p.s.Close()
	}
	cs.ctl.Clear() // the lost bot's queued audio is not the caller's business any more
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for j := i + 1; j < len(cs.c.steps) && !cs.closed && cs.ctx.Err() == nil; j++ {
		if cs.c.steps[j].agent == nil {
			break // reject: too late for a status, so hang up
		}
		s, err := cs.start(j)
		if err == nil {
			if cs.closed {
				cs.cur.Store(nil)
				s.Close()
				return
			}
			cs.log.Warn("agent lost mid-call; fell back", "cause", cause, "to", describe(cs.c.steps[j].target))
			return
		}
		cs.log.Warn("fallback failed", "target", describe(cs.c.steps[j].target), "err", err)
	}
	cs.log.Warn("agent lost mid-call; hanging up", "cause", cause)
	cs.ctl.Hangup("agent lost: " + cause.Error())
}

// openaiAgent reads the API key from the environment once, when the plan is
// loaded, so a missing key fails the plan rather than every call.
func openaiAgent(t dialplan.Target) (agent.Agent, error) {
	o := agent.OpenAIRealtime{URL: t.URL, ConnectTimeout: t.ConnectTimeout}
	env := dialplan.DefaultAPIKeyEnv
	if c := t.OpenAI; c != nil {
		o.Model, o.Voice, o.Instructions, o.Format = c.Model, c.Voice, c.Instructions, c.AudioFormat
		env = c.APIKeyEnv
	}
	if o.APIKey = os.Getenv(env); o.APIKey == "" {
		return nil, fmt.Errorf("openai-realtime: environment variable %s (api_key_env) is not set", env)
	}
	return agent.NewOpenAIRealtime(o)
}

// builtinRoom puts each call into the hosted room its name template renders to.
func builtinRoom(b *dialplan.BuiltinRoom, rooms *webroom.Hub) (agent.Agent, error) {
	if rooms == nil {
		return nil, errors.New("built-in rooms are not enabled on this gateway")
	}
	return rooms.Agent(func(c agent.Call) (string, error) {
		name, err := dialplan.Render(b.Name, dialplan.CallData{From: c.From, To: c.To, CallID: c.ID, Route: c.Route, Headers: c.Headers})
		if err != nil {
			return "", fmt.Errorf("room name: %w", err)
		}
		if !webroom.ValidName(name) {
			return "", fmt.Errorf("room name %q: %w", name, webroom.ErrBadName)
		}
		return name, nil
	}), nil
}
