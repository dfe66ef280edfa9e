package bridge

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// firstRTP times answer → the caller's first RTP packet. It wraps the call's
// AudioStream; ReadFrame runs on the call's clock, so no lock is needed.
type firstRTP struct {
	AudioStream
	packets  func() uint64 // RTP packets received so far
	answered time.Time     // set before the session runs
	obs      prometheus.Observer
	seen     bool
}

func (f *firstRTP) ReadFrame(dst []int16) bool {
	ok := f.AudioStream.ReadFrame(dst)
	if !f.seen && f.packets() > 0 { // a counter read per tick, only until the first packet
		f.seen = true
		f.obs.Observe(time.Since(f.answered).Seconds())
	}
	return ok
}

// firstAudio times answer → the agent's first audio. An agent that queued
// audio before the answer (a greeting) scores 0.
type firstAudio struct {
	obs prometheus.Observer

	mu       sync.Mutex
	answered time.Time
	early    bool        // audio came before the answer
	done     atomic.Bool // observed; later Plays skip the lock
}

// audio is called on every Play; only the first one after answer counts.
func (f *firstAudio) audio() {
	if f == nil || f.done.Load() {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.done.Load():
	case f.answered.IsZero():
		f.early = true
	default:
		f.done.Store(true)
		f.obs.Observe(time.Since(f.answered).Seconds())
	}
}

// answer marks the 200 OK; audio that arrived before it is observed as 0.
func (f *firstAudio) answer(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.answered = t
	if f.early && !f.done.Load() {
		f.done.Store(true)
		f.obs.Observe(0)
	}
}
