package bridge

import (
	"testing"
	"time"
)

func TestFrameClockCatchesUp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := newFrameClock(t0)
	steps := []struct {
		at   time.Duration
		want int
	}{
		{20 * time.Millisecond, 2},  // frame 0 and 1 are due at 20 ms
		{40 * time.Millisecond, 1},  // on time
		{100 * time.Millisecond, 3}, // two ticks missed: caught up
		{101 * time.Millisecond, 0}, // stale tick after a catch-up: nothing due
		{120 * time.Millisecond, 1},
		{2 * time.Second, maxCatchUp}, // a long stall is bounded
		{2020 * time.Millisecond, 1},
	}
	for _, s := range steps {
		if got := c.due(t0.Add(s.at)); got != s.want {
			t.Fatalf("at %v: %d frames due, want %d", s.at, got, s.want)
		}
	}
}
