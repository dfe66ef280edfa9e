package webroom

import (
	"context"
	"log/slog"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

// maxQueued bounds how far the room's mix may run ahead of a call's own
// clock; past it a frame is dropped rather than heard late.
const maxQueued = 100 * time.Millisecond

// Agent puts each call it starts into a room as a participant; room names
// the room for a call (a dialplan template, rendered).
func (h *Hub) Agent(room func(agent.Call) (string, error)) agent.Agent {
	return phoneAgent{h: h, room: room}
}

type phoneAgent struct {
	h    *Hub
	room func(agent.Call) (string, error)
}

// Start implements agent.Agent: the caller joins before the call is answered.
func (a phoneAgent) Start(_ context.Context, call agent.Call, ctl agent.Controls) (agent.Session, error) {
	name, err := a.room(call)
	if err != nil {
		return nil, err
	}
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	p := newParticipant(ParticipantInfo{ID: a.h.newID(KindPhone), Kind: KindPhone, Name: call.From, CallID: call.ID}, log)
	p.send = func(mix []int16) {
		if ctl.Queued() > maxQueued {
			return
		}
		ctl.Play(mix, Rate)
	}
	p.kick = ctl.Hangup
	s := &phoneSession{h: a.h, p: p, framer: newFramer()}
	if s.room, err = a.h.join(name, p); err != nil {
		return nil, err
	}
	return s, nil
}

// phoneSession is the call's side of its participant: Audio is its input.
type phoneSession struct {
	h    *Hub
	p    *participant
	room *Room

	// Audio's state: it runs on the call's clock goroutine only.
	framer    *framer
	resampler *pcm.Resampler
	fromRate  int
	scratch   []int16
}

// Audio implements agent.Session: the caller's frame, up to the room's rate.
func (s *phoneSession) Audio(frame []int16, rate int) {
	if rate != Rate {
		if s.resampler == nil || s.fromRate != rate {
			s.resampler, s.fromRate = pcm.NewResampler(rate, Rate), rate
			s.scratch = make([]int16, 0, 2*FrameSamples)
		}
		s.scratch = s.resampler.Process(s.scratch, frame)
		frame = s.scratch
	}
	s.framer.write(frame, s.p.in.push)
}

// Event implements agent.Session; a room has no use for the caller's digits.
func (s *phoneSession) Event(agent.Event) {}

// Close implements agent.Session: the caller leaves the room.
func (s *phoneSession) Close() { s.h.leave(s.room, s.p) }
