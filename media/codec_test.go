package media

import (
	"errors"
	"math"
	"testing"

	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

func TestG711RoundTrip(t *testing.T) {
	for _, c := range []Codec{PCMU, PCMA} {
		t.Run(c.Name, func(t *testing.T) {
			impl, err := newCodec(c)
			if err != nil {
				t.Fatal(err)
			}
			src := pcm.Tone(1000, 8000, 1600, 0.5)
			payload := make([]byte, impl.MaxPayload(len(src)))
			n := impl.Encode(payload, src)
			if n != len(src) {
				t.Fatalf("encoded %d bytes for %d samples", n, len(src))
			}
			got := impl.Decode(nil, payload[:n])
			var sig, noise float64
			for i := range src {
				sig += float64(src[i]) * float64(src[i])
				d := float64(got[i]) - float64(src[i])
				noise += d * d
			}
			// G.711 gives about 38 dB SNR for a loud signal.
			if snr := 10 * math.Log10(sig/noise); snr < 33 {
				t.Errorf("SNR %.1f dB, want ≥ 33 dB", snr)
			}
		})
	}
}

func TestCodecs(t *testing.T) {
	if c, ok := CodecByName("pcma"); !ok || c != PCMA {
		t.Errorf("CodecByName(pcma) = %v, %v", c, ok)
	}
	if _, ok := CodecByName("opus"); ok {
		t.Error("CodecByName(opus) found a codec")
	}
	for _, c := range []Codec{{Name: "opus", PayloadType: 111, ClockRate: 48000}, {Name: "PCMU", ClockRate: 16000}} {
		if _, err := newCodec(c); !errors.Is(err, ErrUnsupportedCodec) {
			t.Errorf("newCodec(%v): err = %v, want ErrUnsupportedCodec", c, err)
		}
	}
	if _, err := (&PortPool{}).Open(StreamConfig{Codec: Codec{Name: "G729", PayloadType: 18, ClockRate: 8000}}); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("Open(G729): err = %v, want ErrUnsupportedCodec", err)
	}
}

// The lookup tables give zaf/g711's codes and samples for every input.
func TestG711Tables(t *testing.T) {
	u, a := ulaw{}, alaw{}
	var code [1]byte
	for v := math.MinInt16; v <= math.MaxInt16; v++ {
		s := []int16{int16(v)}
		if u.Encode(code[:], s); code[0] != g711.EncodeUlawFrame(int16(v)) {
			t.Fatalf("µ-law %d: %#x, want %#x", v, code[0], g711.EncodeUlawFrame(int16(v)))
		}
		if a.Encode(code[:], s); code[0] != g711.EncodeAlawFrame(int16(v)) {
			t.Fatalf("A-law %d: %#x, want %#x", v, code[0], g711.EncodeAlawFrame(int16(v)))
		}
	}
	for c := range 256 {
		if got := u.Decode(nil, []byte{byte(c)}); len(got) != 1 || got[0] != g711.DecodeUlawFrame(byte(c)) {
			t.Fatalf("µ-law code %#x: %v", c, got)
		}
		if got := a.Decode([]int16{7}, []byte{byte(c)}); len(got) != 2 || got[0] != 7 || got[1] != g711.DecodeAlawFrame(byte(c)) {
			t.Fatalf("A-law code %#x: %v", c, got)
		}
	}
}
