package media

import (
	"strings"
	"time"
)

// Quality is one call's receive quality as VoIP monitors report it: what the
// caller's audio went through on its way to us, scored by the E-model.
type Quality struct {
	Packets           uint64        // RTP packets received
	LossRatio         float64       // packets lost in the network or too late to play, of those expected
	Jitter            time.Duration // RFC 3550 interarrival jitter
	RTT               time.Duration // from RTCP; 0 when the peer sent no usable report
	JitterBufferDelay time.Duration // playout delay added by the jitter buffer; 0 if not measured
	Concealed         time.Duration // audio synthesised for lost packets; 0 if not measured
	Delay             time.Duration // the one-way mouth-to-ear estimate the score used
	R                 float64       // E-model transmission rating, 0–100
	MOS               float64       // listening quality, 1–4.5
}

// E-model constants (ITU-T G.107 with default values, and G.113 Appendix I).
const (
	eModelR0 = 93.2 // R with every default: Ro − Is
	// bplG711PLC is G.711's packet-loss robustness with Appendix I concealment
	// (G.113 Appendix I); without concealment it would be 4.3.
	bplG711PLC = 25.1
)

// codecImpairment is a codec's equipment impairment Ie and loss robustness Bpl.
// Codecs G.113 does not list are scored like G.711 with concealment.
func codecImpairment(name string) (ie, bpl float64) {
	switch strings.ToUpper(name) {
	case "PCMU", "PCMA":
		return 0, bplG711PLC
	case "OPUS":
		return 0, 20 // codec PLC and FEC; Ie ≈ 0 at narrowband telephony rates
	}
	return 0, bplG711PLC
}

// RFactor is the simplified E-model rating VoIP monitors use (G.107 with
// defaults, Cole & Rosenbluth's delay term): R = 93.2 − Id(d) − Ie,eff(Ppl),
// with d the one-way delay and loss the fraction of packets lost at random.
func RFactor(delay time.Duration, loss, ie, bpl float64) float64 {
	d := float64(delay) / float64(time.Millisecond)
	id := 0.024 * d
	if d > 177.3 {
		id += 0.11 * (d - 177.3)
	}
	ppl := 100 * min(max(loss, 0), 1)
	ieEff := ie + (95-ie)*ppl/(ppl+bpl) // BurstR = 1: random loss
	return eModelR0 - id - ieEff
}

// MOS maps an R rating to a mean opinion score (G.107 Annex B).
func MOS(r float64) float64 {
	switch {
	case r <= 0:
		return 1
	case r >= 100:
		return 4.5
	}
	return 1 + 0.035*r + r*(r-60)*(100-r)*7e-6
}

// packetization is the delay a 20 ms frame adds before it can leave the sender.
const packetization = 20 * time.Millisecond

// Quality scores what has been received so far; call it at the end of the call.
func (s *Stream) Quality() Quality {
	st := s.Stats()
	q := Quality{
		Packets: st.PacketsIn,
		Jitter:  st.Jitter,
		RTT:     st.RTT,
	}
	q.JitterBufferDelay, q.Concealed = playoutFigures(st)
	if st.Expected > 0 {
		lost := max(st.NetworkLost, st.Lost) // the jitter buffer also counts packets that came too late
		q.LossRatio = min(float64(lost)/float64(st.Expected), 1)
	}
	q.Delay = st.RTT/2 + q.JitterBufferDelay + packetization
	ie, bpl := codecImpairment(s.cfg.Codec.Name)
	q.R = RFactor(q.Delay, q.LossRatio, ie, bpl)
	q.MOS = MOS(q.R)
	return q
}

// playoutFigures reads the jitter buffer's delay and concealment from st.
func playoutFigures(st Stats) (delay, concealed time.Duration) {
	return st.JitterDelay, time.Duration(st.ConcealedMs) * time.Millisecond
}
