package pcm

import (
	"fmt"
	"math"
	"sync"
)

// Filter design for the resampler: a Kaiser-windowed sinc whose passband runs to
// 84% of the lower Nyquist frequency and whose stopband (≥ 80 dB down) starts at it,
// so nothing folds back into the audible band when the rate goes down and no images
// remain when it goes up.
const (
	resampleStopbandDB = 80.0
	resampleCutoff     = 0.92 // −6 dB point, as a fraction of the lower Nyquist
	resampleTransition = 0.16 // full transition width, as a fraction of the lower Nyquist
)

// Resampler converts a stream of mono PCM from one rate to another with a polyphase
// windowed-sinc filter. It keeps its filter history between calls to Process, so a
// stream can be converted frame by frame without clicks at the frame edges. The
// output is delayed by half the filter length (about 4 ms). A Resampler is not safe
// for concurrent use.
type Resampler struct {
	from, to int
	f        *polyphase // nil when from == to
	hist     []float32  // the last taps-1 input samples, then the current input
	next     int        // position of the next output, in upsampled units, from the start of the current input
}

// polyphase is an immutable filter bank shared by every Resampler with the same ratio.
type polyphase struct {
	up, down int       // rate ratio to/from = up/down, reduced
	taps     int       // coefficients per phase
	delay    int       // in output samples
	coef     []float32 // phase p is coef[p*taps : (p+1)*taps], ordered oldest input first
}

var filterCache sync.Map // [2]int{up, down} → *polyphase

// NewResampler returns a resampler from one rate to another. Any positive rates work;
// the gateway uses 8, 16, 24 and 48 kHz. It panics if a rate is not positive.
func NewResampler(from, to int) *Resampler {
	if from <= 0 || to <= 0 {
		panic(fmt.Sprintf("pcm: NewResampler(%d, %d): rates must be positive", from, to))
	}
	r := &Resampler{from: from, to: to}
	if from != to {
		r.f = filterFor(from, to)
		r.hist = make([]float32, r.f.taps-1, r.f.taps-1+FrameSamples(from))
	}
	return r
}

func filterFor(from, to int) *polyphase {
	g := gcd(from, to)
	up, down := to/g, from/g
	key := [2]int{up, down}
	if f, ok := filterCache.Load(key); ok {
		return f.(*polyphase)
	}
	f, _ := filterCache.LoadOrStore(key, designPolyphase(from, up, down))
	return f.(*polyphase)
}

// designPolyphase designs the prototype low-pass at the upsampled rate from*up and
// splits it into up phases.
func designPolyphase(from, up, down int) *polyphase {
	nyquist := 0.5 * float64(min(from*up/down, from)) // lower Nyquist, Hz
	high := float64(from * up)                        // prototype's sample rate, Hz
	fc := resampleCutoff * nyquist / high             // cycles per sample
	df := resampleTransition * nyquist / high
	beta := 0.1102 * (resampleStopbandDB - 8.7)
	n := int(math.Ceil((resampleStopbandDB - 8) / (2.285 * 2 * math.Pi * df)))
	// Centre the filter on a multiple of down so that its delay is a whole number of
	// output samples; Resample relies on that to line its output up with its input.
	half := (n/2 + down - 1) / down * down
	taps := (2*half + up) / up // ceil((2*half+1)/up); coefficients past 2*half are zero
	center := float64(half)
	i0beta := besselI0(beta)
	proto := make([]float64, taps*up)
	for i := range 2*half + 1 {
		x := float64(i) - center
		sinc := 2 * fc
		if x != 0 {
			sinc = math.Sin(2*math.Pi*fc*x) / (math.Pi * x)
		}
		ratio := x / center
		w := besselI0(beta*math.Sqrt(max(0, 1-ratio*ratio))) / i0beta
		proto[i] = sinc * w * float64(up) // ×up restores the level lost to zero stuffing
	}
	f := &polyphase{up: up, down: down, taps: taps, delay: half / down, coef: make([]float32, taps*up)}
	for p := range up {
		for j := range taps {
			f.coef[p*taps+taps-1-j] = float32(proto[p+j*up]) // oldest input first
		}
	}
	return f
}

// besselI0 is the zeroth-order modified Bessel function of the first kind, by its series.
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	for k := 1; k < 64; k++ {
		term *= (x / (2 * float64(k))) * (x / (2 * float64(k)))
		sum += term
		if term < sum*1e-17 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Process converts src and appends the result to dst[:0], returning it. Once dst
// has the capacity for the output it does not allocate. Each call yields
// len(src)*to/from samples, give or take one where the ratio does not divide evenly.
func (r *Resampler) Process(dst, src []int16) []int16 {
	dst = dst[:0]
	if r.f == nil {
		return append(dst, src...)
	}
	f := r.f
	keep := f.taps - 1
	buf := r.hist[:keep]
	for _, v := range src {
		buf = append(buf, float32(v))
	}
	limit := len(src) * f.up
	for ; r.next < limit; r.next += f.down {
		base := r.next / f.up // newest input sample contributing, as an index into src
		p := r.next - base*f.up
		coef := f.coef[p*f.taps : (p+1)*f.taps]
		x := buf[base : base+f.taps]
		dst = append(dst, clamp16(dot(coef, x)))
	}
	r.next -= limit
	copy(buf, buf[len(buf)-keep:])
	r.hist = buf[:keep]
	return dst
}

// dot is the inner product of coef and x, unrolled by four; len(coef) == len(x).
func dot(coef, x []float32) float32 {
	var a0, a1, a2, a3 float32
	x = x[:len(coef)]
	i := 0
	for ; i+4 <= len(coef); i += 4 {
		a0 += coef[i] * x[i]
		a1 += coef[i+1] * x[i+1]
		a2 += coef[i+2] * x[i+2]
		a3 += coef[i+3] * x[i+3]
	}
	for ; i < len(coef); i++ {
		a0 += coef[i] * x[i]
	}
	return (a0 + a1) + (a2 + a3)
}

// Reset forgets the filter history, as at the start of a new stream.
func (r *Resampler) Reset() {
	r.next = 0
	for i := range r.hist {
		r.hist[i] = 0
	}
}

// Delay is the filter's delay in output samples.
func (r *Resampler) Delay() int {
	if r.f == nil {
		return 0
	}
	return r.f.delay
}

func clamp16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

// Resample converts a whole buffer from one rate to another, compensating the filter
// delay so that the output lines up with the input and has len(src)*to/from samples.
func Resample(src []int16, from, to int) []int16 {
	if from == to {
		return append([]int16(nil), src...)
	}
	r := NewResampler(from, to)
	want := int(int64(len(src)) * int64(to) / int64(from))
	delay := r.Delay()
	out := r.Process(make([]int16, 0, want+delay+2), src)
	pad := make([]int16, (delay+1)*from/to+r.f.taps)
	out = append(out, r.Process(nil, pad)...)
	out = out[min(delay, len(out)):]
	return out[:min(want, len(out))]
}
