package bridge

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/switchboard-voip/switchboard/media/pcm"
	"github.com/switchboard-voip/switchboard/media/warm"
)

// The frame clock drives every call's 20 ms frame from one goroutine per CPU
// rather than a ticker and a goroutine per call: a timing wheel of 1 ms slots,
// each call in the slot of its next frame. A call's frames keep their own
// exact schedule (a late wake is caught up), and the schedule can be shifted
// so that a frame is taken just after the caller's packet arrives.
const (
	wheelSlot  = time.Millisecond
	wheelSlots = int(pcm.FrameDuration / wheelSlot)
	// maxCatchUp bounds the frames handled at once after a stall; beyond it the
	// schedule skips ahead (the audio of a long stall is lost either way).
	maxCatchUp = 10
)

type frameClock struct {
	shards []*clockShard
	next   atomic.Uint32 // shards are handed out in turn

	// Health, counted only when it happens: frames taken more than 2, 5 and
	// 20 ms after they were due, and schedules moved to follow the caller.
	late2, late5, late20, moves atomic.Uint64
}

// frames is the process's frame clock; its goroutines run only while calls do.
var frames = newFrameClock(runtime.GOMAXPROCS(0))

func newFrameClock(n int) *frameClock {
	c := &frameClock{shards: make([]*clockShard, max(n, 1))}
	for i := range c.shards {
		c.shards[i] = &clockShard{clock: c}
	}
	return c
}

// clockShard is one goroutine's wheel.
type clockShard struct {
	clock   *frameClock
	mu      sync.Mutex
	slots   [wheelSlots][]*clockEntry
	count   int
	running bool
	batch   []*clockEntry // the worker's copy of a slot
}

// clockEntry is one call on the clock. tick runs for each 20 ms frame, never
// two at once, on a shared goroutine: it must not block.
type clockEntry struct {
	shard   *clockShard
	tick    func(now time.Time)
	onPanic func(v any)

	mu      sync.Mutex // held while tick runs; stop waits on it
	stopped bool       // by stop, or by a panic in tick
	next    time.Time  // when the next frame is due; the clock goroutine's
	slot    int        // guarded by shard.mu
	idx     int        // position in its slot, guarded by shard.mu
	removed bool       // guarded by shard.mu

	// hot is the memory the entry's frame touches, as hotFn last said (called
	// on the clock goroutine after a frame, every hotEvery frames). The worker
	// warms it while the entry before this one runs: mostly in its system
	// calls, which is time the CPU can fetch in. Kept in the entry, so that
	// warming the entry brings the list along.
	hotFn  func(dst []warm.Span) []warm.Span
	hot    [hotMax]warm.Span
	hotLen int
	hotAge int
}

const (
	hotMax   = 40 // spans kept per entry; a call's frame has about 30
	hotEvery = 50 // frames between refreshes: buffers that grew or moved are found within a second
)

// newClockEntry is an entry for start: tick every 20 ms; onPanic runs (on
// the clock goroutine) if tick panics, the entry stopped by then.
func newClockEntry(tick func(now time.Time), onPanic func(v any)) *clockEntry {
	return &clockEntry{tick: tick, onPanic: onPanic}
}

// start puts e on the clock, its first frame at once.
func (c *frameClock) start(e *clockEntry) {
	sh := c.shards[int(c.next.Add(1)-1)%len(c.shards)]
	e.shard, e.next = sh, time.Now()
	sh.mu.Lock()
	sh.insert(e)
	sh.count++
	if !sh.running {
		sh.running = true
		go sh.run()
	}
	sh.mu.Unlock()
}

// stop takes the entry off the clock; when it returns, tick is not running
// and will not run again. Not to be called from tick.
func (e *clockEntry) stop() {
	e.mu.Lock()
	e.stopped = true
	e.mu.Unlock()
	sh := e.shard
	sh.mu.Lock()
	if !e.removed {
		e.removed = true
		sh.remove(e)
		sh.count--
	}
	sh.mu.Unlock()
}

// align shifts the schedule so that frames fall at offset after grid, modulo
// 20 ms, when they are more than tolerance away from it. Called from tick.
func (e *clockEntry) align(grid time.Time, offset, tolerance time.Duration) {
	want := grid.Add(offset)
	d := want.Sub(e.next) % pcm.FrameDuration
	switch {
	case d > pcm.FrameDuration/2:
		d -= pcm.FrameDuration
	case d < -pcm.FrameDuration/2:
		d += pcm.FrameDuration
	}
	if d > tolerance || d < -tolerance {
		e.next = e.next.Add(d)
		if e.shard != nil {
			e.shard.clock.moves.Add(1)
		}
	}
}

