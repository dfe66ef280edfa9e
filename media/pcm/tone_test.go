package pcm

import (
	"math"
	"testing"
)

func TestGoertzelScale(t *testing.T) {
	x := Tone(1000, 8000, 800, 10000)
	if p := Goertzel(x, 8000, 1000); math.Abs(p-10000*10000/2)/(10000*10000/2) > 0.01 {
		t.Errorf("power at 1 kHz = %v, want about %v", p, 10000*10000/2)
	}
	if p := Goertzel(x, 8000, 2000); p > 1 {
		t.Errorf("power at 2 kHz = %v, want about 0", p)
	}
}

func TestDominantFrequency(t *testing.T) {
	tests := []struct {
		freq float64
		rate int
	}{{1000, 8000}, {440, 8000}, {3400, 8000}, {1000, 48000}, {6000, 16000}}
	for _, tc := range tests {
		x := Tone(tc.freq, tc.rate, FrameSamples(tc.rate)*5, 0.3)
		if got := DominantFrequency(x, tc.rate); got != tc.freq {
			t.Errorf("DominantFrequency(%v Hz at %d) = %v", tc.freq, tc.rate, got)
		}
	}
	if got := DominantFrequency(make([]int16, 160), 8000); got != 0 {
		t.Errorf("silence: %v, want 0", got)
	}
}

func TestToneAmplitude(t *testing.T) {
	if d := LevelDB(Tone(1000, 8000, 8000, 1)); math.Abs(d+3.01) > 0.05 {
		t.Errorf("full-scale sine at %.2f dBFS, want -3.01", d)
	}
	if d := LevelDB(Tone(1000, 8000, 8000, 0.5)) - LevelDB(Tone(1000, 8000, 8000, 16384)); math.Abs(d) > 0.01 {
		t.Errorf("fractional and absolute amplitudes differ by %.2f dB", d)
	}
}

func TestFrameSamples(t *testing.T) {
	for rate, want := range map[int]int{8000: 160, 16000: 320, 24000: 480, 48000: 960} {
		if got := FrameSamples(rate); got != want {
			t.Errorf("FrameSamples(%d) = %d, want %d", rate, got, want)
		}
	}
}
