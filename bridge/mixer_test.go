package bridge

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// delivery is when a sender's frames reach the mixer: at tick at, frames
// [from, to) of its stream arrive together.
type delivery struct{ at, from, to int }

// chunked delivers frames in chunks of size, each chunk arriving late by up to
// jitter ticks after its first frame was due (a TTS agent or an SFU burst).
func chunked(total, size, jitter int, seed uint64) []delivery {
	r := rand.New(rand.NewPCG(seed, 1))
	var ds []delivery
	for f := 0; f < total; f += size {
		late := 0
		if jitter > 0 {
			late = r.IntN(jitter + 1)
		}
		ds = append(ds, delivery{at: f + late, from: f, to: min(f+size, total)})
	}
	return ds
}

// heldBack holds frames in the network and releases them in bursts of 1 to
// maxBurst frames, each burst when its last frame has been sent: audio is
// never early, only late.
func heldBack(total, maxBurst int, seed uint64) []delivery {
	r := rand.New(rand.NewPCG(seed, 2))
	var ds []delivery
	for f := 0; f < total; {
		n := 1 + r.IntN(maxBurst)
		to := min(f+n, total)
		ds = append(ds, delivery{at: to - 1, from: f, to: to})
		f = to
	}
	return ds
}

// mixRun is what one input's audio sounded like after the mixer.
type mixRun struct {
	heard    int // frames with this input's audio
	injected int // silent frames between its first and last audible frame
	stats    mixStats
}

// runMixer plays deliveries of a 12 s tone through a mixer input on a
// simulated 20 ms clock and counts the silence injected mid-stream.
func runMixer(t *testing.T, queueFrames int, ds []delivery, total int) mixRun {
	t.Helper()
	const rate = 8000
	m := newMixer(rate)
	if queueFrames > 0 {
		m.queue = queueFrames
	}
	in := m.add()
	n := pcm.FrameSamples(rate)
	src := pcm.Tone(440, rate, total*n, 0.3)
	out := make([]int16, n)
	var run mixRun
	first, last := -1, -1
	_ = first
	next := 0
	for tick := 0; tick < total+200; tick++ {
		for ; next < len(ds) && ds[next].at <= tick; next++ {
			in.write(src[ds[next].from*n:ds[next].to*n], false)
		}
		if m.mix(out) {
			if first < 0 {
				first = tick
			} else {
				run.injected += tick - last - 1 // silent ticks since the last audible one
			}
			last = tick
			run.heard++
		}
	}
	run.stats = in.Stats()
	return run
}

// Bursty delivery injects no silence and loses nothing, where a 100 ms input
// buffer (livekit/sip#727) loses most of it.
func TestMixerBurstyInputNoInjectedSilence(t *testing.T) {
	const total = 600 // 12 s
	cases := []struct {
		name         string
		queue        int // frames; 0: the mixer's own
		ds           []delivery
		maxInjected  int // frames
		mustLoseMost bool
	}{
		{name: "steady", ds: chunked(total, 1, 0, 1)},
		{name: "steady with 40 ms scheduler jitter", ds: chunked(total, 1, 2, 2)},
		{name: "300 ms chunks (livekit/sip#727)", ds: chunked(total, 15, 0, 3)},
		{name: "500 ms chunks, up to 60 ms late", ds: chunked(total, 25, 3, 4), maxInjected: 3},
		{name: "1 s chunks", ds: chunked(total, 50, 0, 5)},
		// Held back in the network: the first bursts teach the input how deep
		// to buffer; after that none is injected (checked below).
		{name: "held back, bursts up to 200 ms", ds: heldBack(total, 10, 6), maxInjected: 20},
		{name: "reference: 100 ms buffer, 300 ms chunks", queue: 5, ds: chunked(total, 15, 0, 3), mustLoseMost: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := runMixer(t, c.queue, c.ds, total)
			t.Logf("heard %d of %d frames; injected silence %d ms; underruns %d; dropped %d ms",
				r.heard, total, r.injected*20, r.stats.Underruns, r.stats.Dropped/8)
			if c.mustLoseMost {
				// The measure can fail: a shallow buffer shows the symptom.
				if r.injected*20 < 3000 || r.heard > total/2 {
					t.Fatalf("a 100 ms buffer should inject seconds of silence; injected %d ms, heard %d frames", r.injected*20, r.heard)
				}
				return
			}
			if r.heard != total || r.stats.Dropped != 0 {
				t.Fatalf("heard %d of %d frames, %d samples dropped; want every frame", r.heard, total, r.stats.Dropped)
			}
			if r.injected > c.maxInjected {
				t.Fatalf("%d ms of silence injected mid-stream, want at most %d ms", r.injected*20, c.maxInjected*20)
			}
		})
	}
}

