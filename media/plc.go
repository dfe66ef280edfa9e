package media

import "math"

// G.711 Appendix I packet loss concealment, in samples at 8 kHz; other rates scale
// them. The Appendix delays output by 3.75 ms so it can overlap-add into the last
// good samples; we do not (a clean stream must come out sample-exact), and smooth
// the repetition's loop point inside the pitch buffer instead.
const (
	plcHistory  = 390 // 48.75 ms: three longest pitch periods plus a quarter
	plcPitchMin = 40  // 200 Hz
	plcPitchMax = 120 // 66.7 Hz
	plcCorrLen  = 160 // 20 ms correlation window for the pitch search
	plcFrame    = 80  // 10 ms: the pitch buffer grows and attenuation starts per frame
	plcOLAIncr  = 32  // 4 ms more overlap per erased frame when audio returns
	plcMinPower = 250 // floor of the correlation's normalising energy
	plcFrames   = 6   // silent after 60 ms
)

// plc conceals lost G.711 audio by repeating the last pitch period (then the last
// two and three, so a long gap does not buzz), attenuated 20 % per 10 ms after the
// first 10 ms, and cross-fades back into real audio. Buffers are allocated once; those
// only concealment uses, at the first erasure (a clean call never needs them).
type plc struct {
	k                           int // rate / 8000
	pitchMin, pitchMax, corrLen int
	frame, olaIncr, ndec        int
	hist                        []int16 // last samples played: a ring, oldest at histPos
	histPos                     int
	pb                          []float32 // hist frozen when the erasure began, oldest first
	lastq                       []float32 // pb's original last quarter period
	fade                        []float32 // old loop's continuation, faded out into the new loop
	fadeLen, fadePos            int
	erased                      int // samples synthesized in this erasure
	pitch, quarter, blen, poff  int
	gain, attenStep, minPower   float32
}

func newPLC(rate int) *plc {
	k := max(rate/8000, 1)
	p := &plc{
		k:        k,
		pitchMin: plcPitchMin * k, pitchMax: plcPitchMax * k, corrLen: plcCorrLen * k,
		frame: plcFrame * k, olaIncr: plcOLAIncr * k, ndec: 2 * k,
		hist:      make([]int16, plcHistory*k),
		attenStep: 1 / float32(5*plcFrame*k),
		minPower:  float32(plcMinPower * k),
	}
	return p
}

// reset forgets the past, as after silence: a new erasure starts from zeros.
func (p *plc) reset() {
	clear(p.hist)
	p.erased = 0
}

// good takes a decoded frame about to be played: after an erasure it cross-fades the
// concealment into the frame's start (longer the longer the gap), then keeps it as
// history for the next erasure.
func (p *plc) good(s []int16) {
	if p.erased > 0 {
		frames := (p.erased + p.frame - 1) / p.frame
		n := min(p.quarter+(frames-1)*p.olaIncr, p.frame, len(s))
		for i := range n {
			w := float32(i+1) / float32(n+1)
			syn := p.next() * p.gain
			p.attenuate()
			s[i] = clamp16(syn*(1-w) + float32(s[i])*w)
		}
		p.erased = 0
	}
	p.push(s)
}

// conceal appends n samples of concealment to dst.
func (p *plc) conceal(dst []int16, n int) []int16 {
	start := len(dst)
	for range n {
		switch {
		case p.erased == 0:
			p.begin()
		case p.erased == p.frame || p.erased == 2*p.frame:
			p.addPeriod()
		}
		var v float32
		if p.gain > 0 {
			v = p.next() * p.gain
		}
		p.erased++
		if p.erased > p.frame {
			p.attenuate()
		}
		dst = append(dst, clamp16(v))
	}
	p.push(dst[start:])
	return dst
}

func (p *plc) attenuate() {
	if p.gain -= p.attenStep; p.gain < 0 {
		p.gain = 0
	}
}

