package media

import (
	"sync/atomic"
	"time"
)

// Stats is a snapshot of one Stream's counters since it opened.
type Stats struct {
	PacketsIn  uint64 // valid RTP packets received (audio, DTMF, comfort noise)
	BytesIn    uint64 // their size, RTP header included
	PacketsOut uint64 // RTP packets sent
	BytesOut   uint64

	Lost      uint64 // audio packets never received by their playout time
	Late      uint64 // audio packets that arrived after their playout time
	Duplicate uint64 // audio packets received twice
	Dropped   uint64 // audio packets discarded mid-word: the jitter buffer overflowed or held far too much
	Underruns uint64 // times the jitter buffer ran dry during a talkspurt
	Malformed uint64 // datagrams that are not RTP we can use: too short, wrong version, unknown payload type
	Foreign   uint64 // valid RTP from a second source while the latched one is live

	JitterDelay  time.Duration // mean playout delay the jitter buffer added to played packets (beyond the fastest path)
	JitterTarget time.Duration // its current target delay, from the measured arrival jitter
	ConcealedMs  uint64        // audio synthesized for missing packets (loss concealment), ms

	// RFC 3550 receiver statistics of the latched source, and what the peer's RTCP says.
	Expected         uint64        // packets its sequence numbers say were sent (A.3); restarts on SSRC change
	NetworkLost      uint64        // of those, never received (A.3's cumulative loss, floored at 0)
	Jitter           time.Duration // interarrival jitter (A.8)
	RTT              time.Duration // round trip from the peer's reports (LSR/DLSR); 0 until one arrives
	PeerFractionLost float64       // the peer's latest fraction lost of our packets
	PeerLost         int32         // the peer's cumulative count of our packets lost
	PeerJitter       time.Duration // the peer's interarrival jitter of our packets
	RTCPIn, RTCPOut  uint64        // RTCP compound packets received from the peer and sent
}

// counters are the Stream's own counters; the jitter buffer keeps its own.
type counters struct {
	packetsIn, bytesIn, packetsOut, bytesOut, malformed, foreign atomic.Uint64
}

// Stats returns the stream's counters. It is safe to call at any time, even after Close.
func (s *Stream) Stats() Stats {
	jb := s.jb
	st := Stats{
		PacketsIn:  s.stats.packetsIn.Load(),
		BytesIn:    s.stats.bytesIn.Load(),
		PacketsOut: s.stats.packetsOut.Load(),
		BytesOut:   s.stats.bytesOut.Load(),
		Lost:       jb.lost.Load(),
		Late:       jb.late.Load(),
		Duplicate:  jb.duplicate.Load(),
		Dropped:    jb.dropped.Load(),
		Underruns:  jb.underruns.Load(),
		Malformed:  s.stats.malformed.Load(),
		Foreign:    s.stats.foreign.Load(),
	}
	st.JitterDelay, st.JitterTarget, st.ConcealedMs = jb.delayStats()
	s.rtcpStats(&st)
	return st
}
