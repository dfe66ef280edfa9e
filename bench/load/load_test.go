package main

import (
	"net/netip"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// The marker and the noise come back unchanged from a gateway that decodes
// µ-law to PCM and encodes it again, and the marker is found at any offset.
func TestMarkerSurvivesG711(t *testing.T) {
	m := newMediaCall(nil, netip.AddrPort{}, 100, time.Now())
	for _, k := range []uint32{0, 1, 0xabcdef, 1<<24 - 1} {
		putMarker(m.pkt[12:], k)
		frame := m.pkt[12:]
		round := g711.EncodeUlaw(g711.DecodeUlaw(frame))
		for i := range frame {
			if round[i] != frame[i] {
				t.Fatalf("byte %d: %#x came back as %#x", i, frame[i], round[i])
			}
		}
		for _, off := range []int{0, 1, 37, frameBytes - markerBytes} {
			shifted := append(append([]byte(nil), frame[frameBytes-off:]...), frame[:frameBytes-off]...)
			got, at, ok := findMarker(shifted)
			if !ok || got != k || at != off {
				t.Fatalf("marker %#x at %d: found %#x at %d (%v)", k, off, got, at, ok)
			}
		}
	}
}

func TestHistQuantile(t *testing.T) {
	var h hist
	for i := range 100 {
		h.add(time.Duration(i+1) * time.Millisecond) // 1..100 ms
	}
	h.add(-3 * time.Second) // a deviation counts by its size
	if got := h.quantile(0.5); got < 50 || got > 51.1 {
		t.Fatalf("p50 = %v ms, want about 51", got)
	}
	if got := h.quantile(1); got < 3000 || got > 3010 {
		t.Fatalf("p100 = %v ms, want 3000-3010 (a 10 ms bucket of the coarse range)", got)
	}
}
