package media

// G.722 (ITU-T, 1988): 16 kHz wideband speech at 64 kbit/s by sub-band ADPCM. A
// quadrature mirror filter splits the signal into a 0–4 kHz band coded with 6
// bits a sample and a 4–8 kHz band with 2, at 8 kHz each: one byte per pair of
// 16 kHz samples. This is the integer algorithm of the Recommendation (after
// the public-domain CMU/spandsp code), so it interoperates bit-exactly.

// G722 is G.722 with its static payload type. RTP quirk (RFC 3551 §4.5.2): its
// clock rate is signalled and counted as 8000 although it samples at 16 kHz.
var G722 = Codec{Name: "G722", PayloadType: 9, ClockRate: 8000}

var (
	g722QMF  = [12]int{3, -11, 12, 32, -210, 951, 3876, -805, 362, -156, 53, -11}
	g722Q6   = [32]int{0, 35, 72, 110, 150, 190, 233, 276, 323, 370, 422, 473, 530, 587, 650, 714, 786, 858, 940, 1023, 1121, 1219, 1339, 1458, 1612, 1765, 1980, 2195, 2557, 2919, 0, 0}
	g722ILN  = [32]int{0, 63, 62, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 0}
	g722ILP  = [32]int{0, 61, 60, 59, 58, 57, 56, 55, 54, 53, 52, 51, 50, 49, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34, 33, 32, 0}
	g722WL   = [8]int{-60, -30, 58, 172, 334, 538, 1198, 3042}
	g722RL42 = [16]int{0, 7, 6, 5, 4, 3, 2, 1, 7, 6, 5, 4, 3, 2, 1, 0}
	g722ILB  = [32]int{2048, 2093, 2139, 2186, 2233, 2282, 2332, 2383, 2435, 2489, 2543, 2599, 2656, 2714, 2774, 2834, 2896, 2960, 3025, 3091, 3158, 3228, 3298, 3371, 3444, 3520, 3597, 3676, 3756, 3838, 3922, 4008}
	g722QM4  = [16]int{0, -20456, -12896, -8968, -6288, -4240, -2584, -1200, 20456, 12896, 8968, 6288, 4240, 2584, 1200, 0}
	g722QM6  = [64]int{
		-136, -136, -136, -136, -24808, -21904, -19008, -16704, -14984, -13512, -12280, -11192, -10232, -9360, -8576, -7856,
		-7192, -6576, -6000, -5456, -4944, -4464, -4008, -3576, -3168, -2776, -2400, -2032, -1688, -1360, -1040, -728,
		24808, 21904, 19008, 16704, 14984, 13512, 12280, 11192, 10232, 9360, 8576, 7856, 7192, 6576, 6000, 5456,
		4944, 4464, 4008, 3576, 3168, 2776, 2400, 2032, 1688, 1360, 1040, 728, 432, 136, -432, -136,
	}
	g722QM2 = [4]int{-7408, -1616, 7408, 1616}
	g722IHN = [3]int{0, 1, 0}
	g722IHP = [3]int{0, 3, 2}
	g722WH  = [3]int{0, -214, 798}
	g722RH2 = [4]int{2, 1, 2, 1}
)

// g722Band is one sub-band's adaptive predictor and quantizer scale.
type g722Band struct {
	s, sp, sz int
	r, a, ap  [3]int
	p         [3]int
	d, b, bp  [7]int
	sg        [7]int
	nb, det   int
}

// g722State is one direction's filter and band state.
type g722State struct {
	x    [24]int // QMF delay line
	band [2]g722Band
}

func (s *g722State) init() {
	*s = g722State{}
	s.band[0].det = 32
	s.band[1].det = 8
}

// g722Codec is one stream's encoder and decoder; their states are separate
// because send and receive run concurrently.
type g722Codec struct {
	enc, dec g722State
}

func newG722() *g722Codec {
	c := &g722Codec{}
	c.enc.init()
	c.dec.init()
	return c
}

func (*g722Codec) Rate() int                  { return 16000 }
func (*g722Codec) MaxPayload(samples int) int { return (samples + 1) / 2 }

// Encode codes pairs of 16 kHz samples into bytes; an odd last sample is
// dropped (20 ms frames are always even).
func (c *g722Codec) Encode(dst []byte, src []int16) int {
	s := &c.enc
	n := 0
	for j := 0; j+1 < len(src); j += 2 {
		copy(s.x[:22], s.x[2:])
		s.x[22], s.x[23] = int(src[j]), int(src[j+1])
		var sumEven, sumOdd int
		for i := range 12 {
			sumOdd += s.x[2*i] * g722QMF[i]
			sumEven += s.x[2*i+1] * g722QMF[11-i]
		}
		// >>14: the QMF's DC gain of 4096, two filters summed, and the
		// algorithm's 15-bit input.
		xlow := (sumEven + sumOdd) >> 14
		xhigh := (sumEven - sumOdd) >> 14

		// Low band: 6-bit quantizer (blocks 1L–3L).
		lo := &s.band[0]
		el := sat16(xlow - lo.s)
		wd := el
		if el < 0 {
			wd = -(el + 1)
		}
		i := 1
		for ; i < 30; i++ {
			if wd < (g722Q6[i]*lo.det)>>12 {
				break
			}
		}
		ilow := g722ILP[i]
		if el < 0 {
			ilow = g722ILN[i]
		}
		ril := ilow >> 2
		dlow := (lo.det * g722QM4[ril]) >> 15
		lo.nb = min(max(((lo.nb*127)>>7)+g722WL[g722RL42[ril]], 0), 18432)
		lo.det = g722Scale(lo.nb, 8)
		lo.adapt(dlow)

		// High band: 2-bit quantizer (blocks 1H–3H).
		hi := &s.band[1]
		eh := sat16(xhigh - hi.s)
		wd = eh
		if eh < 0 {
			wd = -(eh + 1)
		}
		mih := 1
		if wd >= (564*hi.det)>>12 {
			mih = 2
		}
		ihigh := g722IHP[mih]
		if eh < 0 {
			ihigh = g722IHN[mih]
		}
		dhigh := (hi.det * g722QM2[ihigh]) >> 15
		hi.nb = min(max(((hi.nb*127)>>7)+g722WH[g722RH2[ihigh]], 0), 22528)
		hi.det = g722Scale(hi.nb, 10)
		hi.adapt(dhigh)

		dst[n] = byte(ihigh<<6 | ilow)
		n++
	}
	return n
}

