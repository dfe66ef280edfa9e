package media

import (
	"math"
	"testing"
	"time"
)

// Known points of G.107: the default R of 93.2 is MOS 4.41, and Annex B's
// mapping at round R values.
func TestMOSKnownPoints(t *testing.T) {
	for _, c := range []struct{ r, mos float64 }{
		{93.2, 4.41}, {90, 4.34}, {80, 4.02}, {70, 3.60}, {60, 3.10}, {50, 2.58}, {0, 1}, {-5, 1}, {100, 4.5}, {120, 4.5},
	} {
		if got := MOS(c.r); math.Abs(got-c.mos) > 0.005 {
			t.Errorf("MOS(%v) = %.3f, want %.2f", c.r, got, c.mos)
		}
	}
}

func TestRFactorKnownPoints(t *testing.T) {
	for _, c := range []struct {
		name     string
		delay    time.Duration
		loss     float64
		ie, bpl  float64
		r        float64
		mosAbove float64
	}{
		{"no impairment", 0, 0, 0, 25.1, 93.2, 4.40},
		{"150 ms one way: Id 3.6", 150 * time.Millisecond, 0, 0, 25.1, 89.6, 4.3},
		{"300 ms one way: Id 7.2 + 13.5", 300 * time.Millisecond, 0, 0, 25.1, 72.503, 3.7},
		{"G.711 with PLC, 2 % random loss: Ie,eff 7.01", 0, 0.02, 0, 25.1, 86.189, 4.2},
		{"G.711 without PLC, 2 % loss: Ie,eff 30.16", 0, 0.02, 0, 4.3, 63.041, 3.2},
		{"G.729A (Ie 11, Bpl 19), 1 % loss", 0, 0.01, 11, 19, 78.0, 3.9},
		{"all lost", 0, 1, 0, 25.1, 93.2 - 95*100/125.1, 1},
	} {
		r := RFactor(c.delay, c.loss, c.ie, c.bpl)
		if math.Abs(r-c.r) > 0.01 {
			t.Errorf("%s: R = %.3f, want %.3f", c.name, r, c.r)
		}
		if m := MOS(r); m < c.mosAbove {
			t.Errorf("%s: MOS %.2f, want at least %.2f", c.name, m, c.mosAbove)
		}
	}
}

// A clean loopback stream scores near the top; one with 10 % loss does not.
func TestStreamQuality(t *testing.T) {
	pool := newTestPool(t, 46500)
	clean := openStream(t, pool, StreamConfig{Codec: PCMU})
	lossy := openStream(t, pool, StreamConfig{Codec: PCMU})
	peer := udpPeer(t)
	for i := range 100 {
		pkt := rtpPacket(t, 0, uint16(i), uint32(i*160), 7, make([]byte, 160))
		peer.WriteToUDPAddrPort(pkt, clean.LocalAddr())
		if i%10 != 5 {
			peer.WriteToUDPAddrPort(pkt, lossy.LocalAddr())
		}
	}
	waitFor(t, "RTP in", func() bool { return clean.Stats().PacketsIn == 100 && lossy.Stats().PacketsIn == 90 })
	qc, ql := clean.Quality(), lossy.Quality()
	if qc.LossRatio != 0 || qc.MOS < 4.3 || qc.Packets != 100 {
		t.Fatalf("clean: %+v, want no loss and MOS ≥ 4.3", qc)
	}
	if math.Abs(ql.LossRatio-0.1) > 1e-9 || ql.MOS > 3.8 || ql.MOS < 2.5 {
		t.Fatalf("10 %% loss: %+v, want loss 0.1 and MOS between 2.5 and 3.8", ql)
	}
	t.Logf("clean MOS %.2f (R %.1f); 10%% loss MOS %.2f (R %.1f)", qc.MOS, qc.R, ql.MOS, ql.R)
}
