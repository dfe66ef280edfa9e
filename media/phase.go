package media

import "time"

// ArrivalGrid is when the next 20 ms packet of the caller's stream would
// arrive over the fastest path seen: packets come on this grid plus their
// jitter. A clock that takes frames just after the grid gives them the
// jitter buffer's target delay and no more. ok is false until packets of 20 ms
// have come.
func (s *Stream) ArrivalGrid() (t time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.jb
	if !b.anchored || b.winLen == 0 || int64(b.lastDur)*50 != b.clock {
		return time.Time{}, false
	}
	return b.epoch.Add(time.Duration(b.due(b.nextTS))), true
}

// ready reports whether the next read plays a packet already buffered.
func (b *jitterBuffer) ready() bool {
	return b.started && b.playing && b.at(b.nextSeq) != nil
}
