package webroom

import (
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"
)

// Room mixes its participants on a 20 ms clock of its own.
type Room struct {
	name string
	log  *slog.Logger
	quit chan struct{}
	done chan struct{}
	once sync.Once

	mu    sync.Mutex
	parts []*participant

	// Owned by the clock goroutine: reused every tick.
	snap []*participant
	sum  []int32
	out  []int16
}

// participant is one input and one output of the mix.
type participant struct {
	info ParticipantInfo
	log  *slog.Logger
	in   *ring
	// send takes the mix for this participant, on the room's clock; it must
	// not block or keep the slice.
	send func(mix []int16)
	// kick removes the participant from outside (room deleted).
	kick func(reason string)

	frame []int16 // this tick's input; clock goroutine only
	has   bool
}

// ParticipantInfo is what the room tells about a participant.
type ParticipantInfo struct {
	ID     string    `json:"id"`
	Kind   string    `json:"kind"` // phone|browser
	Name   string    `json:"name,omitempty"`
	CallID string    `json:"call_id,omitempty"`
	Joined time.Time `json:"joined"`
	Input  ringStats `json:"input"`
}

func newParticipant(info ParticipantInfo, log *slog.Logger) *participant {
	info.Joined = time.Now().UTC()
	return &participant{info: info, log: log, in: newRing(), frame: make([]int16, FrameSamples)}
}

func newRoom(name string, log *slog.Logger) *Room {
	return &Room{name: name, log: log, quit: make(chan struct{}), done: make(chan struct{}),
		sum: make([]int32, FrameSamples), out: make([]int16, FrameSamples)}
}

// Name is the room's name.
func (r *Room) Name() string { return r.name }

func (r *Room) add(p *participant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = append(r.parts, p)
}

// remove reports whether p was in the room.
func (r *Room) remove(p *participant) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.Index(r.parts, p)
	if i < 0 {
		return false
	}
	r.parts = slices.Delete(r.parts, i, i+1)
	return true
}

func (r *Room) removeAll() []*participant {
	r.mu.Lock()
	defer r.mu.Unlock()
	parts := r.parts
	r.parts = nil
	return parts
}

func (r *Room) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.parts)
}

func (r *Room) list() []ParticipantInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ParticipantInfo, len(r.parts))
	for i, p := range r.parts {
		out[i] = p.info
		out[i].Input = p.in.stats()
	}
	return out
}

// stop ends the clock; idempotent.
func (r *Room) stop() { r.once.Do(func() { close(r.quit) }) }

// run is the room's clock: a tick every 20 ms against the start time, so
// timer lateness does not accumulate; after a long stall it starts afresh
// rather than bursting the backlog.
func (r *Room) run() {
	defer close(r.done)
	const tick = 20 * time.Millisecond
	start := time.Now()
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for n := 1; ; n++ {
		select {
		case <-r.quit:
			return
		case <-timer.C:
		}
		r.mix()
		next := start.Add(time.Duration(n+1) * tick)
		wait := time.Until(next)
		if wait < -10*tick {
			start, n, wait = time.Now(), 0, tick
		}
		timer.Reset(max(wait, 0))
	}
}

// mix takes one frame from each participant and sends each the sum of the
// others: an int32 sum, clipped to 16 bits per listener.
func (r *Room) mix() {
	r.mu.Lock()
	r.snap = append(r.snap[:0], r.parts...)
	r.mu.Unlock()

	clear(r.sum)
	for _, p := range r.snap {
		p.has = p.in.pop(p.frame)
		if !p.has {
			continue
		}
		for i, s := range p.frame {
			r.sum[i] += int32(s)
		}
	}
	for _, p := range r.snap {
		for i, v := range r.sum {
			if p.has {
				v -= int32(p.frame[i])
			}
			r.out[i] = clip(v)
		}
		p.send(r.out)
	}
	clear(r.snap) // drop references to participants that may leave
}

func clip(v int32) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
