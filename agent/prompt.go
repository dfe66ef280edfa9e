package agent

import (
	"context"
	"sync/atomic"
)

// Prompt plays a recorded prompt to the caller. With Then set, the call is
// handed to that agent once the prompt has played (the default agent greets,
// then echoes); without it, the call is hung up.
type Prompt struct {
	Samples []int16
	Rate    int
	Then    Agent
}

const promptDone = "prompt-done"

// Start implements Agent.
func (p Prompt) Start(ctx context.Context, call Call, ctl Controls) (Session, error) {
	s := &promptSession{p: p, ctx: ctx, call: call, ctl: ctl}
	ctl.Play(p.Samples, p.Rate)
	ctl.Mark(promptDone)
	return s, nil
}

type promptSession struct {
	p    Prompt
	ctx  context.Context
	call Call
	ctl  Controls
	next atomic.Pointer[sessionBox]
}

type sessionBox struct{ s Session }

func (s *promptSession) Audio(frame []int16, rate int) {
	if b := s.next.Load(); b != nil {
		b.s.Audio(frame, rate)
	}
}

func (s *promptSession) Event(e Event) {
	if b := s.next.Load(); b != nil {
		b.s.Event(e)
		return
	}
	if e.Kind != MarkPlayed || e.Name != promptDone {
		return
	}
	if s.p.Then == nil {
		s.ctl.Hangup("prompt played")
		return
	}
	next, err := s.p.Then.Start(s.ctx, s.call, s.ctl)
	if err != nil {
		s.ctl.Hangup("next agent: " + err.Error())
		return
	}
	s.next.Store(&sessionBox{next})
}

func (s *promptSession) Close() {
	if b := s.next.Load(); b != nil {
		b.s.Close()
	}
}
