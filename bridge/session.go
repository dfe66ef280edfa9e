package bridge

import (
	"context"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
	"github.com/switchboard-voip/switchboard/sip"
)

// Who ended a call.
const (
	byCaller  = "caller"
	byAgent   = "agent"
	byGateway = "gateway"
)

// session runs one call's audio between an AudioStream and an agent session.
// It is the agent's Controls.
type session struct {
	stream AudioStream
	rate   int
	queue  *playout
	log    *slog.Logger

	hangup chan string

	// sendDTMF and transfer carry out those agent actions; the gateway sets
	// them before the session starts. nil: not possible on this call.
	sendDTMF func(digits string) error
	transfer func(target string) error
	// firstAudio times the agent's first audio after answer (stages.go); nil: not timed.
	firstAudio *firstAudio

	// switchTo replaces the agent by a second leg (b2bua.go); from then on
	// bridged is set and the old agent's controls are ignored.
	switchTo chan legSwitch
	bridged  atomic.Bool
	ended    chan endReason // a frame ended the call

	// What the frames see, set before run and then touched only by tick.
	as           agent.Session
	in, out      []int16
	due          []string
	first        bool
	frameN       int
	clock        *clockEntry
	legDone      <-chan struct{}          // a bridged second leg ended (b2bua.go)
	grid         func() (time.Time, bool) // the caller's packet arrival grid (media.Stream.ArrivalGrid); nil: none
	dtmfRTP      <-chan media.DTMFEvent   // caller digits (dtmf.go)
	dtmfInfo     <-chan rune              // caller digits by SIP INFO
	metrics      *Metrics                 // counts the digits
	mediaChanges <-chan sip.Media         // re-INVITE and UPDATE (hold.go)
	follow       *mediaFollower

	mu         sync.Mutex
	resamplers map[int]*pcm.Resampler // by source rate; agents stream at a steady rate
	scratch    []int16
}

func newSession(stream AudioStream, log *slog.Logger) *session {
	rate := stream.Rate()
	return &session{
		stream:   stream,
		rate:     rate,
		queue:    newPlayout(pcm.FrameSamples(rate)),
		log:      log,
		hangup:   make(chan string, 1),
		switchTo: make(chan legSwitch, 1), // buffered: takeEvents sees it by len
		ended:    make(chan endReason, 1),
	}
}