// After it has adapted to a held-back sender, an input injects nothing: the
// silence of the first bursts is all there is, even over a minute.
func TestMixerAdaptsThenHoldsSteady(t *testing.T) {
	const total = 3000
	ds := heldBack(total, 10, 7)
	r := runMixer(t, 0, ds, total)
	t.Logf("60 s held back in bursts up to 200 ms: injected %d ms, underruns %d", r.injected*20, r.stats.Underruns)
	if r.stats.Underruns > 3 || r.heard != total {
		t.Fatalf("underruns %d (want ≤ 3, all in the first bursts), heard %d of %d", r.stats.Underruns, r.heard, total)
	}
}

// A sender that stalls and then releases a second at once is not left a
// second behind for the rest of the call.
func TestMixerTrimsBacklog(t *testing.T) {
	const rate = 8000
	m := newMixer(rate)
	in := m.add()
	n := pcm.FrameSamples(rate)
	frame := pcm.Tone(440, rate, n, 0.3)
	out := make([]int16, n)
	for range 3 {
		in.write(frame, false)
	}
	for tick := range 600 {
		if tick == 100 {
			for range 40 { // 800 ms released at once
				in.write(frame, false)
			}
		}
		in.write(frame, false)
		m.mix(out)
	}
	in.mu.Lock()
	depth := in.n / n
	in.mu.Unlock()
	if depth > mixStartFrames+mixTrimSlack {
		t.Fatalf("queue still %d frames deep 10 s after the burst; want it trimmed", depth)
	}
	t.Logf("after an 800 ms backlog: %d frames queued, %d ms trimmed", depth, in.Stats().Dropped/8)
}

// Two inputs are summed; full-scale inputs clip rather than wrap.
func TestMixerSumsAndClips(t *testing.T) {
	const rate = 16000
	m := newMixer(rate)
	n := pcm.FrameSamples(rate)
	a, b := m.add(), m.add()
	a.write(pcm.Tone(440, rate, 20*n, 0.3), false)
	b.write(pcm.Tone(660, rate, 20*n, 0.3), false)
	var got []int16
	out := make([]int16, n)
	for range 15 {
		if !m.mix(out) {
			t.Fatal("nothing mixed with two inputs queued")
		}
		got = append(got, out...)
	}
	p440, p660, p550 := pcm.Goertzel(got, rate, 440), pcm.Goertzel(got, rate, 660), pcm.Goertzel(got, rate, 550)
	if p440 < 100*p550 || p660 < 100*p550 {
		t.Fatalf("power 440 Hz %.3g, 660 Hz %.3g, 550 Hz %.3g: want both tones well above the gap", p440, p660, p550)
	}

	m.remove(b)
	if m.Len() != 1 {
		t.Fatalf("%d inputs after remove, want 1", m.Len())
	}
	c := m.add()
	loud := make([]int16, 3*n)
	for i := range loud {
		loud[i] = math.MaxInt16 - 10
	}
	a2 := m.add()
	m.remove(a)
	c.write(loud, false)
	a2.write(loud, false)
	m.mix(out)
	for _, v := range out {
		if v != math.MaxInt16 {
			t.Fatalf("two near-full-scale inputs gave %d, want clipped to %d", v, math.MaxInt16)
		}
	}
}

// Mixing on the clock allocates nothing.
func BenchmarkMixerThreeInputs(b *testing.B) {
	const rate = 48000
	m := newMixer(rate)
	n := pcm.FrameSamples(rate)
	frame := pcm.Tone(440, rate, n, 0.3)
	ins := []*mixInput{m.add(), m.add(), m.add()}
	for _, in := range ins {
		for range mixStartFrames {
			in.write(frame, false)
		}
	}
	out := make([]int16, n)
	b.ReportAllocs()
	for b.Loop() {
		for _, in := range ins {
			in.write(frame, false)
		}
		m.mix(out)
	}
}

// A sender's pauses on purpose (Opus DTX between utterances) are not taken
// for lateness: the input's prefill, and so its delay, stays as it was.
func TestMixerPausesAreNotLateness(t *testing.T) {
	const rate = 48000
	m := newMixer(rate)
	in := m.add()
	n := pcm.FrameSamples(rate)
	frame := pcm.Tone(440, rate, n, 0.3)
	out := make([]int16, n)
	heard := 0
	for tick := range 500 {
		talking := tick%100 < 60 // 1.2 s of speech, 0.8 s of DTX
		if talking {
			in.write(frame, tick%100 == 0)
		}
		if m.mix(out) {
			heard++
		}
	}
	in.mu.Lock()
	prefill := in.prefill
	in.mu.Unlock()
	if st := in.Stats(); st.Underruns != 0 || prefill != mixStartFrames {
		t.Fatalf("after 5 utterances: %d underruns, prefill %d frames; want 0 and %d", st.Underruns, prefill, mixStartFrames)
	}
	if heard < 5*60-3 {
		t.Fatalf("heard %d frames of %d spoken", heard, 5*60)
	}
}
