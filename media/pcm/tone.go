package pcm

import "math"

// Tone returns n samples of a sine at freq Hz. amp is the peak level: a fraction of
// full scale when it is at most 1 (0.5 is −6 dBFS), otherwise a sample value (8000).
func Tone(freq float64, rate int, n int, amp float64) []int16 {
	if amp <= 1 {
		amp *= math.MaxInt16
	}
	out := make([]int16, n)
	w := 2 * math.Pi * freq / float64(rate)
	for i := range out {
		out[i] = clamp16(float32(amp * math.Sin(w*float64(i))))
	}
	return out
}

// Goertzel returns the power of samples at freq Hz, scaled so that a sine of peak
// amplitude A at that frequency gives A²/2 (its mean square), whatever the length.
func Goertzel(samples []int16, rate int, freq float64) float64 {
	if len(samples) == 0 {
		return 0
	}
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, x := range samples {
		s1, s2 = float64(x)+coeff*s1-s2, s1
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	n := float64(len(samples))
	return 2 * power / (n * n)
}

// DominantFrequency returns the strongest frequency in samples, scanning from 50 Hz
// to just below Nyquist in 10 Hz steps over a Hann-windowed copy. It is meant for
// tests: clear rather than fast. It returns 0 for silence.
func DominantFrequency(samples []int16, rate int) float64 {
	n := len(samples)
	if n == 0 {
		return 0
	}
	win := make([]float64, n)
	for i, x := range samples {
		win[i] = float64(x) * (0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/float64(n)))
	}
	best, bestPower := 0.0, 0.0
	for f := 50.0; f < float64(rate)/2; f += 10 {
		coeff := 2 * math.Cos(2*math.Pi*f/float64(rate))
		var s1, s2 float64
		for _, x := range win {
			s1, s2 = x+coeff*s1-s2, s1
		}
		if p := s1*s1 + s2*s2 - coeff*s1*s2; p > bestPower {
			best, bestPower = f, p
		}
	}
	return best
}

// LevelDB returns the RMS level of samples in dB relative to full scale (a full-scale
// sine is about −3 dBFS). Silence gives -Inf.
func LevelDB(samples []int16) float64 {
	if len(samples) == 0 {
		return math.Inf(-1)
	}
	var sum float64
	for _, x := range samples {
		sum += float64(x) * float64(x)
	}
	return 10 * math.Log10(sum/float64(len(samples))/(math.MaxInt16*math.MaxInt16))
}