// Play implements agent.Controls.
func (s *session) Play(samples []int16, rate int) {
	if s.bridged.Load() {
		return // the caller is bridged to a second leg: the agent is gone
	}
	s.firstAudio.audio()
	if rate == s.rate || rate == 0 {
		s.queue.Push(samples)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.resamplers[rate]
	if r == nil {
		if s.resamplers == nil {
			s.resamplers = make(map[int]*pcm.Resampler)
		}
		r = pcm.NewResampler(rate, s.rate)
		s.resamplers[rate] = r
	}
	s.scratch = r.Process(s.scratch, samples)
	s.queue.Push(s.scratch)
}

// Mark implements agent.Controls.
func (s *session) Mark(name string) { s.queue.Mark(name) }

// Clear implements agent.Controls.
func (s *session) Clear() { s.queue.Clear() }

// Queued implements agent.Controls.
func (s *session) Queued() time.Duration {
	return time.Duration(s.queue.Len()) * time.Second / time.Duration(s.rate)
}

// Hangup implements agent.Controls.
func (s *session) Hangup(reason string) {
	if s.bridged.Load() {
		s.log.Debug("agent hang-up after a bridged transfer ignored", "reason", reason)
		return
	}
	select {
	case s.hangup <- reason:
	default: // one hang-up is enough
	}
}

// SendDTMF implements agent.Controls.
func (s *session) SendDTMF(digits string) {
	if s.sendDTMF == nil {
		s.log.Warn("agent asked to send DTMF; not possible on this call", "digits", digits)
		return
	}
	if err := s.sendDTMF(digits); err != nil {
		s.log.Warn("send dtmf", "digits", digits, "err", err)
	}
}

// Transfer implements agent.Controls.
func (s *session) Transfer(target string) {
	if s.transfer == nil {
		s.log.Warn("agent asked to transfer; not possible on this call", "target", target)
		return
	}
	if err := s.transfer(target); err != nil {
		s.log.Warn("transfer", "target", target, "err", err)
	}
}

// run pumps audio until the call ends and says who ended it and why. When ctx
// ends, the caller of run knows better whether the caller or the gateway did it.
// The frames run on the shared frame clock (clock.go); this goroutine only waits.
func (s *session) run(ctx context.Context, as agent.Session) (by, cause string) {
	n := pcm.FrameSamples(s.rate)
	s.as, s.in, s.out, s.first = as, make([]int16, n), make([]int16, n), true
	s.clock = newClockEntry(s.tick, func(v any) {
		s.log.Error("call clock panic", "panic", v, "stack", string(debug.Stack()))
		s.end(byGateway, "internal error")
	})
	s.clock.hotFn = s.hotSpans
	frames.start(s.clock)
	defer s.clock.stop()
	select {
	case <-ctx.Done():
		return byGateway, context.Cause(ctx).Error()
	case <-s.stream.Done():
		return byGateway, s.stream.Err().Error()
	case reason := <-s.hangup:
		return byAgent, reason
	case r := <-s.ended:
		return r.by, r.cause
	}
}

// endReason is how a frame ended the call.
type endReason struct{ by, cause string }

// end makes run return; from the clock goroutine.
func (s *session) end(by, cause string) {
	select {
	case s.ended <- endReason{by, cause}:
	default: // one end is enough
	}
}

// alignEvery is how often, in frames, the clock's phase is checked against the
// caller's packets; alignSlack is how far it may be off before it moves, and
// alignOffset where it goes: just after the packets' fastest arrival.
const (
	// eventsEvery is how often, in frames, the call's events are looked at:
	// 60 ms is nothing to a digit or a hold, and the channels of a thousand
	// calls are not all pulled into the cache every 20 ms.
	eventsEvery = 3
	alignEvery  = 25
	alignSlack  = 2 * time.Millisecond
	alignOffset = 500 * time.Microsecond
)

// tick is one 20 ms frame, on the frame clock: the call's events, the
// caller's frame to the agent, and the agent's next frame to the caller.
func (s *session) tick(now time.Time) {
	if !s.takeEvents() {
		return
	}
	s.stream.ReadFrame(s.in)
	s.as.Audio(s.in, s.rate)

	_, talkspurt := s.queue.Pop(s.out)
	if err := s.stream.WriteFrame(s.out, s.first || talkspurt); err != nil {
		s.log.Debug("rtp write", "err", err)
	}
	s.first = false
	s.due = s.queue.Due(s.due[:0])
	for _, name := range s.due {
		s.as.Event(agent.Event{Kind: agent.MarkPlayed, Name: name})
	}
	if s.frameN++; s.grid != nil && s.frameN%alignEvery == 0 {
		if g, ok := s.grid(); ok {
			s.clock.align(g, alignOffset, alignSlack)
		}
	}
}

// takeEvents hands the agent what happened since the last frame; false when the
// call is ending.
func (s *session) takeEvents() bool {
	if s.frameN%eventsEvery != 0 {
		return true
	}
	if s.legDone == nil && len(s.switchTo)+len(s.dtmfRTP)+len(s.dtmfInfo)+len(s.mediaChanges) == 0 {
		return true // the usual case: nothing happened, and a select of six cases costs
	}
	for {
		select {
		case sw := <-s.switchTo:
			s.bridged.Store(true)
			s.as, s.legDone = sw.target, sw.done
			s.queue.Clear()
		case <-s.legDone:
			s.legDone = nil
			s.end(byAgent, "transfer target hung up")
			return false
		case e := <-s.dtmfRTP:
			s.digit(e.Digit, viaRFC4733)
		case d := <-s.dtmfInfo:
			s.digit(d, viaInfo)
		case m := <-s.mediaChanges:
			s.follow.apply(m)
		default:
			return true
		}
	}
}
