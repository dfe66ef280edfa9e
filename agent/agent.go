// Package agent holds what talks to a call's far end in terms of audio frames and
// call events: built-in agents now, bot protocols later. It knows nothing of SIP,
// SDP or RTP; the bridge drives a Session on the call's 20 ms clock.
package agent

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Call is what an agent is told about the call it serves.
type Call struct {
	ID     string
	From   string
	To     string
	Route  string
	Trunk  string            // the carrier trunk the call came in on; "" when none matched
	Params map[string]string // the route's params, rendered for this call
	Logger *slog.Logger      // the call's logger; nil: slog.Default()
	// Headers looks up a header of the caller's INVITE (for params templates); may be nil.
	Headers func(name string) string
}

// Fail tells the bridge that a session has failed mid-call (its bot is lost):
// the bridge falls back to the route's next target, or hangs up. Controls
// that cannot fall back just hang up.
func Fail(ctl Controls, err error) {
	if f, ok := ctl.(interface{ Fail(error) }); ok {
		f.Fail(err)
		return
	}
	ctl.Hangup(err.Error())
}

// Controls is how a session acts on its call. The bridge implements it; every
// method is safe to call from any goroutine and returns at once.
type Controls interface {
	// Play queues audio toward the caller (any length, any of 8/16/24/48 kHz);
	// the bridge paces it out at real time.
	Play(samples []int16, rate int)
	// Mark queues a named marker: a MarkPlayed event comes back when all audio
	// queued before it has played (at once if nothing is queued).
	Mark(name string)
	// Clear drops queued audio at once (barge-in); pending marks come back as played.
	Clear()
	// Queued is how much audio is queued and not yet played, so a session can
	// tell a model how much of its reply the caller actually heard.
	Queued() time.Duration
	// Hangup ends the call.
	Hangup(reason string)
	// SendDTMF sends digits (0-9 * # A-D) to the caller as RFC 4733 events.
	SendDTMF(digits string)
	// Transfer hands the caller to target (a SIP URI or a number) and ends the
	// session's part in the call.
	Transfer(target string)
}

// Session is one call's agent. Audio and Event are called on the call's clock
// goroutine and must not block.
type Session interface {
	Audio(frame []int16, rate int)
	Event(e Event)
	Close()
}

// Agent starts sessions. Start runs while the caller hears ringing; the call is
// answered when it returns without error.
type Agent interface {
	Start(ctx context.Context, call Call, ctl Controls) (Session, error)
}

// EventKind names a call event.
type EventKind int

const (
	// DTMF: a digit from the caller, in Digit.
	DTMF EventKind = iota + 1
	// MarkPlayed: the audio before the mark Name has played (or was cleared).
	MarkPlayed
)

func (k EventKind) String() string {
	switch k {
	case DTMF:
		return "dtmf"
	case MarkPlayed:
		return "mark"
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is a call event delivered to a session.
type Event struct {
	Kind  EventKind
	Digit rune
	Name  string
}
