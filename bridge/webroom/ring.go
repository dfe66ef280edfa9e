package webroom

import "sync"

// Input buffering of one participant, in 20 ms frames of FrameSamples.
const (
	ringFrames    = 25 // 500 ms: room for a bursty sender's backlog
	highFrames    = 12 // above this many queued at a tick, drop back to the prime level (clock drift)
	primeFrames   = 2  // frames queued before playout starts, and again after an underrun
	maxPrimeLevel = 5  // each underrun adds a frame of margin, up to 100 ms
)

// ring is one participant's input between its own clock (a phone call's
// 20 ms tick, RTP arrival from a browser) and the room's mixing clock.
// Bursts are absorbed rather than dropped: frames that arrive early wait
// their turn, so a sender that delivers five frames at once every 100 ms is
// heard without gaps. An underrun re-primes with one more frame of margin.
type ring struct {
	mu        sync.Mutex
	buf       []int16 // ringFrames frames
	head, n   int     // oldest frame, frames queued
	prime     int     // frames wanted before playout (re)starts
	playing   bool
	started   bool   // has played at least once
	underruns uint64 // times the buffer ran dry after playout began
	silent    uint64 // ticks without a frame after playout began: injected silence
	dropped   uint64 // frames discarded: overflow or latency trim
}

func newRing() *ring {
	return &ring{buf: make([]int16, ringFrames*FrameSamples), prime: primeFrames}
}

// push queues one frame (len FrameSamples); a full ring drops its oldest.
func (r *ring) push(f []int16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == ringFrames {
		r.head = (r.head + 1) % ringFrames
		r.n--
		r.dropped++
	}
	i := (r.head + r.n) % ringFrames
	copy(r.buf[i*FrameSamples:(i+1)*FrameSamples], f)
	r.n++
}

// pop copies the next frame into dst; false when none is due (still priming,
// or an underrun).
func (r *ring) pop(dst []int16) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.playing {
		if r.n < r.prime {
			if r.started {
				r.silent++
			}
			return false
		}
		r.playing, r.started = true, true
	}
	if r.n == 0 {
		r.underruns++
		r.silent++
		r.playing = false
		r.prime = min(r.prime+1, maxPrimeLevel)
		return false
	}
	if r.n > highFrames { // a sender running fast for long: keep latency bounded
		drop := r.n - r.prime
		r.head = (r.head + drop) % ringFrames
		r.n -= drop
		r.dropped += uint64(drop)
	}
	copy(dst, r.buf[r.head*FrameSamples:(r.head+1)*FrameSamples])
	r.head = (r.head + 1) % ringFrames
	r.n--
	return true
}

// ringStats are a participant's input counters.
type ringStats struct {
	Underruns uint64 `json:"underruns"`
	Silent    uint64 `json:"silent_frames"`
	Dropped   uint64 `json:"dropped_frames"`
	Queued    int    `json:"queued_frames"`
}

func (r *ring) stats() ringStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return ringStats{Underruns: r.underruns, Silent: r.silent, Dropped: r.dropped, Queued: r.n}
}

// framer cuts a stream of samples of any chunk size into whole frames.
type framer struct {
	pending []int16
}

func newFramer() *framer { return &framer{pending: make([]int16, 0, 4*FrameSamples)} }

// write appends s and hands every complete frame to out.
func (f *framer) write(s []int16, out func([]int16)) {
	for len(s) > 0 {
		n := min(len(s), FrameSamples-len(f.pending))
		f.pending = append(f.pending, s[:n]...)
		s = s[n:]
		if len(f.pending) == FrameSamples {
			out(f.pending)
			f.pending = f.pending[:0]
		}
	}
}
