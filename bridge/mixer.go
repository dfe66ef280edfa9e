package bridge

import (
	"math"
	"slices"
	"sync"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// Mixer tuning, in 20 ms frames. A WebRTC participant's audio reaches us in
// bursts (an SFU's pacing, a TTS agent's chunks, the scheduler); a short
// fixed buffer that drops on overflow turns each burst into lost audio and
// then silence (livekit/sip#727: 100 ms of buffering gave 3.4 s of silence
// in 12 s). So each input gets a deep queue that never drops what a real-time
// source sends, starts playing once a little is queued, and waits for more
// (a larger prefill) after it runs dry.
const (
	mixStartFrames = 3   // queued before an input is first heard
	mixMaxPrefill  = 15  // prefill after repeated underruns, at most
	mixQueueFrames = 50  // an input's queue; beyond it the oldest audio is dropped
	mixTrimWindow  = 100 // ticks over which an input's smallest depth is watched
	mixTrimSlack   = 4   // frames above the prefill that a window may keep at least
)

// mixer sums its inputs, one 20 ms frame per tick of the call's clock. Inputs
// are written from their own goroutines at their own pace; mix is called on
// the clock. Nothing allocates once the inputs exist.
type mixer struct {
	rate  int
	frame int
	queue int // frames each input's queue holds

	mu     sync.Mutex
	inputs []*mixInput
	acc    []int32
}

func newMixer(rate int) *mixer {
	n := pcm.FrameSamples(rate)
	return &mixer{rate: rate, frame: n, queue: mixQueueFrames, acc: make([]int32, n)}
}

// add makes a new input, silent until its first audio is queued.
func (m *mixer) add() *mixInput {
	in := &mixInput{
		frame:   m.frame,
		buf:     make([]int16, m.frame*m.queue),
		prefill: mixStartFrames,
		minSeen: math.MaxInt,
	}
	m.mu.Lock()
	m.inputs = append(m.inputs, in)
	m.mu.Unlock()
	return in
}

// remove drops an input (its participant left, its track ended).
func (m *mixer) remove(in *mixInput) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if i := slices.Index(m.inputs, in); i >= 0 {
		m.inputs = slices.Delete(m.inputs, i, i+1)
	}
}

// Len is the number of inputs.
func (m *mixer) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.inputs)
}

// mix writes the next frame into dst (len = one frame): every input that has
// audio due, summed in 32 bits and clipped. It reports whether any input
// contributed.
func (m *mixer) mix(dst []int16) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	clear(m.acc)
	any := false
	for _, in := range m.inputs {
		any = in.addTo(m.acc) || any
	}
	for i, v := range m.acc {
		dst[i] = int16(min(max(v, math.MinInt16), math.MaxInt16))
	}
	return any
}

// mixInput is one input's jitter-tolerant queue: a ring of samples written in
// bursts and read one frame per tick.
type mixInput struct {
	frame int

	mu      sync.Mutex
	buf     []int16 // ring
	head, n int
	playing bool // false: waiting for prefill frames before being heard
	prefill int  // frames to wait for
	dry     bool // ran out while playing; the next write says whether it was late

	minSeen int // smallest depth (samples) in the current trim window
	ticks   int // ticks in the current trim window

	stats mixStats
}

// mixStats count what an input's queue did.
type mixStats struct {
	Frames    int64 // frames mixed in
	Underruns int64 // times the input ran dry and its audio came late: silence injected
	Dropped   int64 // samples dropped: queue overflow or latency trimmed
}

// write queues samples (at the mixer's rate, any length). talkspurt says the
// sender was silent before them on purpose (Opus DTX, a new utterance), so
// running dry before them was no lateness. A writer far ahead of real time
// loses its oldest audio beyond the queue's length.
func (in *mixInput) write(s []int16, talkspurt bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.dry {
		in.dry = false
		if !talkspurt {
			// Late audio: wait for a deeper prefill than last time, so a
			// source that bursts this way keeps playing next time.
			in.stats.Underruns++
			in.prefill = min(in.prefill*2, mixMaxPrefill, len(in.buf)/in.frame-1)
		}
	}
	if len(s) > len(in.buf) {
		in.stats.Dropped += int64(len(s) - len(in.buf))
		s = s[len(s)-len(in.buf):]
	}
	if over := in.n + len(s) - len(in.buf); over > 0 {
		in.skip(over)
		in.stats.Dropped += int64(over)
	}
	tail := (in.head + in.n) % len(in.buf)
	c := copy(in.buf[tail:], s)
	copy(in.buf, s[c:])
	in.n += len(s)
}

// skip drops the k oldest samples. Called with mu held.
func (in *mixInput) skip(k int) {
	in.head = (in.head + k) % len(in.buf)
	in.n -= k
}

// addTo adds the input's next frame to acc, if it has one due.
func (in *mixInput) addTo(acc []int32) bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !in.playing {
		if in.n < in.prefill*in.frame {
			return false
		}
		in.playing = true
	}
	if in.n < in.frame {
		in.playing, in.dry = false, true
		in.minSeen, in.ticks = math.MaxInt, 0
		return false
	}
	in.trim()
	seg := in.buf[in.head:min(in.head+in.frame, len(in.buf))] // the ring may wrap once
	for i, v := range seg {
		acc[i] += int32(v)
	}
	for i, v := range in.buf[:in.frame-len(seg)] {
		acc[len(seg)+i] += int32(v)
	}
	in.skip(in.frame)
	in.stats.Frames++
	return true
}

// trim keeps a backlog from becoming lasting delay: when the queue never went
// below prefill+slack frames for a whole window (a stall released all at once,
// or a sender's clock running fast), the excess is dropped.
func (in *mixInput) trim() {
	in.minSeen = min(in.minSeen, in.n)
	if in.ticks++; in.ticks < mixTrimWindow {
		return
	}
	if keep := (in.prefill + mixTrimSlack) * in.frame; in.minSeen > keep {
		k := in.minSeen - in.prefill*in.frame
		in.skip(k)
		in.stats.Dropped += int64(k)
	}
	in.minSeen, in.ticks = math.MaxInt, 0
}

// Stats reports what the input's queue did so far.
func (in *mixInput) Stats() mixStats {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.stats
}
