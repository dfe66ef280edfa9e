package opus

import (
	"math"
	"net/netip"
	"testing"
	"time"

	hopus "github.com/hraban/opus"

	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

const frame = ClockRate / 50 // 20 ms

func newCodec(t testing.TB, fmtp string) *Codec {
	t.Helper()
	c, err := New(ParseFmtp(fmtp))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// encodeAll encodes src in 20 ms packets, each in a buffer of its own.
func encodeAll(t testing.TB, c *Codec, src []int16) [][]byte {
	t.Helper()
	var pkts [][]byte
	for i := 0; i+frame <= len(src); i += frame {
		buf := make([]byte, c.MaxPayload(frame))
		n := c.Encode(buf, src[i:i+frame])
		if n <= 0 {
			t.Fatalf("packet %d: Encode returned %d", i/frame, n)
		}
		pkts = append(pkts, buf[:n])
	}
	return pkts
}

// levelDB is the power at freq relative to the total power of s, in dB.
func levelDB(s []int16, freq float64) float64 {
	var total float64
	for _, v := range s {
		total += float64(v) * float64(v)
	}
	return 10 * math.Log10(pcm.Goertzel(s, ClockRate, freq)/(total/float64(len(s))+1e-9)+1e-12)
}

func TestParseFmtp(t *testing.T) {
	tests := []struct {
		fmtp string
		want Params
	}{
		{"", Params{}},
		{"useinbandfec=1", Params{UseInbandFEC: true}},
		{"maxplaybackrate=16000; sprop-maxcapturerate=16000; useinbandfec=1", Params{MaxPlaybackRate: 16000, UseInbandFEC: true}},
		{"stereo=1;sprop-stereo=1;maxaveragebitrate=20000", Params{MaxAverageBitrate: 20000}},
		{"MaxPlaybackRate=8000;useinbandfec=0", Params{MaxPlaybackRate: 8000}},
		{"maxplaybackrate=96000; maxplaybackrate; junk; useinbandfec=yes", Params{}}, // out of range and malformed ignored
	}
	for _, tt := range tests {
		if got := ParseFmtp(tt.fmtp); got != tt.want {
			t.Errorf("ParseFmtp(%q) = %+v, want %+v", tt.fmtp, got, tt.want)
		}
	}
}

func TestRegistered(t *testing.T) {
	c, ok := media.CodecByName("OPUS")
	if !ok || c.Name != "opus" || c.ClockRate != ClockRate || c.PayloadType != PayloadType {
		t.Fatalf("CodecByName(OPUS) = %+v, %v", c, ok)
	}
}

// A 1 kHz tone comes back as a 1 kHz tone at full level, 960 samples a packet.
func TestRoundTrip(t *testing.T) {
	c := newCodec(t, "")
	in := pcm.Tone(1000, ClockRate, 50*frame, 0.3)
	var out []int16
	for _, p := range encodeAll(t, c, in) {
		if len(p) > 200 {
			t.Errorf("packet of %d bytes for 20 ms at ≤32 kbit/s", len(p))
		}
		n := len(out)
		out = c.Decode(out, p)
		if len(out)-n != frame {
			t.Fatalf("decoded %d samples, want %d", len(out)-n, frame)
		}
	}
	tail := out[10*frame:] // past the codec's start-up
	if f := pcm.DominantFrequency(tail, ClockRate); math.Abs(f-1000) > 20 {
		t.Fatalf("dominant frequency %.0f Hz, want 1000", f)
	}
	ratio := rmsOf(tail) / rmsOf(in[10*frame:])
	if ratio < 0.8 || ratio > 1.2 {
		t.Fatalf("level ratio out/in %.2f, want about 1", ratio)
	}
	t.Logf("level ratio %.3f, 1 kHz share %.1f dB", ratio, levelDB(tail, 1000))
}

// A peer sending stereo (opus/48000/2 with stereo=1) is heard in mono: both
// channels' tones, 960 samples a packet.
func TestDecodesStereoToMono(t *testing.T) {
	enc, err := hopus.NewEncoder(ClockRate, 2, hopus.AppAudio)
	if err != nil {
		t.Fatal(err)
	}
	left := pcm.Tone(700, ClockRate, 40*frame, 0.3)
	right := pcm.Tone(1900, ClockRate, 40*frame, 0.3)
	c := newCodec(t, "")
	var out []int16
	st := make([]int16, 2*frame)
	buf := make([]byte, 4000)
	for i := 0; i+frame <= len(left); i += frame {
		for j := range frame {
			st[2*j], st[2*j+1] = left[i+j], right[i+j]
		}
		n, err := enc.Encode(st, buf)
		if err != nil {
			t.Fatal(err)
		}
		k := len(out)
		out = c.Decode(out, buf[:n])
		if len(out)-k != frame {
			t.Fatalf("decoded %d samples from a stereo packet, want %d mono", len(out)-k, frame)
		}
	}
	tail := out[10*frame:]
	for _, f := range []float64{700, 1900} {
		if db := levelDB(tail, f); db < -10 {
			t.Errorf("%.0f Hz at %.1f dB of the mono mix, want both channels in it", f, db)
		}
	}
}

// maxplaybackrate limits what we send: a receiver playing at 8 kHz gets no
// energy above 4 kHz, one at 48 kHz gets the 6 kHz tone.
func TestMaxPlaybackRateLimitsBand(t *testing.T) {
	in := pcm.Tone(6000, ClockRate, 50*frame, 0.3)
	level := func(fmtp string) float64 {
		c := newCodec(t, fmtp)
		var out []int16
		for _, p := range encodeAll(t, c, in) {
			out = c.Decode(out, p)
		}
		return rmsOf(out[10*frame:])
	}
	full, narrow := level("maxplaybackrate=48000"), level("maxplaybackrate=8000")
	if full < 3000 {
		t.Fatalf("6 kHz tone at maxplaybackrate=48000: rms %.0f, want it kept", full)
	}
	if narrow > full/30 {
		t.Fatalf("6 kHz tone at maxplaybackrate=8000: rms %.0f vs %.0f full band, want ≥30 dB less", narrow, full)
	}
	t.Logf("6 kHz rms: full band %.0f, maxplaybackrate=8000 %.0f", full, narrow)
}

// One packet is lost where a 500 Hz tone turns into 1500 Hz. In-band FEC in
// the next packet recovers the new tone; PLC can only extend the old one.
// Scored against the loss-free decode (which carries the codec's delay).
func TestConcealFECAndPLC(t *testing.T) {
	const lost = 30
	in := append(pcm.Tone(500, ClockRate, lost*frame, 0.3), pcm.Tone(1500, ClockRate, 20*frame, 0.3)...)
	tx := newCodec(t, "")
	pkts := encodeAll(t, tx, in)

	run := func(fec bool) []int16 {
		rx := newCodec(t, "")
		var out []int16
		for i := range lost {
			out = rx.Decode(out, pkts[i])
		}
		next := pkts[lost+1]
		if !fec {
			next = nil
		}
		return rx.Conceal(out, frame, next)[lost*frame:]
	}
	fec, plc := run(true), run(false)
	if len(fec) != frame || len(plc) != frame {
		t.Fatalf("concealed %d and %d samples, want %d", len(fec), len(plc), frame)
	}
	rx := newCodec(t, "")
	var clean []int16
	for _, p := range pkts[:lost+1] {
		clean = rx.Decode(clean, p)
	}
	ref := clean[lost*frame:]
	fecSNR, plcSNR := snr(ref, fec), snr(ref, plc)
	t.Logf("lost packet vs loss-free decode: FEC SNR %.1f dB (1500 Hz share %.1f dB), PLC SNR %.1f dB (1500 Hz share %.1f dB), silence 0 dB",
		fecSNR, levelDB(fec, 1500), plcSNR, levelDB(plc, 1500))
	if fecSNR < 3 || fecSNR <= plcSNR {
		t.Errorf("FEC SNR %.1f dB, PLC %.1f dB: want FEC above silence (0 dB) and PLC", fecSNR, plcSNR)
	}
	if levelDB(fec, 1500) < levelDB(plc, 1500)+20 {
		t.Errorf("FEC has the new 1500 Hz tone at %.1f dB, PLC at %.1f dB: want FEC to carry it", levelDB(fec, 1500), levelDB(plc, 1500))
	}
	if rmsOf(plc) < 1000 {
		t.Errorf("PLC gave rms %.0f, want the old tone carried on, not silence", rmsOf(plc))
	}
}

// The decoder's PLC fades out over a long gap rather than looping forever.
func TestPLCFadesOut(t *testing.T) {
	c := newCodec(t, "")
	var out []int16
	for _, p := range encodeAll(t, c, pcm.Tone(1000, ClockRate, 20*frame, 0.3)) {
		out = c.Decode(out, p)
	}
	out = out[:0]
	for range 10 { // 200 ms lost
		out = c.Conceal(out, frame, nil)
	}
	first, last := rmsOf(out[:frame]), rmsOf(out[9*frame:])
	t.Logf("PLC rms: first 20 ms %.0f, after 180 ms %.0f", first, last)
	if first < 1000 || last > first/4 {
		t.Fatalf("PLC rms first %.0f, last %.0f: want audible, then faded", first, last)
	}
}

// Concealment of a size libopus cannot do in one step still returns what was asked.
func TestConcealOddSizes(t *testing.T) {
	c := newCodec(t, "")
	for _, n := range []int{1, 100, 959, 960, 961, 7000} {
		if got := len(c.Conceal(nil, n, nil)); got != n {
			t.Errorf("Conceal(%d) gave %d samples", n, got)
		}
	}
	if got := len(c.Decode(nil, []byte{0xff, 0xff, 0xff})); got != frame {
		t.Errorf("a corrupt packet decoded to %d samples, want %d concealed", got, frame)
	}
}

// Opus through two real media.Streams over loopback UDP at 48 kHz.
func TestStreamsOverUDP(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	pool, err := media.NewPortPool(lo, 42000, 42099)
	if err != nil {
		t.Fatal(err)
	}
	codec, _ := media.CodecByName("opus")
	codec.Fmtp = "useinbandfec=1; maxplaybackrate=48000"
	a, err := pool.Open(media.StreamConfig{Codec: codec})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := pool.Open(media.StreamConfig{Codec: codec, Remote: a.LocalAddr()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if a.Rate() != ClockRate {
		t.Fatalf("Rate() = %d", a.Rate())
	}
	tone := pcm.Tone(1000, ClockRate, 50*frame, 0.3)
	var heard []int16
	dst := make([]int16, frame)
	tick := time.NewTicker(pcm.FrameDuration)
	defer tick.Stop()
	for i := 0; i < 60; i++ {
		<-tick.C
		if i < 50 {
			if err := b.WriteFrame(tone[i*frame:(i+1)*frame], i == 0); err != nil {
				t.Fatal(err)
			}
		}
		if a.ReadFrame(dst) {
			heard = append(heard, dst...)
		}
	}
	if len(heard) < 40*frame {
		t.Fatalf("heard %d frames of 50", len(heard)/frame)
	}
	if f := pcm.DominantFrequency(heard[5*frame:], ClockRate); math.Abs(f-1000) > 20 {
		t.Fatalf("dominant frequency %.0f Hz, want 1000", f)
	}
	if st := a.Stats(); st.PacketsIn < 45 {
		t.Fatalf("stats %+v", st)
	}
}

// Encode, Decode and Conceal write into buffers the codec or caller owns.
func TestNoAllocations(t *testing.T) {
	c := newCodec(t, "")
	src := pcm.Tone(1000, ClockRate, frame, 0.3)
	pkt := make([]byte, c.MaxPayload(frame))
	dst := make([]int16, 0, 4*frame)
	n := c.Encode(pkt, src)
	allocs := testing.AllocsPerRun(200, func() {
		n = c.Encode(pkt, src)
		dst = c.Decode(dst[:0], pkt[:n])
		dst = c.Conceal(dst[:0], frame, pkt[:n])
		dst = c.Conceal(dst[:0], frame, nil)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per packet, want 0", allocs)
	}
}

func BenchmarkEncode(b *testing.B) {
	c := newCodec(b, "")
	src := pcm.Tone(1000, ClockRate, frame, 0.3)
	pkt := make([]byte, c.MaxPayload(frame))
	b.ReportAllocs()
	for b.Loop() {
		c.Encode(pkt, src)
	}
}

func BenchmarkDecode(b *testing.B) {
	c := newCodec(b, "")
	pkts := encodeAll(b, c, pcm.Tone(1000, ClockRate, 50*frame, 0.3))
	dst := make([]int16, 0, 2*frame)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = c.Decode(dst[:0], pkts[i%len(pkts)])
		i++
	}
}

func BenchmarkConcealFEC(b *testing.B) {
	c := newCodec(b, "")
	pkts := encodeAll(b, c, pcm.Tone(1000, ClockRate, 50*frame, 0.3))
	dst := make([]int16, 0, 2*frame)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = c.Conceal(dst[:0], frame, pkts[i%len(pkts)])
		i++
	}
}

// One packet decoded, the next concealed by PLC: a fresh loss each time (PLC
// after a long gap has faded to silence and costs next to nothing).
func BenchmarkDecodeThenPLC(b *testing.B) {
	c := newCodec(b, "")
	pkts := encodeAll(b, c, pcm.Tone(1000, ClockRate, 50*frame, 0.3))
	dst := make([]int16, 0, 2*frame)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		dst = c.Decode(dst[:0], pkts[i%len(pkts)])
		dst = c.Conceal(dst, frame, nil)
		i++
	}
}

func rmsOf(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(len(s), 1)))
}

// snr of got against want, in dB; silence scores 0.
func snr(want, got []int16) float64 {
	var sig, noise float64
	for i := range want {
		d := float64(want[i]) - float64(got[i])
		sig += float64(want[i]) * float64(want[i])
		noise += d * d
	}
	return 10 * math.Log10(sig/(noise+1e-9))
}
