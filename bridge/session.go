package bridge

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media/pcm"
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
	events chan agent.Event // call events for the agent (DTMF from RTP or SIP INFO)

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

	mu         sync.Mutex
	resamplers map[int]*pcm.Resampler // by source rate; agents stream at a steady rate
	scratch    []int16
}

func newSession(stream AudioStream, log *slog.Logger) *session {
	rate := stream.Rate()
	return &session{
		stream:   stream,
		rate:     rate,
		queue:    newPlayout(rate * 2), // grows if an agent bursts more than 2 s ahead
		log:      log,
		hangup:   make(chan string, 1),
		switchTo: make(chan legSwitch),
		events:   make(chan agent.Event, 32),
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

// deliver queues a call event for the agent; it never blocks the caller (a
// full queue drops the event, logged).
func (s *session) deliver(e agent.Event) {
	select {
	case s.events <- e:
	default:
		s.log.Warn("agent event queue full, event dropped", "event", e.Kind.String())
	}
}

// run pumps audio until the call ends and says who ended it and why. When ctx
// ends, the caller of run knows better whether the caller or the gateway did it.
func (s *session) run(ctx context.Context, as agent.Session) (by, cause string) {
	n := pcm.FrameSamples(s.rate)
	in := make([]int16, n)
	out := make([]int16, n)
	var due []string
	first := true
	var legDone <-chan struct{} // a bridged second leg ended (b2bua.go)

	// The clock is the wall clock, not the ticker: a tick the scheduler was
	// late for is caught up, so the caller gets 50 frames a second under load.
	clock := newFrameClock(time.Now())
	tick := time.NewTicker(pcm.FrameDuration)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return byGateway, context.Cause(ctx).Error()
		case <-s.stream.Done():
			return byGateway, s.stream.Err().Error()
		case reason := <-s.hangup:
			return byAgent, reason
		case sw := <-s.switchTo:
			s.bridged.Store(true)
			as, legDone = sw.target, sw.done
			s.queue.Clear()
			continue
		case <-legDone:
			return byAgent, "transfer target hung up"
		case e := <-s.events:
			as.Event(e)
			continue
		case now := <-tick.C:
			for range clock.due(now) {
				s.stream.ReadFrame(in)
				as.Audio(in, s.rate)

				_, talkspurt := s.queue.Pop(out)
				if err := s.stream.WriteFrame(out, first || talkspurt); err != nil {
					s.log.Debug("rtp write", "err", err)
				}
				first = false
				due = s.queue.Due(due[:0])
				for _, name := range due {
					as.Event(agent.Event{Kind: agent.MarkPlayed, Name: name})
				}
			}
		}
	}
}

// frameClock counts the 20 ms frames due since a call's start.
type frameClock struct {
	start time.Time
	done  int64 // frames handled
}

// maxCatchUp bounds the frames handled at once after a stall; beyond it the
// clock skips ahead (the audio of a long stall is lost either way).
const maxCatchUp = 10

func newFrameClock(start time.Time) *frameClock { return &frameClock{start: start} }

// due says how many frames to handle now: none for a stale tick that arrives
// right after a catch-up, several after a stall.
func (c *frameClock) due(now time.Time) int {
	want := int64(now.Sub(c.start)/pcm.FrameDuration) + 1
	k := want - c.done
	switch {
	case k < 1:
		return 0
	case k > maxCatchUp:
		k = maxCatchUp
		c.done = want - k
	}
	c.done += k
	return int(k)
}
