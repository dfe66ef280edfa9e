package pcm

import (
	"math"
	"testing"

	"github.com/zaf/g711"
)

// The tables give zaf/g711's code for every sample and its sample for every
// code, appended after what dst held.
func TestG711Append(t *testing.T) {
	all := make([]int16, 0, 1<<16)
	for v := math.MinInt16; v <= math.MaxInt16; v++ {
		all = append(all, int16(v))
	}
	u, a := AppendUlaw([]byte{0xee}, all), AppendAlaw([]byte{0xee}, all)
	if len(u) != len(all)+1 || len(a) != len(all)+1 || u[0] != 0xee || a[0] != 0xee {
		t.Fatalf("lengths %d, %d, first %#x, %#x: want %d and the prefix kept", len(u), len(a), u[0], a[0], len(all)+1)
	}
	for i, v := range all {
		if want := g711.EncodeUlawFrame(v); u[i+1] != want {
			t.Fatalf("µ-law %d: %#x, want %#x", v, u[i+1], want)
		}
		if want := g711.EncodeAlawFrame(v); a[i+1] != want {
			t.Fatalf("A-law %d: %#x, want %#x", v, a[i+1], want)
		}
	}
	codes := make([]byte, 256)
	for c := range codes {
		codes[c] = byte(c)
	}
	du, da := AppendFromUlaw([]int16{7}, codes), AppendFromAlaw([]int16{7}, codes)
	if len(du) != 257 || len(da) != 257 || du[0] != 7 || da[0] != 7 {
		t.Fatalf("lengths %d, %d, first %d, %d: want 257 and the prefix kept", len(du), len(da), du[0], da[0])
	}
	for c := range codes {
		if want := g711.DecodeUlawFrame(byte(c)); du[c+1] != want {
			t.Fatalf("µ-law code %#x: %d, want %d", c, du[c+1], want)
		}
		if want := g711.DecodeAlawFrame(byte(c)); da[c+1] != want {
			t.Fatalf("A-law code %#x: %d, want %d", c, da[c+1], want)
		}
	}
}

// One 20 ms frame at 8 kHz each way: the tables against zaf/g711's per-sample
// functions, which the agents' Twilio and OpenAI sessions called before.
func BenchmarkUlawFrame(b *testing.B) {
	frame := Tone(440, 8000, 160, 16000)
	codes := AppendUlaw(nil, frame)
	enc, dec := make([]byte, 0, 160), make([]int16, 0, 160)
	b.Run("table", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			enc = AppendUlaw(enc[:0], frame)
			dec = AppendFromUlaw(dec[:0], codes)
		}
	})
	b.Run("zaf", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			enc = enc[:0]
			for _, v := range frame {
				enc = append(enc, g711.EncodeUlawFrame(v))
			}
			dec = dec[:0]
			for _, c := range codes {
				dec = append(dec, g711.DecodeUlawFrame(c))
			}
		}
	})
}
