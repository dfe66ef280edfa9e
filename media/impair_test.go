package media

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

// The impairment harness: 60 s of speech (espeak-ng, 8 kHz, in testdata) sent as
// PCMU packets through Stream.receive and read back by a simulated 20 ms playout
// clock, under network impairments, once with loss concealment and once with
// silence fill. Time is simulated, so the run is deterministic and takes a second.
// With -v it prints the table that docs/benchmarks.md records.

const (
	simFrames    = 3000 // 60 s of 20 ms packets
	simBaseDelay = 10 * time.Millisecond
	simTickPhase = 7 * time.Millisecond // the reader's clock is not aligned to arrivals
)

type impairment struct {
	name   string
	lossy  bool
	skew   float64 // sender clock rate relative to ours: +0.01 sends 1 % fast
	lose   func(r *rand.Rand, i int) bool
	jitter func(r *rand.Rand, i int) time.Duration // network delay on top of the base
}

type simResult struct {
	segSNR, fwSNR         float64
	delayMean, delayP95   time.Duration
	delayMaxLate          time.Duration // largest delay in the last 20 s, for drift
	lost, late, concealMs uint64
	sent                  int
	concealedAt           []int   // source frames that concealment stood in for
	aligned               []int16 // the output, placed where each frame belongs
	stretched, shrunk     int
	firstHalf, secondHalf time.Duration // mean delay of each half, for drift
}

func impairments() []impairment {
	random := func(p float64) func(*rand.Rand, int) bool {
		return func(r *rand.Rand, _ int) bool { return r.Float64() < p }
	}
	var burstLeft int
	return []impairment{
		{name: "clean"},
		{name: "5% random loss", lossy: true, lose: random(0.05)},
		{name: "10% random loss", lossy: true, lose: random(0.10)},
		{name: "bursts of 3 (5% loss)", lossy: true, lose: func(r *rand.Rand, _ int) bool {
			if burstLeft > 0 {
				burstLeft--
				return true
			}
			if r.Float64() < 0.05/3 {
				burstLeft = 2
				return true
			}
			return false
		}},
		{name: "0-60 ms uniform jitter", lossy: true, jitter: func(r *rand.Rand, _ int) time.Duration {
			return time.Duration(r.Int64N(int64(60 * time.Millisecond)))
		}},
		{name: "5% reordered (+30 ms)", lossy: true, jitter: func(r *rand.Rand, _ int) time.Duration {
			if r.Float64() < 0.05 {
				return 30 * time.Millisecond // lands after the next packet or two
			}
			return 0
		}},
		{name: "sender clock +1%", skew: 0.01},
		{name: "sender clock -1%", skew: -0.01},
	}
}

func loadSpeech(t testing.TB) []int16 {
	f, err := os.Open("testdata/speech8k.wav")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, rate, err := pcm.ReadWAV(f)
	if err != nil || rate != 8000 {
		t.Fatalf("speech8k.wav: rate %d, %v", rate, err)
	}
	return s
}

