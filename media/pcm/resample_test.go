package pcm

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// settled drops the filter's start-up transient so that levels are measured in steady state.
func settled(x []int16, rate int) []int16 { return x[rate/20:] } // 50 ms

func ratioDB(a, b float64) float64 { return 10 * math.Log10(a/b) }

// streamResample runs src through r in 20 ms frames, as a call would.
func streamResample(r *Resampler, src []int16, from int) []int16 {
	var out, buf []int16
	n := FrameSamples(from)
	for i := 0; i+n <= len(src); i += n {
		buf = r.Process(buf, src[i:i+n])
		out = append(out, buf...)
	}
	return out
}

func TestResampleRoundTripKeepsLevel(t *testing.T) {
	src := Tone(1000, 8000, 8000, 0.5)
	up := streamResample(NewResampler(8000, 48000), src, 8000)
	if len(up) != 6*len(src) {
		t.Fatalf("8→48 kHz gave %d samples, want %d", len(up), 6*len(src))
	}
	down := streamResample(NewResampler(48000, 8000), up, 48000)
	if len(down) != len(src) {
		t.Fatalf("48→8 kHz gave %d samples, want %d", len(down), len(src))
	}
	in := Goertzel(settled(src, 8000), 8000, 1000)
	out := Goertzel(settled(down, 8000), 8000, 1000)
	if d := ratioDB(out, in); math.Abs(d) > 0.5 {
		t.Errorf("1 kHz after 8→48→8 kHz: %.2f dB, want within ±0.5 dB", d)
	}
	if f := DominantFrequency(settled(up, 48000), 48000); f != 1000 {
		t.Errorf("dominant frequency at 48 kHz = %v, want 1000", f)
	}
}

func TestResamplePassband(t *testing.T) {
	rates := []int{8000, 16000, 24000, 48000}
	for _, from := range rates {
		for _, to := range rates {
			t.Run(fmt.Sprintf("%d-%d", from, to), func(t *testing.T) {
				for _, freq := range []float64{300, 1000, 3000} {
					src := Tone(freq, from, from, 0.5)
					out := streamResample(NewResampler(from, to), src, from)
					if want := len(src) * to / from; len(out) != want {
						t.Fatalf("got %d samples, want %d", len(out), want)
					}
					in := Goertzel(settled(src, from), from, freq)
					got := Goertzel(settled(out, to), to, freq)
					if d := ratioDB(got, in); math.Abs(d) > 0.25 {
						t.Errorf("%v Hz: %.2f dB, want within ±0.25 dB", freq, d)
					}
				}
			})
		}
	}
}

func TestResampleAntiAliasing(t *testing.T) {
	tests := []struct {
		from, to int
		freq     float64 // above the output's Nyquist
	}{
		{16000, 8000, 6000},
		{16000, 8000, 4500},
		{24000, 8000, 9000},
		{48000, 8000, 6000},
		{48000, 8000, 20000},
		{48000, 16000, 12000},
		{24000, 16000, 10000},
		{48000, 24000, 15000},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v@%d-%d", tc.freq, tc.from, tc.to), func(t *testing.T) {
			src := Tone(tc.freq, tc.from, tc.from, 0.5)
			out := streamResample(NewResampler(tc.from, tc.to), src, tc.from)
			d := LevelDB(settled(out, tc.to)) - LevelDB(settled(src, tc.from))
			if d > -40 {
				t.Errorf("attenuated by %.1f dB, want at least 40 dB", -d)
			}
		})
	}
}

// Frame-by-frame conversion must equal converting the whole signal at once: no
// discontinuity at frame edges, whatever the chunk size.
func TestResampleStreamingIsSeamless(t *testing.T) {
	for _, pair := range [][2]int{{8000, 48000}, {48000, 8000}, {16000, 24000}, {24000, 16000}, {22050, 8000}} {
		from, to := pair[0], pair[1]
		src := Tone(440, from, from/2, 0.8)
		whole := NewResampler(from, to).Process(nil, src)
		r := NewResampler(from, to)
		var chunked, buf []int16
		for i, step := 0, 1; i < len(src); i, step = i+step, step%97+13 {
			buf = r.Process(buf, src[i:min(i+step, len(src))])
			chunked = append(chunked, buf...)
		}
		if !slices.Equal(whole, chunked) {
			t.Errorf("%d→%d: chunked output differs from whole-buffer output", from, to)
		}
	}
}

func TestResampleOneShotAligned(t *testing.T) {
	src := Tone(1000, 16000, 1600, 0.5)
	out := Resample(src, 16000, 8000)
	if len(out) != 800 {
		t.Fatalf("len = %d, want 800", len(out))
	}
	// Delay compensated: the output tracks the input sample for sample (within ripple).
	for i := 100; i < 700; i++ {
		if d := math.Abs(float64(out[i]) - float64(src[2*i])); d > 300 {
			t.Fatalf("sample %d: got %d, want about %d", i, out[i], src[2*i])
		}
	}
	if got := Resample(src, 8000, 8000); !slices.Equal(got, src) {
		t.Error("same-rate Resample is not a copy")
	}
}

func TestResampleNoAllocs(t *testing.T) {
	for _, pair := range [][2]int{{8000, 48000}, {48000, 8000}, {16000, 24000}} {
		r := NewResampler(pair[0], pair[1])
		src := Tone(1000, pair[0], FrameSamples(pair[0]), 0.5)
		dst := make([]int16, 0, FrameSamples(pair[1]))
		if n := testing.AllocsPerRun(100, func() { dst = r.Process(dst, src) }); n != 0 {
			t.Errorf("%v: %v allocations per Process, want 0", pair, n)
		}
	}
}

func BenchmarkResample(b *testing.B) {
	for _, pair := range [][2]int{{8000, 48000}, {48000, 8000}, {8000, 16000}, {24000, 8000}} {
		b.Run(fmt.Sprintf("%d-%d", pair[0], pair[1]), func(b *testing.B) {
			r := NewResampler(pair[0], pair[1])
			src := Tone(1000, pair[0], FrameSamples(pair[0]), 0.5)
			dst := make([]int16, 0, FrameSamples(pair[1]))
			b.ReportAllocs()
			for b.Loop() {
				dst = r.Process(dst, src)
			}
		})
	}
}
