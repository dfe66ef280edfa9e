package media

import (
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// simPkt is a packet arriving at a simulated time; loud packets carry a tone,
// others silence.
type simPkt struct {
	at    time.Duration
	seq   uint16
	ts    uint32
	quiet bool
	twice bool // delivered again right after
}

type traced struct {
	kind  traceKind
	ts    uint32
	tick  int
	delay time.Duration
}

type jbSim struct {
	b      *jitterBuffer
	epoch  time.Time
	events []traced
	ticks  []bool // what each read returned
	loud   []byte
	quiet  []byte
}

func newJBSim() *jbSim {
	c, _ := newCodec(PCMU)
	s := &jbSim{b: newJitterBuffer(c, 8000, 0, 0), epoch: time.Unix(1000, 0)}
	s.loud = make([]byte, 160)
	c.Encode(s.loud, pcm.Tone(400, 8000, 160, 0.5))
	s.quiet = make([]byte, 160)
	c.Encode(s.quiet, make([]int16, 160))
	s.b.trace = func(kind traceKind, ts uint32, delay int64, _ []int16) {
		s.events = append(s.events, traced{kind, ts, len(s.ticks), time.Duration(delay)})
	}
	return s
}

// run delivers pkts (sorted by arrival) and reads on a 20 ms clock with phase 7 ms until end.
func (s *jbSim) run(pkts []simPkt, end time.Duration) {
	frame := make([]int16, 160)
	next := 0
	for tick := 7 * time.Millisecond; tick < end; tick += 20 * time.Millisecond {
		for ; next < len(pkts) && pkts[next].at <= tick; next++ {
			p := pkts[next]
			payload := s.loud
			if p.quiet {
				payload = s.quiet
			}
			s.b.push(s.epoch.Add(p.at), p.seq, p.ts, payload)
			if p.twice {
				s.b.push(s.epoch.Add(p.at), p.seq, p.ts, payload)
			}
		}
		s.ticks = append(s.ticks, s.b.read(frame, s.epoch.Add(tick)))
	}
}

// played lists the packets decoded (by timestamp / 160 from ts0) and concealments (-1).
func (s *jbSim) played(ts0 uint32) []int {
	var out []int
	for _, e := range s.events {
		switch e.kind {
		case tracePacket:
			out = append(out, int(int32(e.ts-ts0))/160)
		case traceConceal:
			out = append(out, -1)
		}
	}
	return out
}

// stream is n packets of 20 ms from seq0/ts0, sent from time 0, each delayed 10 ms
// plus extra(i); drop(i) loses one.
func stream(n int, seq0 uint16, ts0 uint32, extra func(i int) time.Duration, drop func(i int) bool) []simPkt {
	var p []simPkt
	for i := range n {
		if drop != nil && drop(i) {
			continue
		}
		d := 10 * time.Millisecond
		if extra != nil {
			d += extra(i)
		}
		p = append(p, simPkt{at: time.Duration(i)*20*time.Millisecond + d, seq: seq0 + uint16(i), ts: ts0 + uint32(160*i)})
	}
	for i := 1; i < len(p); i++ { // insertion sort by arrival: reordering
		for j := i; j > 0 && p[j].at < p[j-1].at; j-- {
			p[j], p[j-1] = p[j-1], p[j]
		}
	}
	return p
}

func ints(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestJitterBuffer(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name            string
		pkts            []simPkt
		want            []int // played order; -1 concealed
		lost, late, dup uint64
	}{
		{name: "in order", pkts: stream(10, 100, 1000, nil, nil), want: ints(0, 9)},
		{
			name: "reordered within the target",
			pkts: stream(10, 100, 1000, func(i int) time.Duration {
				if i == 3 {
					return ms(15) // arrives after 4, still before its turn
				}
				return 0
			}, nil),
			want: ints(0, 9),
		},
		{
			name: "duplicates",
			pkts: func() []simPkt { p := stream(10, 100, 1000, nil, nil); p[2].twice, p[5].twice = true, true; return p }(),
			want: ints(0, 9), dup: 2,
		},
		{
			name: "loss is concealed",
			pkts: stream(10, 100, 1000, nil, func(i int) bool { return i == 4 }),
			want: []int{0, 1, 2, 3, -1, 5, 6, 7, 8, 9}, lost: 1,
		},
		{
			name: "burst loss",
			pkts: stream(10, 100, 1000, nil, func(i int) bool { return i >= 4 && i <= 6 }),
			want: []int{0, 1, 2, 3, -1, -1, -1, 7, 8, 9}, lost: 3,
		},
		{
			name: "too late: concealed, then dropped",
			pkts: stream(10, 100, 1000, func(i int) time.Duration {
				if i == 4 {
					return ms(45)
				}
				return 0
			}, nil),
			want: []int{0, 1, 2, 3, -1, 5, 6, 7, 8, 9}, lost: 1, late: 1,
		},
		{name: "sequence and timestamp wrap", pkts: stream(10, 65530, 0xFFFFFD00, nil, nil), want: ints(0, 9)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newJBSim()
			ts0 := tc.pkts[0].ts
			for _, p := range tc.pkts {
				if int32(p.ts-ts0) < 0 {
					ts0 = p.ts
				}
			}
			s.run(tc.pkts, 400*time.Millisecond)
			got := s.played(ts0)
			// The tail after the last packet is concealment then silence; ignore it.
			for len(got) > len(tc.want) && got[len(got)-1] == -1 {
				got = got[:len(got)-1]
			}
			if !equal(got, tc.want) {
				t.Errorf("played %v, want %v", got, tc.want)
			}
			b := s.b
			if c := [3]uint64{b.lost.Load(), b.late.Load(), b.duplicate.Load()}; c != [3]uint64{tc.lost, tc.late, tc.dup} {
				t.Errorf("lost, late, duplicate = %v, want %v %v %v", c, tc.lost, tc.late, tc.dup)
			}
		})
	}
}

