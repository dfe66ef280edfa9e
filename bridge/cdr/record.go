// Package cdr keeps call detail records: one row per call, answered or not,
// written when the INVITE arrives and completed when the call ends, in SQLite
// (the default) or PostgreSQL.
package cdr

import "time"

// Who ended a call (Record.EndedBy).
const (
	ByCaller  = "caller"
	ByAgent   = "agent"
	ByGateway = "gateway"
)

// CauseCrashed is the cause of a record that a gateway left open when it died;
// the next start of that gateway closes it (see Store.Sweep).
const CauseCrashed = "gateway crashed"

// Record is one call. Zero times mean "not yet" (an unanswered call has no
// Answer; a call in progress has no End).
type Record struct {
	ID     string // ours, unique across nodes
	CallID string // SIP Call-ID
	Node   string // the gateway that took the call; the crash sweep closes only its own
	Trunk  string
	From   string
	To     string

	Route      string
	TargetType string // echo|play|reject|agent
	Target     string // agent name, bot URL or prompt file

	Start    time.Time
	Answer   time.Time
	End      time.Time
	LastSeen time.Time     // the writer's last sign of life for the call; a crashed call ends here
	Duration time.Duration // talk time: answer to end

	EndedBy  string // caller|agent|gateway
	Cause    string // why, in words ("bye", "cancel", "RTP timeout", "gateway crashed")
	Status   int    // SIP final status: 200 when answered, else the rejection; 0 if none was sent
	Abnormal bool   // the call did not end by a SIP exchange (the gateway crashed)

	Quality   Quality
	Recording string // path of the call's recording, if any
}

// Quality is the media summary of a call, toward and from the caller.
type Quality struct {
	PacketsIn  uint64
	PacketsOut uint64
	Lost       uint64
	Late       uint64
	JitterMs   float64 // interarrival jitter; 0 when not measured
	MOS        float64 // E-model estimate; 0 when not measured
}

// Open reports whether the call has not ended.
func (r *Record) Open() bool { return r.End.IsZero() }

// Filter selects records for List; records come newest first unless Oldest.
type Filter struct {
	Since  time.Time // started at or after; zero: any
	Limit  int       // at most this many; 0: all
	Oldest bool      // oldest first (exports)
}
