package webroom

import (
	"testing"
)

func frameOf(v int16) []int16 {
	f := make([]int16, FrameSamples)
	for i := range f {
		f[i] = v
	}
	return f
}

// A sender that delivers five frames at once every 100 ms (livekit/sip #727)
// is heard without a single injected silent frame, in order, over 12 s.
func TestRingBurstyNoSilence(t *testing.T) {
	r := newRing()
	dst := make([]int16, FrameSamples)
	next, want := int16(1), int16(1)
	played := 0
	for tick := range 600 { // 12 s of 20 ms ticks
		if tick%5 == 0 {
			for range 5 {
				r.push(frameOf(next))
				next++
			}
		}
		if r.pop(dst) {
			if dst[0] != want {
				t.Fatalf("tick %d: frame %d, want %d", tick, dst[0], want)
			}
			want++
			played++
		}
	}
	st := r.stats()
	if st.Silent != 0 || st.Underruns != 0 || st.Dropped != 0 {
		t.Fatalf("bursty input: %+v; want no silence, underruns or drops", st)
	}
	if played < 595 {
		t.Fatalf("played %d frames of 600", played)
	}
}

// Bursts that arrive late by up to 3 ticks: one underrun at most re-primes
// with more margin, after which nothing more is lost.
func TestRingJitteryBurstsRecover(t *testing.T) {
	r := newRing()
	dst := make([]int16, FrameSamples)
	late := []int{0, 3, 1, 2, 0, 3, 3, 1}
	pending := 0
	for tick := range 600 {
		if tick%5 == 0 {
			pending += 5
		}
		if pending > 0 && tick%5 == late[(tick/5)%len(late)]%5 {
			for ; pending > 0; pending-- {
				r.push(frameOf(1))
			}
		}
		r.pop(dst)
	}
	st := r.stats()
	if st.Underruns > 2 {
		t.Fatalf("late bursts: %+v; want at most 2 underruns before the margin covers the lateness", st)
	}
	t.Logf("late bursts: %+v", st)
}

// A sender running fast for long does not build up latency without bound.
func TestRingBoundsLatency(t *testing.T) {
	r := newRing()
	dst := make([]int16, FrameSamples)
	for tick := range 500 {
		r.push(frameOf(1))
		if tick%2 == 0 {
			r.push(frameOf(1)) // 1.5× real time
		}
		r.pop(dst)
		if st := r.stats(); st.Queued > highFrames {
			t.Fatalf("tick %d: %d frames queued, want at most %d", tick, st.Queued, highFrames)
		}
	}
	if st := r.stats(); st.Dropped == 0 {
		t.Fatalf("no frames dropped from a sender at 1.5× real time: %+v", st)
	}
}

func TestFramerCutsChunks(t *testing.T) {
	f := newFramer()
	var got int
	for _, n := range []int{160, 1000, 7, 2713, 960} {
		f.write(make([]int16, n), func(fr []int16) {
			if len(fr) != FrameSamples {
				t.Fatalf("frame of %d samples", len(fr))
			}
			got++
		})
	}
	if want := (160 + 1000 + 7 + 2713 + 960) / FrameSamples; got != want {
		t.Fatalf("%d frames, want %d", got, want)
	}
}
