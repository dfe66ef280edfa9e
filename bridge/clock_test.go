package bridge

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestClockEntryCatchesUp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var n int
	e := &clockEntry{tick: func(time.Time) { n++ }, next: t0}
	steps := []struct {
		at   time.Duration
		want int
	}{
		{0, 1},                        // the first frame is due at once
		{20 * time.Millisecond, 1},    // on time
		{100 * time.Millisecond, 4},   // three ticks missed: caught up
		{101 * time.Millisecond, 0},   // a stale wake after a catch-up: nothing due
		{120 * time.Millisecond, 1},   // back on the schedule
		{2 * time.Second, maxCatchUp}, // a long stall is bounded
		{2020 * time.Millisecond, 1},  // and the schedule skipped ahead
	}
	for _, s := range steps {
		n = 0
		e.run(t0.Add(s.at))
		if n != s.want {
			t.Fatalf("at %v: %d frames, want %d", s.at, n, s.want)
		}
	}
}

func TestClockEntryAligns(t *testing.T) {
	t0 := time.Unix(1000, 0)
	e := &clockEntry{next: t0.Add(3 * time.Millisecond)}
	grid := t0.Add(7*time.Millisecond + 5*20*time.Millisecond) // any period of the grid
	e.align(grid, 500*time.Microsecond, 2*time.Millisecond)
	if got := e.next.Sub(t0); got != 7500*time.Microsecond {
		t.Fatalf("next at %v, want 7.5ms", got)
	}
	e.align(grid.Add(time.Millisecond), 500*time.Microsecond, 2*time.Millisecond) // within the slack: stays
	if got := e.next.Sub(t0); got != 7500*time.Microsecond {
		t.Fatalf("moved within the slack: next at %v", got)
	}
	e.align(t0.Add(-1*time.Millisecond), 0, 2*time.Millisecond) // the short way round: back 8.5 ms
	if got := e.next.Sub(t0); got != -1*time.Millisecond {
		t.Fatalf("next at %v, want -1ms", got)
	}
}

// TestFrameClockRuns drives entries on real shard goroutines: frames come at
// 20 ms, stop is final, and a panicking tick stops only its own entry.
func TestFrameClockRuns(t *testing.T) {
	c := newFrameClock(2)
	var a, b atomic.Int64
	var panicked atomic.Bool
	ea := newClockEntry(func(time.Time) { a.Add(1) }, nil)
	eb := newClockEntry(func(time.Time) {
		if b.Add(1) == 3 {
			panic("agent bug")
		}
	}, func(any) { panicked.Store(true) })
	c.start(ea)
	c.start(eb)
	time.Sleep(400 * time.Millisecond)
	ea.stop()
	got := a.Load()
	if got < 10 || got > 22 { // 20 frames in 400 ms, with room for a loaded machine
		t.Errorf("%d frames in 400 ms, want about 20", got)
	}
	time.Sleep(60 * time.Millisecond)
	if a.Load() != got {
		t.Errorf("ticks after stop: %d then %d", got, a.Load())
	}
	if !panicked.Load() || b.Load() != 3 {
		t.Errorf("panicking entry: onPanic %v, %d ticks (want 3, then stopped)", panicked.Load(), b.Load())
	}
	eb.stop()
	for _, sh := range c.shards { // empty shards let their goroutines go
		deadline := time.Now().Add(time.Second)
		for {
			sh.mu.Lock()
			running, count := sh.running, sh.count
			sh.mu.Unlock()
			if !running && count == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("shard still running with %d entries", count)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