// begin freezes the history and loops its last pitch period.
func (p *plc) begin() {
	if p.pb == nil {
		n, q := len(p.hist), p.pitchMax/4
		buf := make([]float32, n+2*q)
		p.pb, p.lastq, p.fade = buf[:n:n], buf[n:n+q:n+q], buf[n+q:]
	}
	h, pos := p.hist, p.histPos
	pb := p.pb[:len(h)]
	for i, v := range h[pos:] {
		pb[i] = float32(v)
	}
	pb = pb[len(h)-pos:]
	for i, v := range h[:pos] {
		pb[i] = float32(v)
	}
	p.pitch = p.findPitch()
	p.quarter = p.pitch / 4
	copy(p.lastq[:p.quarter], p.pb[len(p.pb)-p.quarter:])
	p.blen, p.poff = p.pitch, 0
	p.smoothLoop()
	p.gain, p.fadeLen, p.fadePos = 1, 0, 0
}

// addPeriod lengthens the loop by one pitch period, from further back, keeping the
// phase; the old loop's next quarter period fades into the new one.
func (p *plc) addPeriod() {
	if p.blen >= 3*p.pitch {
		return
	}
	save := p.poff
	p.fadeLen, p.fadePos = 0, 0
	for i := range p.quarter {
		p.fade[i] = p.next()
	}
	p.fadeLen = p.quarter
	p.poff = save % p.pitch
	p.blen += p.pitch
	p.smoothLoop()
}

// smoothLoop blends the loop's last quarter period toward the samples just before
// its start, so the wrap from end to start is continuous.
func (p *plc) smoothLoop() {
	end := len(p.pb)
	q := p.quarter
	for i := range q {
		w := float32(i+1) / float32(q+1)
		p.pb[end-q+i] = p.lastq[i]*(1-w) + p.pb[end-p.blen-q+i]*w
	}
}

// next is the loop's next sample, cross-faded from the previous loop while a fade runs.
func (p *plc) next() float32 {
	v := p.pb[len(p.pb)-p.blen+p.poff]
	if p.poff++; p.poff == p.blen {
		p.poff = 0
	}
	if p.fadePos < p.fadeLen {
		w := float32(p.fadePos+1) / float32(p.fadeLen+1)
		v = p.fade[p.fadePos]*(1-w) + v*w
		p.fadePos++
	}
	return v
}

// findPitch is the Appendix's search: normalised cross-correlation of the last 20 ms
// against earlier windows, coarse on every ndec-th lag and sample, then refined.
func (p *plc) findPitch() int {
	end := len(p.pb)
	l := p.pb[end-p.corrLen:]
	base := end - p.corrLen - p.pitchMax
	diff := p.pitchMax - p.pitchMin
	corr := func(j, step int) float32 {
		r := p.pb[base+j:]
		var e, c float32
		for i := 0; i < p.corrLen; i += step {
			e += r[i] * r[i]
			c += r[i] * l[i]
		}
		return c / float32(math.Sqrt(float64(max(e, p.minPower))))
	}
	best, bestCorr := 0, float32(math.Inf(-1))
	for j := 0; j <= diff; j += p.ndec {
		if c := corr(j, p.ndec); c >= bestCorr {
			best, bestCorr = j, c
		}
	}
	lo, hi := max(best-(p.ndec-1), 0), min(best+p.ndec-1, diff)
	best, bestCorr = lo, float32(math.Inf(-1))
	for j := lo; j <= hi; j++ {
		if c := corr(j, 1); c >= bestCorr {
			best, bestCorr = j, c
		}
	}
	return p.pitchMax - best
}

// push appends s to the history, over its oldest samples.
func (p *plc) push(s []int16) {
	h := p.hist
	if len(s) > len(h) {
		s = s[len(s)-len(h):]
	}
	n := copy(h[p.histPos:], s)
	p.histPos += n
	if n < len(s) {
		p.histPos = copy(h, s[n:])
	}
	if p.histPos == len(h) {
		p.histPos = 0
	}
}

func clamp16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
