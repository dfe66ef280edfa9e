package agent

import "context"

// Echo plays the caller's audio straight back: the caller hears themselves,
// and the digits they press come back as DTMF (as Asterisk's Echo does).
type Echo struct{}

// Start implements Agent.
func (Echo) Start(_ context.Context, _ Call, ctl Controls) (Session, error) {
	return &echoSession{ctl: ctl}, nil
}

type echoSession struct{ ctl Controls }

func (s *echoSession) Audio(frame []int16, rate int) { s.ctl.Play(frame, rate) }
func (s *echoSession) Event(e Event) {
	if e.Kind == DTMF {
		s.ctl.SendDTMF(string(e.Digit))
	}
}
func (s *echoSession) Close() {}
