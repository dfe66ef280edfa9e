package bridge

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voip/switchboard/media"
)

// qualityMetrics are histograms over calls of each call's receive quality,
// observed once when an answered call ends.
type qualityMetrics struct {
	mos, loss, jitter, rtt, jbDelay, concealed prometheus.Histogram
}

func newQualityMetrics(reg prometheus.Registerer) *qualityMetrics {
	h := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	q := &qualityMetrics{
		mos: h("switchboard_call_mos", "E-model (ITU-T G.107) MOS of the caller's audio as received, per call.",
			[]float64{1, 1.5, 2, 2.5, 3, 3.25, 3.5, 3.75, 4, 4.1, 4.2, 4.3, 4.4, 4.5}),
		loss: h("switchboard_call_loss_ratio", "Fraction of the caller's RTP packets lost or too late to play, per call.",
			[]float64{0, 0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1}),
		jitter: h("switchboard_call_jitter_seconds", "RFC 3550 interarrival jitter of the caller's RTP at call end, per call.",
			prometheus.ExponentialBuckets(0.0005, 2, 12)),
		rtt: h("switchboard_call_rtt_seconds", "Round-trip time from RTCP at call end, per call that had RTCP.",
			prometheus.ExponentialBuckets(0.001, 2, 13)),
		jbDelay: h("switchboard_call_jitter_buffer_delay_seconds", "Playout delay the jitter buffer added, per call.",
			prometheus.ExponentialBuckets(0.01, 1.5, 10)),
		concealed: h("switchboard_call_concealed_seconds", "Audio concealed for lost packets, per call.",
			prometheus.ExponentialBuckets(0.02, 2, 12)),
	}
	reg.MustRegister(q.mos, q.loss, q.jitter, q.rtt, q.jbDelay, q.concealed)
	return q
}

// observe adds one finished call.
func (m *qualityMetrics) observe(q media.Quality) {
	if q.Packets == 0 {
		return // nothing was received to score
	}
	m.mos.Observe(q.MOS)
	m.loss.Observe(q.LossRatio)
	m.jitter.Observe(q.Jitter.Seconds())
	if q.RTT > 0 {
		m.rtt.Observe(q.RTT.Seconds())
	}
	if q.JitterBufferDelay > 0 {
		m.jbDelay.Observe(q.JitterBufferDelay.Seconds())
	}
	m.concealed.Observe(q.Concealed.Seconds())
}

// qualityAttrs are the quality fields of a call's final log line.
func qualityAttrs(q media.Quality) slog.Attr {
	return slog.Group("quality",
		slog.Float64("mos", round2(q.MOS)),
		slog.Float64("r", round2(q.R)),
		slog.Float64("loss", round4(q.LossRatio)),
		slog.Duration("jitter", q.Jitter.Round(10*time.Microsecond)),
		slog.Duration("rtt", q.RTT.Round(10*time.Microsecond)),
		slog.Duration("jb_delay", q.JitterBufferDelay.Round(time.Millisecond)),
		slog.Duration("concealed", q.Concealed.Round(time.Millisecond)),
	)
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func round4(f float64) float64 { return float64(int64(f*10000+0.5)) / 10000 }
