package media

import "sync/atomic"

// Stats is a snapshot of one Stream's counters since it opened.
type Stats struct {
	PacketsIn  uint64 // valid RTP packets received (audio, DTMF, comfort noise)
	BytesIn    uint64 // their size, RTP header included
	PacketsOut uint64 // RTP packets sent
	BytesOut   uint64

	Lost      uint64 // audio packets never received by their playout time
	Late      uint64 // audio packets that arrived after their playout time
	Duplicate uint64 // audio packets received twice
	Dropped   uint64 // audio packets discarded because the reorder buffer overflowed
	Underruns uint64 // times the reorder buffer ran dry during playout
	Malformed uint64 // datagrams that are not RTP we can use: too short, wrong version, unknown payload type
	Foreign   uint64 // valid RTP from a second source while the latched one is live
}

// counters are the Stream's own counters; the reorder buffer keeps its own.
type counters struct {
	packetsIn, bytesIn, packetsOut, bytesOut, malformed, foreign atomic.Uint64
}

// Stats returns the stream's counters. It is safe to call at any time, even after Close.
func (s *Stream) Stats() Stats {
	jb := s.jb
	return Stats{
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
}