// Silence suppression: a timestamp gap with contiguous sequence numbers is a pause,
// not loss; the next talkspurt starts on the target delay.
func TestJitterBufferDTXGap(t *testing.T) {
	s := newJBSim()
	pkts := stream(10, 7, 0, nil, nil)
	for _, p := range stream(10, 17, 160*60, nil, nil) { // 1 s later in both clocks
		p.at += time.Second
		pkts = append(pkts, p)
	}
	s.run(pkts, 2*time.Second)
	if l := s.b.lost.Load(); l != 0 {
		t.Errorf("%d lost across a silence", l)
	}
	if ms := s.b.concealed.Load() / 8; ms > 2*60 { // at most the tails after each talkspurt
		t.Errorf("%d ms concealed", ms)
	}
	var during int
	for _, ok := range s.ticks[15:45] {
		if ok {
			during++
		}
	}
	if during != 0 {
		t.Errorf("%d frames of audio during the silence", during)
	}
	got := s.played(0)
	var played []int
	for _, v := range got {
		if v >= 0 {
			played = append(played, v)
		}
	}
	if want := append(ints(0, 9), ints(60, 69)...); !equal(played, want) {
		t.Errorf("played %v, want %v", played, want)
	}
	for _, e := range s.events {
		if e.kind == tracePacket && (e.delay < 0 || e.delay > 40*time.Millisecond) {
			t.Errorf("packet at ts %d played with delay %v", e.ts, e.delay)
		}
	}
}

// The target follows the jitter up, and back down once the network is calm, and
// the delay is shed only in quiet frames.
func TestJitterBufferAdapts(t *testing.T) {
	s := newJBSim()
	const n = 1500 // 30 s: 10 s of 0-80 ms jitter, then 20 s calm
	seed := uint64(1)
	pkts := stream(n, 0, 0, func(i int) time.Duration {
		if i >= 500 {
			return 0
		}
		seed = seed*6364136223846793005 + 1442695040888963407
		return time.Duration(seed>>33) % (80 * time.Millisecond)
	}, nil)
	for i := range pkts {
		pkts[i].quiet = (pkts[i].ts/160)%50 >= 40 // 200 ms pause each second
	}
	var targetJittery time.Duration
	frame := make([]int16, 160)
	next := 0
	for tick := 7 * time.Millisecond; tick < time.Duration(n)*20*time.Millisecond; tick += 20 * time.Millisecond {
		for ; next < len(pkts) && pkts[next].at <= tick; next++ {
			p := pkts[next]
			payload := s.loud
			if p.quiet {
				payload = s.quiet
			}
			s.b.push(s.epoch.Add(p.at), p.seq, p.ts, payload)
		}
		s.b.read(frame, s.epoch.Add(tick))
		if tick == 10*time.Second-13*time.Millisecond {
			targetJittery = time.Duration(s.b.target)
		}
	}
	t.Logf("target %v after the jitter, %v after the calm", targetJittery, time.Duration(s.b.target))
	if targetJittery < 60*time.Millisecond || targetJittery > 100*time.Millisecond {
		t.Errorf("target %v after 10 s of 0-80 ms jitter, want its 95th percentile (~76 ms)", targetJittery)
	}
	if got := time.Duration(s.b.target); got != DefaultJitterMin {
		t.Errorf("target %v after 20 calm seconds, want %v", got, DefaultJitterMin)
	}
	var drops int
	for _, e := range s.events {
		if e.kind == traceDrop {
			drops++
			if (e.ts/160)%50 < 40 {
				t.Errorf("dropped a loud packet (ts %d) to shrink the delay", e.ts)
			}
		}
		if e.kind == tracePacket && e.tick > 1400 && e.delay > 40*time.Millisecond {
			t.Errorf("delay %v at the end of the calm period", e.delay)
			break
		}
	}
	if drops == 0 {
		t.Error("the delay never shrank")
	}
}

