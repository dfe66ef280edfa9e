package media

import (
	"math"
	"testing"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// vowel is a voiced-speech stand-in: a 125 Hz pulse train's first harmonics.
func vowel(n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		var v float64
		for h := 1; h <= 8; h++ {
			v += math.Sin(2*math.Pi*125*float64(h)*float64(i)/8000) / float64(h)
		}
		s[i] = int16(6000 * v)
	}
	return s
}

func rms(s []int16) float64 {
	var e float64
	for _, v := range s {
		e += float64(v) * float64(v)
	}
	return math.Sqrt(e / float64(len(s)))
}

func TestPLCFindsPitch(t *testing.T) {
	for _, f := range []float64{80, 125, 190} {
		p := newPLC(8000)
		p.good(pcm.Tone(f, 8000, 800, 0.3))
		p.begin()
		if want := 8000 / f; math.Abs(float64(p.pitch)-want) > 1 && math.Abs(float64(p.pitch)-2*want) > 2 {
			t.Errorf("%v Hz: pitch %d samples, want %.1f (or twice)", f, p.pitch, want)
		}
	}
}

// One lost 20 ms frame of a steady voiced sound comes back close to the original:
// it continues the waveform in phase, and does far better than silence.
func TestPLCContinuesWaveform(t *testing.T) {
	src := vowel(8 * 160)
	p := newPLC(8000)
	var out []int16
	for f := range 8 {
		frame := append([]int16(nil), src[f*160:(f+1)*160]...)
		if f == 5 {
			out = p.conceal(out, 160)
			continue
		}
		p.good(frame)
		out = append(out, frame...)
	}
	lost, got := src[5*160:6*160], out[5*160:6*160]
	if e := sampleError(got[:80], lost[:80]); e > 0.1 {
		t.Errorf("first 10 ms of concealment differs from the lost audio by %.0f%%", 100*e)
	}
	if e := sampleError(got, lost); e > 0.25 {
		t.Errorf("concealment differs from the lost audio by %.0f%% (silence: 100%%)", 100*e)
	}
	// The merge back is smooth: no step larger than the signal's own steepest.
	maxStep := func(s []int16) (m float64) {
		for i := 1; i < len(s); i++ {
			m = max(m, math.Abs(float64(s[i])-float64(s[i-1])))
		}
		return m
	}
	if a, b := maxStep(out[5*160-5:6*160+40]), maxStep(src); a > 1.2*b {
		t.Errorf("step of %.0f around the concealment, the signal's steepest is %.0f", a, b)
	}
}

// A long erasure: full level for 10 ms, then fading, silent from 60 ms.
func TestPLCAttenuation(t *testing.T) {
	p := newPLC(8000)
	p.good(vowel(480))
	ref := rms(vowel(480))
	out := p.conceal(nil, 8*80) // 80 ms in 10 ms pieces
	level := func(k int) float64 { return rms(out[k*80:(k+1)*80]) / ref }
	for k, want := range []float64{1, 0.9, 0.7, 0.5, 0.3, 0.1} { // mean gain of each 10 ms
		if l := level(k); math.Abs(l-want) > 0.15 {
			t.Errorf("%d-%d ms at %.2f of the level, want about %.1f", 10*k, 10*k+10, l, want)
		}
	}
	for i, v := range out[6*80:] {
		if v != 0 {
			t.Fatalf("sample %d after 60 ms is %d, want silence", 6*80+i, v)
		}
	}
	// Audio returning after silence fades in rather than jumping.
	orig := vowel(180)[20:] // starts away from a zero crossing
	back := append([]int16(nil), orig...)
	p.good(back)
	if math.Abs(float64(back[0])) > 0.2*math.Abs(float64(orig[0])) {
		t.Errorf("first sample after a silent erasure is %d of %d: no fade-in", back[0], orig[0])
	}
	if back[100] != orig[100] {
		t.Errorf("the merge reaches past 10 ms")
	}
}

func TestPLCAllocs(t *testing.T) {
	p := newPLC(8000)
	frame, out := vowel(160), make([]int16, 0, 160)
	if a := testing.AllocsPerRun(100, func() {
		p.good(frame)
		out = p.conceal(out[:0], 160)
	}); a != 0 {
		t.Errorf("%v allocations per frame", a)
	}
}

// The history ring unrolls to the last samples played, oldest first, whatever the
// frame sizes that filled it.
func TestPLCHistory(t *testing.T) {
	p := newPLC(8000)
	var played []int16
	next := int16(1)
	for _, n := range []int{7, 160, 400, 1, 390, 389, 240, 80} {
		s := make([]int16, n)
		for i := range s {
			s[i], next = next, next+1
		}
		p.push(s)
		played = append(played, s...)
		p.begin()
		want := played[max(len(played)-plcHistory, 0):]
		got := p.pb[plcHistory-len(want):]
		for i := range want {
			// begin smooths the last quarter period of pb: compare the rest.
			if i < len(want)-p.quarter && got[i] != float32(want[i]) {
				t.Fatalf("after %d samples: history[%d] = %v, want %d", len(played), i, got[i], want[i])
			}
		}
	}
}