// slotOf is the wheel slot of the first millisecond boundary at or after t:
// the worker reaches it no earlier than t.
func slotOf(t time.Time) int {
	ms := (t.UnixNano() + int64(wheelSlot) - 1) / int64(wheelSlot)
	return int(ms % int64(wheelSlots))
}

func (sh *clockShard) insert(e *clockEntry) {
	e.slot = slotOf(e.next)
	e.idx = len(sh.slots[e.slot])
	sh.slots[e.slot] = append(sh.slots[e.slot], e)
}

func (sh *clockShard) remove(e *clockEntry) {
	s := sh.slots[e.slot]
	last := len(s) - 1
	s[e.idx] = s[last]
	s[e.idx].idx = e.idx
	s[last] = nil
	sh.slots[e.slot] = s[:last]
}

// run is the shard's goroutine: it wakes at each millisecond and runs the
// entries of the slots that came due, until the shard is empty.
func (sh *clockShard) run() {
	last := time.Now().UnixNano()/int64(wheelSlot) - 1
	for {
		now := time.Now()
		ms := now.UnixNano() / int64(wheelSlot)
		if ms-last > int64(wheelSlots) {
			last = ms - int64(wheelSlots) // a stall of a whole round: every slot once
		}
		for m := last + 1; m <= ms; m++ {
			slot := int(m % int64(wheelSlots))
			sh.mu.Lock()
			if sh.count == 0 {
				sh.running = false
				sh.mu.Unlock()
				return
			}
			sh.batch = append(sh.batch[:0], sh.slots[slot]...)
			sh.mu.Unlock()
			for i, e := range sh.batch {
				if i+2 < len(sh.batch) {
					warm.Range(unsafe.Pointer(sh.batch[i+2]), unsafe.Sizeof(clockEntry{}))
				}
				if i+1 < len(sh.batch) {
					sh.batch[i+1].warm()
				}
				if e.run(now) {
					sh.mu.Lock()
					if !e.removed && e.slot != slotOf(e.next) {
						sh.remove(e)
						sh.insert(e)
					}
					sh.mu.Unlock()
				}
			}
			clear(sh.batch)
		}
		last = ms
		sh.warmSlot(int((ms + 1) % int64(wheelSlots)))
		time.Sleep(time.Duration((ms+1)*int64(wheelSlot) - time.Now().UnixNano()))
	}
}

// warm has the entry's memory fetched into the caches; on the clock goroutine.
func (e *clockEntry) warm() { warm.Spans(e.hot[:e.hotLen]) }

// warmSlot warms the first entries of a slot before the worker sleeps towards
// it: no entry runs before them to hide their fetches behind.
func (sh *clockShard) warmSlot(slot int) {
	sh.mu.Lock()
	s := sh.slots[slot]
	if len(s) > 1 {
		warm.Range(unsafe.Pointer(s[1]), unsafe.Sizeof(clockEntry{}))
	}
	if len(s) > 0 {
		s[0].warm()
	}
	sh.mu.Unlock()
}

// run handles the entry's frames that are due at now; it reports whether its
// schedule moved to another slot.
func (e *clockEntry) run(now time.Time) (moved bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped || e.next.After(now) {
		return false
	}
	slot := slotOf(e.next)
	defer func() {
		if v := recover(); v != nil {
			e.stopped = true
			if e.onPanic != nil {
				e.onPanic(v)
			}
		}
	}()
	for k := 0; !e.next.After(now); k++ {
		if k == maxCatchUp {
			skip := now.Sub(e.next)/pcm.FrameDuration + 1
			e.next = e.next.Add(skip * pcm.FrameDuration)
			break
		}
		if late := now.Sub(e.next); late > 2*time.Millisecond && e.shard != nil {
			e.shard.clock.noteLate(late)
		}
		e.next = e.next.Add(pcm.FrameDuration)
		e.tick(now)
	}
	if e.hotFn != nil {
		if e.hotAge--; e.hotAge <= 0 {
			e.hotLen, e.hotAge = copy(e.hot[:], e.hotFn(e.hot[:0])), hotEvery
		}
	}
	return slotOf(e.next) != slot
}

func (c *frameClock) noteLate(d time.Duration) {
	c.late2.Add(1)
	if d > 5*time.Millisecond {
		c.late5.Add(1)
	}
	if d > 20*time.Millisecond {
		c.late20.Add(1)
	}
}
