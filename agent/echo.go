package agent

import "context"

// Echo plays the caller's audio straight back: the caller hears themselves.
type Echo struct{}

// Start implements Agent.
func (Echo) Start(_ context.Context, _ Call, ctl Controls) (Session, error) {
	return &echoSession{ctl: ctl}, nil
}

type echoSession struct{ ctl Controls }

func (s *echoSession) Audio(frame []int16, rate int) { s.ctl.Play(frame, rate) }
func (s *echoSession) Event(Event)                   {}
func (s *echoSession) Close()                        {}