// Decode appends two 16 kHz samples per payload byte.
func (c *g722Codec) Decode(dst []int16, payload []byte) []int16 {
	s := &c.dec
	for _, code := range payload {
		lo := &s.band[0]
		wd1 := int(code & 0x3f)
		ihigh := int(code>>6) & 3
		rlow := min(max(lo.s+(lo.det*g722QM6[wd1])>>15, -16384), 16383)
		wd1 >>= 2
		dlow := (lo.det * g722QM4[wd1]) >> 15
		lo.nb = min(max(((lo.nb*127)>>7)+g722WL[g722RL42[wd1]], 0), 18432)
		lo.det = g722Scale(lo.nb, 8)
		lo.adapt(dlow)

		hi := &s.band[1]
		dhigh := (hi.det * g722QM2[ihigh]) >> 15
		rhigh := min(max(dhigh+hi.s, -16384), 16383)
		hi.nb = min(max(((hi.nb*127)>>7)+g722WH[g722RH2[ihigh]], 0), 22528)
		hi.det = g722Scale(hi.nb, 10)
		hi.adapt(dhigh)

		copy(s.x[:22], s.x[2:])
		s.x[22], s.x[23] = rlow+rhigh, rlow-rhigh
		var out1, out2 int
		for i := range 12 {
			out2 += s.x[2*i] * g722QMF[i]
			out1 += s.x[2*i+1] * g722QMF[11-i]
		}
		dst = append(dst, int16(sat16(out1>>11)), int16(sat16(out2>>11)))
	}
	return dst
}

// g722Scale is the quantizer scale factor from its log (blocks 3L/3H SCALE).
func g722Scale(nb, shift int) int {
	wd1 := (nb >> 6) & 31
	wd2 := shift - (nb >> 11)
	if wd2 < 0 {
		return (g722ILB[wd1] << -wd2) << 2
	}
	return (g722ILB[wd1] >> wd2) << 2
}

// adapt runs block 4: reconstruction, pole and zero predictor updates, and the
// next prediction, from the quantized difference d.
func (b *g722Band) adapt(d int) {
	b.d[0] = d
	b.r[0] = sat16(b.s + d)
	b.p[0] = sat16(b.sz + d)

	// UPPOL2
	for i := range 3 {
		b.sg[i] = b.p[i] >> 15
	}
	wd1 := sat16(b.a[1] << 2)
	wd2 := wd1
	if b.sg[0] == b.sg[1] {
		wd2 = -wd1
	}
	wd2 = min(wd2, 32767)
	wd3 := -128
	if b.sg[0] == b.sg[2] {
		wd3 = 128
	}
	wd3 += wd2 >> 7
	wd3 += (b.a[2] * 32512) >> 15
	b.ap[2] = min(max(wd3, -12288), 12288)

	// UPPOL1
	b.sg[0] = b.p[0] >> 15
	b.sg[1] = b.p[1] >> 15
	wd1 = -192
	if b.sg[0] == b.sg[1] {
		wd1 = 192
	}
	b.ap[1] = sat16(wd1 + (b.a[1]*32640)>>15)
	wd3 = sat16(15360 - b.ap[2])
	b.ap[1] = min(max(b.ap[1], -wd3), wd3)

	// UPZERO
	wd1 = 128
	if d == 0 {
		wd1 = 0
	}
	b.sg[0] = d >> 15
	for i := 1; i < 7; i++ {
		b.sg[i] = b.d[i] >> 15
		wd2 = -wd1
		if b.sg[i] == b.sg[0] {
			wd2 = wd1
		}
		b.bp[i] = sat16(wd2 + (b.b[i]*32640)>>15)
	}

	// DELAYA
	for i := 6; i > 0; i-- {
		b.d[i] = b.d[i-1]
		b.b[i] = b.bp[i]
	}
	for i := 2; i > 0; i-- {
		b.r[i] = b.r[i-1]
		b.p[i] = b.p[i-1]
		b.a[i] = b.ap[i]
	}

	// FILTEP, FILTEZ, PREDIC
	wd1 = (b.a[1] * sat16(b.r[1]+b.r[1])) >> 15
	wd2 = (b.a[2] * sat16(b.r[2]+b.r[2])) >> 15
	b.sp = sat16(wd1 + wd2)
	b.sz = 0
	for i := 6; i > 0; i-- {
		b.sz += (b.b[i] * sat16(b.d[i]+b.d[i])) >> 15
	}
	b.sz = sat16(b.sz)
	b.s = sat16(b.sp + b.sz)
}

func sat16(v int) int { return min(max(v, -32768), 32767) }
