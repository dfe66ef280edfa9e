package cdr

import (
	"math"
	"sync"
	"time"
)

// Call builds one call's record as the call goes, saving a snapshot at each
// step. A nil *Call (records disabled) accepts every method and does nothing.
type Call struct {
	w     *Writer
	mu    sync.Mutex
	r     Record
	ended bool
}

// Begin starts the record of a call whose INVITE just arrived and saves it.
func (w *Writer) Begin(callID, from, to string) *Call {
	if w == nil {
		return nil
	}
	c := &Call{w: w, r: Record{
		ID: newID(), CallID: callID, Node: w.node, From: from, To: to,
		Start: time.Now().UTC(),
	}}
	w.Save(c.r)
	return c
}

// ID is the record's id ("" for a nil Call).
func (c *Call) ID() string {
	if c == nil {
		return ""
	}
	return c.r.ID
}

// Route records where the dialplan sent the call.
func (c *Call) Route(name, targetType, target string) {
	c.update(func(r *Record) { r.Route, r.TargetType, r.Target = name, targetType, target })
}

// Trunk records the trunk the call came in on.
func (c *Call) Trunk(name string) { c.update(func(r *Record) { r.Trunk = name }) }

// Recording records where the call's audio is being written.
func (c *Call) Recording(path string) { c.update(func(r *Record) { r.Recording = path }) }

// Answered records the 200 OK.
func (c *Call) Answered() {
	c.update(func(r *Record) { r.Answer, r.Status = time.Now().UTC(), 200 })
}

// Reject ends a call refused before answer with status.
func (c *Call) Reject(status int, cause string) { c.End(ByGateway, cause, status, Quality{}) }

// End completes the record; the first End wins. status 0 keeps the status
// already known (200 once answered).
func (c *Call) End(by, cause string, status int, q Quality) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	c.ended = true
	r := &c.r
	r.End = time.Now().UTC()
	if !r.Answer.IsZero() {
		r.Duration = r.End.Sub(r.Answer)
	}
	q.MOS = math.Round(q.MOS*100) / 100 // more digits than the model has
	q.JitterMs = math.Round(q.JitterMs*1000) / 1000
	r.EndedBy, r.Cause, r.Quality = by, cause, q
	if status != 0 {
		r.Status = status
	}
	snap := c.r
	c.mu.Unlock()
	c.w.Save(snap)
}

// Ended reports whether End was called.
func (c *Call) Ended() bool {
	if c == nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ended
}

func (c *Call) update(f func(*Record)) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if c.ended {
		c.mu.Unlock()
		return
	}
	f(&c.r)
	snap := c.r
	c.mu.Unlock()
	c.w.Save(snap)
}