// simulate plays the packets through a Stream under imp and returns the figures.
func simulate(t *testing.T, s *Stream, payloads [][]byte, ref []int16, imp impairment, silence bool) simResult {
	r := rand.New(rand.NewPCG(42, uint64(len(imp.name))))
	s.mu.Lock()
	s.jb.reset()
	s.jb.silenceFill = silence
	s.mu.Unlock()

	type arrival struct {
		at  time.Duration
		seq int
	}
	interval := time.Duration(float64(20*time.Millisecond) / (1 + imp.skew))
	sendAt := func(i int) time.Duration { return time.Duration(i) * interval }
	var arrivals []arrival
	res := simResult{sent: len(payloads)}
	for i := range payloads {
		if imp.lose != nil && imp.lose(r, i) {
			continue
		}
		d := simBaseDelay
		if imp.jitter != nil {
			d += imp.jitter(r, i)
		}
		arrivals = append(arrivals, arrival{sendAt(i) + d, i})
	}
	slices.SortStableFunc(arrivals, func(a, b arrival) int { return int(a.at - b.at) })

	const ssrc, seq0, ts0 = 0x5EED, 65500, 0xFFFFF000 // both wrap during the run
	epoch := time.Unix(1_700_000_000, 0)
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	aligned := make([]int16, len(ref))
	placed := make([]bool, len(payloads))
	var delays []time.Duration
	var firstSum, secondSum time.Duration
	var firstN, secondN int
	var tick time.Duration
	end := sendAt(len(payloads)) + 400*time.Millisecond
	s.mu.Lock()
	s.jb.trace = func(kind traceKind, ts uint32, _ int64, samples []int16) {
		i := int(int32(ts-ts0)) / 160
		switch kind {
		case traceStretch:
			res.stretched++
			return
		case traceDrop:
			res.shrunk++
			return
		case tracePacket:
			d := tick - sendAt(i) - simBaseDelay
			delays = append(delays, d)
			if tick < end/2 {
				firstSum, firstN = firstSum+d, firstN+1
			} else {
				secondSum, secondN = secondSum+d, secondN+1
			}
			if tick > end-20*time.Second {
				res.delayMaxLate = max(res.delayMaxLate, d)
			}
		}
		if kind == traceConceal && i >= 0 && i < len(placed) {
			res.concealMs += 20 // within the clip: not the tail after the last packet
			res.concealedAt = append(res.concealedAt, i)
		}
		if i >= 0 && i < len(placed) && !placed[i] && len(samples) == 160 {
			placed[i] = true
			copy(aligned[i*160:], samples)
		}
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.jb.trace = nil
		s.mu.Unlock()
	}()

	before := s.Stats()
	var h rtp.Header
	h.Version, h.PayloadType, h.SSRC = 2, PCMU.PayloadType, ssrc
	buf := make([]byte, 12+160)
	frame := make([]int16, 160)
	next := 0
	for tick = simTickPhase; tick < end; tick += 20 * time.Millisecond {
		for ; next < len(arrivals) && arrivals[next].at <= tick; next++ {
			a := arrivals[next]
			h.SequenceNumber, h.Timestamp, h.Marker = uint16(seq0+a.seq), uint32(ts0+160*a.seq), a.seq == 0
			n, err := h.MarshalTo(buf)
			if err != nil {
				t.Fatal(err)
			}
			n += copy(buf[n:], payloads[a.seq])
			deliver(s, buf[:n], from, epoch.Add(a.at))
		}
		s.readFrame(frame, epoch.Add(tick))
	}
	st := s.Stats()
	res.lost, res.late = st.Lost-before.Lost, st.Late-before.Late
	res.aligned = aligned
	res.segSNR = segmentalSNR(aligned, ref)
	res.fwSNR = fwSegSNR(aligned, ref, nil)
	slices.Sort(delays)
	if len(delays) > 0 {
		var sum time.Duration
		for _, d := range delays {
			sum += d
		}
		res.delayMean = sum / time.Duration(len(delays))
		res.delayP95 = delays[len(delays)*95/100]
	}
	if firstN > 0 && secondN > 0 {
		res.firstHalf, res.secondHalf = firstSum/time.Duration(firstN), secondSum/time.Duration(secondN)
	}
	return res
}

// fwSegSNR is the frequency-weighted segmental SNR (Hu & Loizou 2008): per active
// segment, the SNR of each critical band's magnitude (so a concealment that has the
// right spectrum but not the exact phase scores, as a listener hears it), weighted
// by the band's magnitude to the 0.2, clamped to [-10, 35] dB, averaged.
// only, if not nil, limits it to those 20 ms segments.
func fwSegSNR(got, ref []int16, only []int) float64 {
	const n = 256
	var xr, xi, yr, yi [n]float64
	var win [160]float64
	for i := range win {
		win[i] = 0.5 - 0.5*math.Cos(2*math.Pi*float64(i)/159)
	}
	// 16 bands, Bark-like: narrow low, wide high, 100 Hz to 3.8 kHz (bins of 31.25 Hz).
	edges := []int{3, 6, 9, 12, 15, 18, 22, 26, 31, 37, 44, 52, 62, 74, 88, 104, 122}
	var sum float64
	var count int
	segs := only
	if segs == nil {
		for i := 0; i+160 <= len(ref); i += 160 {
			segs = append(segs, i/160)
		}
	}
	for _, seg := range segs {
		i := seg * 160
		var e float64
		for j := range 160 {
			e += float64(ref[i+j]) * float64(ref[i+j])
		}
		if e/160 < 328*328 {
			continue
		}
		clear(xr[:])
		clear(xi[:])
		clear(yr[:])
		clear(yi[:])
		for j := range 160 {
			xr[j] = float64(ref[i+j]) * win[j]
			yr[j] = float64(got[i+j]) * win[j]
		}
		fft(xr[:], xi[:])
		fft(yr[:], yi[:])
		var num, den float64
		for b := 0; b+1 < len(edges); b++ {
			var x, y float64
			for k := edges[b]; k < edges[b+1]; k++ {
				x += math.Hypot(xr[k], xi[k])
				y += math.Hypot(yr[k], yi[k])
			}
			snr := 35.0
			if d := x - y; d != 0 {
				snr = min(max(10*math.Log10(x*x/(d*d)), -10), 35)
			}
			w := math.Pow(x, 0.2)
			num += w * snr
			den += w
		}
		sum += num / den
		count++
	}
	return sum / float64(count)
}

// fft is an in-place radix-2 transform; len(re) is a power of two.
func fft(re, im []float64) {
	n := len(re)
	for i, j := 1, 0; i < n; i++ {
		bit := n >> 1
		for ; j&bit != 0; bit >>= 1 {
			j ^= bit
		}
		j ^= bit
		if i < j {
			re[i], re[j] = re[j], re[i]
			im[i], im[j] = im[j], im[i]
		}
	}
	for size := 2; size <= n; size <<= 1 {
		step := -2 * math.Pi / float64(size)
		for k := range size / 2 {
			wr, wi := math.Cos(step*float64(k)), math.Sin(step*float64(k))
			for start := 0; start < n; start += size {
				a, b := start+k, start+k+size/2
				tr := re[b]*wr - im[b]*wi
				ti := re[b]*wi + im[b]*wr
				re[b], im[b] = re[a]-tr, im[a]-ti
				re[a], im[a] = re[a]+tr, im[a]+ti
			}
		}
	}
}