// A new SSRC starts a new sequence space: nothing late or lost against the old one.
func TestJitterBufferReset(t *testing.T) {
	s := newJBSim()
	s.run(stream(10, 30000, 5000, nil, nil), 200*time.Millisecond)
	s.b.reset()
	s.events = nil
	later := stream(10, 10, 99, nil, nil)
	for i := range later {
		later[i].at += 200 * time.Millisecond
	}
	s.ticks = s.ticks[:0]
	frame := make([]int16, 160)
	for tick := 207 * time.Millisecond; tick < 600*time.Millisecond; tick += 20 * time.Millisecond {
		for len(later) > 0 && later[0].at <= tick {
			s.b.push(s.epoch.Add(later[0].at), later[0].seq, later[0].ts, s.loud)
			later = later[1:]
		}
		s.b.read(frame, s.epoch.Add(tick))
	}
	if got := s.played(99); len(got) < 10 || !equal(got[:10], ints(0, 9)) {
		t.Errorf("after reset played %v", got)
	}
	if s.b.late.Load()+s.b.lost.Load() != 0 {
		t.Errorf("late %d lost %d", s.b.late.Load(), s.b.lost.Load())
	}
}

// jbFootprint is the heap a PCMU jitter buffer holds after 3 s of jittery packets
// (every loseEvery-th lost if > 0), averaged over many buffers: what a call's receive
// side costs in RSS.
func jbFootprint(loseEvery int) float64 {
	const n = 1000
	c, _ := newCodec(PCMU)
	payload := make([]byte, 160)
	c.Encode(payload, pcm.Tone(400, 8000, 160, 0.5))
	bufs := make([]*jitterBuffer, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range bufs {
		bufs[i] = newJitterBuffer(c, 8000, 0, 0)
		step := jbFeed(bufs[i], payload, loseEvery)
		for range 150 {
			step()
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(bufs)
	return float64(after.HeapAlloc-before.HeapAlloc) / n
}

// A call's jitter buffer is a small part of the 40 KB a call may cost (issue 8).
func TestJitterBufferFootprint(t *testing.T) {
	for _, loseEvery := range []int{0, 20} {
		got := jbFootprint(loseEvery)
		loss := 0
		if loseEvery > 0 {
			loss = 100 / loseEvery
		}
		t.Logf("%.0f bytes per jitter buffer at %d %% loss", got, loss)
		if got > 8<<10 {
			t.Errorf("%.0f bytes per jitter buffer at %d %% loss, want at most 8 KB", got, loss)
		}
	}
}

// fullScan is the delay estimate as it was before the quantile was kept
// incrementally: all 256 buckets, scanned from the top on every read. The buffer
// must set the same target from the same arrivals.
type fullScan struct {
	clock, min, max  int64
	anchored         bool
	arrRef           int64
	tsRef            uint32
	win              [jbWindowCap]arrival
	winHead, winLen  int
	hist             [jbBuckets]float64
	histW, histTotal float64
}

func newFullScan(clock int64, minDelay, maxDelay time.Duration) *fullScan {
	f := &fullScan{clock: clock, min: int64(minDelay), max: int64(max(maxDelay, minDelay)), histW: 1, histTotal: jbSeed}
	f.hist[min((f.min-1)/jbBucket, jbBuckets-1)] = jbSeed
	return f
}

func (b *fullScan) observe(at int64, ts uint32) {
	if !b.anchored {
		b.anchored, b.arrRef, b.tsRef = true, at, ts
	}
	dt := int32(ts - b.tsRef)
	if dt > 1<<29 {
		const shift = 1 << 28
		b.tsRef += shift
		b.arrRef += shift * int64(time.Second) / b.clock
		dt -= shift
	}
	d := at - (b.arrRef + int64(dt)*int64(time.Second)/b.clock)
	if b.winLen > 0 {
		if diff := d - b.win[b.winHead].d; diff > jbRestart || diff < -jbRestart {
			b.arrRef, b.tsRef, d = at, ts, 0
			b.winLen = 0
		}
	}
	for b.winLen > 0 && b.win[(b.winHead+b.winLen-1)%jbWindowCap].d >= d {
		b.winLen--
	}
	if b.winLen == jbWindowCap {
		b.winHead, b.winLen = (b.winHead+1)%jbWindowCap, b.winLen-1
	}
	b.win[(b.winHead+b.winLen)%jbWindowCap] = arrival{at, d}
	b.winLen++
	for b.winLen > 1 && b.win[b.winHead].at < at-jbWindow {
		b.winHead, b.winLen = (b.winHead+1)%jbWindowCap, b.winLen-1
	}
	r := d - b.win[b.winHead].d
	b.histW /= jbForget
	if b.histW > 1e12 {
		for i := range b.hist {
			b.hist[i] /= b.histW
		}
		b.histTotal /= b.histW
		b.histW = 1
	}
	i := min(r/jbBucket, jbBuckets-1)
	b.hist[i] += b.histW
	b.histTotal += b.histW
}

func (b *fullScan) target() int64 {
	limit := (1 - jbQuantile) * b.histTotal
	var acc float64
	t := int64(0)
	for i := jbBuckets - 1; i >= 0; i-- {
		if acc += b.hist[i]; acc > limit {
			t = int64(i+1) * jbBucket
			break
		}
	}
	return min(max(t, b.min), b.max)
}

// TestJitterTargetMatchesFullScan feeds the same arrivals to the buffer's delay
// estimate and to the full scan, and compares the target after every packet.
func TestJitterTargetMatchesFullScan(t *testing.T) {
	ms := func(n float64) int64 { return int64(n * float64(time.Millisecond)) }
	// Each pattern gives packet i's position on the sender's clock (its timestamp, in
	// ns) and its arrival on ours (ns).
	type pattern struct {
		name string
		next func(r *rand.Rand, i int) (sent, at int64)
	}
	spiky := func(r *rand.Rand, i int) int64 { // a quiet path with rare long stalls and bursts
		d := ms(2 * r.Float64())
		switch x := r.Float64(); {
		case x < 0.002:
			d += ms(300 + 400*r.Float64())
		case x < 0.02:
			d += ms(40 * r.ExpFloat64())
		}
		return d
	}
	at := func(ptime, rate float64, delay func(r *rand.Rand) int64) func(r *rand.Rand, i int) (int64, int64) {
		return func(r *rand.Rand, i int) (int64, int64) {
			sent := ms(ptime * float64(i))
			return sent, int64(float64(sent)/rate) + delay(r)
		}
	}
	uniform := func(max float64) func(r *rand.Rand) int64 {
		return func(r *rand.Rand) int64 { return ms(max * r.Float64()) }
	}
	patterns := []pattern{
		{"uniform 0-80 ms", at(20, 1, uniform(80))},
		{"uniform 0-1.2 s", at(20, 1, uniform(1200))},
		{"spiky", func(r *rand.Rand, i int) (int64, int64) { return int64(i) * ms(20), int64(i)*ms(20) + spiky(r, i) }},
		{"wifi-like", func(r *rand.Rand, i int) (int64, int64) { // delay wanders, in 10-30 ms steps
			return int64(i) * ms(20), int64(i)*ms(20) + ms(15*(1+math.Sin(float64(i)/97))+10*math.Floor(3*r.Float64()))
		}},
		{"sender clock +1%", at(20, 1.01, uniform(5))},
		{"sender clock -1%", at(20, 0.99, uniform(5))},
		{"5 ms packets, sender clock -2%", at(5, 0.98, uniform(0.05))}, // the window queue fills to its cap
		{"talkspurts and restarts", func(r *rand.Rand, i int) (int64, int64) { // 3 s silences; the sender's clock jumps 30 s every 2000
			sent := int64(i)*ms(20) + int64(i/150)*ms(3000)
			return sent + int64(i/2000)*ms(30000), sent + spiky(r, i) + ms(40*r.Float64())
		}},
	}
	configs := [][2]time.Duration{{0, 0}, {time.Nanosecond, 2 * time.Second}, {10 * time.Millisecond, time.Second}, {40 * time.Millisecond, 201 * time.Millisecond}, {20 * time.Millisecond, 20 * time.Millisecond}}
	c, _ := newCodec(PCMU)
	for _, p := range patterns {
		for _, cfg := range configs {
			r := rand.New(rand.NewPCG(7, uint64(len(p.name))))
			b := newJitterBuffer(c, 8000, cfg[0], cfg[1])
			ref := newFullScan(8000, time.Duration(b.min), time.Duration(b.max))
			if got, want := b.target, ref.target(); got != want {
				t.Fatalf("%s %v: initial target %v, full scan %v", p.name, cfg, got, want)
			}
			const n = 40000 // 13 min of packets: the histogram renormalises four times
			changes, last := 0, b.target
			for i := range n {
				sent, at := p.next(r, i)
				ts := uint32(0xFFFF0000 + sent*8000/int64(time.Second))
				b.observe(at, ts)
				b.updateTarget()
				ref.observe(at, ts)
				if want := ref.target(); b.target != want {
					t.Fatalf("%s %v: packet %d: target %v, full scan %v", p.name, cfg, i, time.Duration(b.target), time.Duration(want))
				}
				if b.target != last {
					changes, last = changes+1, b.target
				}
			}
			t.Logf("%s %v: the target changed %d times; window queue %d", p.name, cfg, changes, len(b.win))
		}
	}
}
