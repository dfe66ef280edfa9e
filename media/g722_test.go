package media

import (
	"math"
	"testing"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// g722RoundTrip encodes src in 20 ms packets and decodes them again.
func g722RoundTrip(t testing.TB, src []int16) []int16 {
	t.Helper()
	c, err := newCodec(G722)
	if err != nil {
		t.Fatal(err)
	}
	var out []int16
	buf := make([]byte, c.MaxPayload(320))
	for i := 0; i+320 <= len(src); i += 320 {
		n := c.Encode(buf, src[i:i+320])
		if n != 160 {
			t.Fatalf("20 ms encoded to %d bytes, want 160 (64 kbit/s)", n)
		}
		out = c.Decode(out, buf[:n])
	}
	return out
}

// bestSNR is out's SNR against in at the codec delay that fits best, in dB.
func bestSNR(in, out []int16) (float64, int) {
	best, lag := math.Inf(-1), 0
	for d := 0; d < 64; d++ {
		var sig, noise float64
		for i := 1600; i+d < len(out) && i < len(in); i++ {
			e := float64(out[i+d]) - float64(in[i])
			sig += float64(in[i]) * float64(in[i])
			noise += e * e
		}
		if snr := 10 * math.Log10(sig/(noise+1e-9)); snr > best {
			best, lag = snr, d
		}
	}
	return best, lag
}

// Tones in both sub-bands come back at their frequency and level: 1 kHz in
// the low band, 6 kHz in the high band (which G.711 cannot carry at all).
func TestG722Tones(t *testing.T) {
	for _, tt := range []struct {
		freq   float64
		minSNR float64
	}{{1000, 25}, {3000, 20}, {6000, 12}} {
		in := pcm.Tone(tt.freq, 16000, 16000, 0.3)
		out := g722RoundTrip(t, in)
		if f := pcm.DominantFrequency(out[1600:], 16000); math.Abs(f-tt.freq) > tt.freq*0.01 {
			t.Errorf("%.0f Hz came back as %.0f Hz", tt.freq, f)
		}
		snr, lag := bestSNR(in, out)
		t.Logf("%.0f Hz: SNR %.1f dB at a delay of %d samples", tt.freq, snr, lag)
		if snr < tt.minSNR {
			t.Errorf("%.0f Hz: SNR %.1f dB, want at least %.0f", tt.freq, snr, tt.minSNR)
		}
	}
}

// Silence stays silent and a full-scale square wave does not wrap around.
func TestG722Extremes(t *testing.T) {
	out := g722RoundTrip(t, make([]int16, 3200))
	for i, v := range out {
		if v > 4 || v < -4 {
			t.Fatalf("silence decoded to %d at %d", v, i)
		}
	}
	sq := make([]int16, 16000)
	for i := range sq {
		sq[i] = 32767
		if (i/40)%2 == 1 {
			sq[i] = -32768
		}
	}
	out = g722RoundTrip(t, sq)
	if f := pcm.DominantFrequency(out[1600:], 16000); math.Abs(f-200) > 5 {
		t.Fatalf("full-scale 200 Hz square wave came back with its strongest bin at %.0f Hz", f)
	}
}

func TestG722Registered(t *testing.T) {
	c, ok := CodecByName("g722")
	if !ok || c != G722 {
		t.Fatalf("CodecByName(g722) = %v, %v", c, ok)
	}
	pc, err := newCodec(c)
	if err != nil || pc.Rate() != 16000 {
		t.Fatalf("newCodec(G722): %v, %v", pc, err)
	}
	if _, err := newCodec(Codec{Name: "G722"}); err == nil {
		t.Error("G722 without its 8000 clock accepted: RTP timestamps would run at 16 kHz")
	}
}

func TestG722NoAllocations(t *testing.T) {
	c, _ := newCodec(G722)
	src := pcm.Tone(1000, 16000, 320, 0.3)
	pkt := make([]byte, 160)
	dst := make([]int16, 0, 320)
	if a := testing.AllocsPerRun(200, func() {
		c.Encode(pkt, src)
		dst = c.Decode(dst[:0], pkt)
	}); a != 0 {
		t.Fatalf("%.1f allocations per packet", a)
	}
}

func BenchmarkG722Encode(b *testing.B) {
	c, _ := newCodec(G722)
	src := pcm.Tone(1000, 16000, 320, 0.3)
	pkt := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		c.Encode(pkt, src)
	}
}

func BenchmarkG722Decode(b *testing.B) {
	c, _ := newCodec(G722)
	pkt := make([]byte, 160)
	c.Encode(pkt, pcm.Tone(1000, 16000, 320, 0.3))
	dst := make([]int16, 0, 320)
	b.ReportAllocs()
	for b.Loop() {
		dst = c.Decode(dst[:0], pkt)
	}
}