// segmentalSNR is the mean over active 20 ms segments of the reference (above
// -40 dBFS) of each segment's SNR, clamped to [-10, 35] dB as is customary.
func segmentalSNR(got, ref []int16) float64 {
	var sum float64
	var n int
	for i := 0; i+160 <= len(ref); i += 160 {
		var sig, noise float64
		for j := i; j < i+160; j++ {
			x, e := float64(ref[j]), float64(got[j])-float64(ref[j])
			sig += x * x
			noise += e * e
		}
		if sig/160 < 328*328 {
			continue
		}
		snr := 35.0
		if noise > 0 {
			snr = min(max(10*math.Log10(sig/noise), -10), 35)
		}
		sum += snr
		n++
	}
	return sum / float64(n)
}

func TestImpairment(t *testing.T) {
	clip := loadSpeech(t)
	pcmu, _ := newCodec(PCMU)
	payloads := make([][]byte, simFrames)
	ref := make([]int16, 0, simFrames*160)
	for i := range payloads {
		src := make([]int16, 160)
		for j := range src {
			src[j] = clip[(i*160+j)%len(clip)]
		}
		payloads[i] = make([]byte, 160)
		pcmu.Encode(payloads[i], src)
		ref = pcmu.Decode(ref, payloads[i]) // the clean signal is what G.711 delivers
	}
	pool, err := NewPortPool(loopback, 48800, 48848)
	if err != nil {
		t.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMU})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	t.Log("| impairment | added delay mean / p95 | late drops | lost | concealed | fwSegSNR concealment / silence | on concealed segments | segSNR concealment / silence |")
	t.Log("|---|---|---|---|---|---|---|---|")
	for _, imp := range impairments() {
		c := simulate(t, s, payloads, ref, imp, false)
		z := simulate(t, s, payloads, ref, imp, true)
		onC, onZ := "-", "-"
		if len(c.concealedAt) > 0 {
			onC = fmt.Sprintf("%.1f", fwSegSNR(c.aligned, ref, c.concealedAt))
			onZ = fmt.Sprintf("%.1f", fwSegSNR(z.aligned, ref, c.concealedAt))
		}
		t.Logf("| %s | %v / %v | %.2f %% | %.2f %% | %.2f %% | **%.2f** / %.2f dB | **%s** / %s dB | %.1f / %.1f dB |", imp.name,
			c.delayMean.Round(100*time.Microsecond), c.delayP95.Round(100*time.Microsecond),
			100*float64(c.late)/float64(c.sent), 100*float64(c.lost)/float64(c.sent),
			100*float64(c.concealMs)/float64(c.sent*20), c.fwSNR, z.fwSNR, onC, onZ, c.segSNR, z.segSNR)
		t.Logf("    %s: delay first half %v, second half %v, max in the last 20 s %v; %d pause frames stretched, %d dropped",
			imp.name, c.firstHalf.Round(100*time.Microsecond), c.secondHalf.Round(100*time.Microsecond),
			c.delayMaxLate.Round(100*time.Microsecond), c.stretched, c.shrunk)

		// Waveform substitution is not phase-exact, so plain segSNR scores it below
		// silence (any uncorrelated fill does); the band-magnitude measure is the test.
		if imp.lossy && c.fwSNR <= z.fwSNR {
			t.Errorf("%s: concealment %.2f dB does not beat silence fill %.2f dB", imp.name, c.fwSNR, z.fwSNR)
		}
		if imp.lose != nil && c.concealMs == 0 {
			t.Errorf("%s: nothing concealed", imp.name)
		}
		if !imp.lossy && (c.lost+c.late != 0 || c.segSNR < 34.9) {
			t.Errorf("%s: lost %d, late %d, seg. SNR %.1f dB; want a clean copy", imp.name, c.lost, c.late, c.segSNR)
		}
		// No drift: delay stays inside the configured bound to the end, and the second
		// half holds no more than the first (plus a frame).
		if c.delayMaxLate > DefaultJitterMax+20*time.Millisecond || c.delayP95 > DefaultJitterMax {
			t.Errorf("%s: delay p95 %v, max in the last 20 s %v: unbounded", imp.name, c.delayP95, c.delayMaxLate)
		}
		if c.secondHalf > c.firstHalf+20*time.Millisecond {
			t.Errorf("%s: delay drifts from %v to %v", imp.name, c.firstHalf, c.secondHalf)
		}
		if imp.skew != 0 && c.concealMs > uint64(c.sent*20/100) {
			t.Errorf("%s: %d ms concealed: starving", imp.name, c.concealMs)
		}
	}
}
