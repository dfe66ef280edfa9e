package bridge

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media"
)

// Where a caller's digit came from, as logged and as the via label of
// switchboard_dtmf_received_total.
const (
	viaRFC4733 = "rfc4733"
	viaInfo    = "info"
)

// watchDTMF makes the session hand the caller's digits, from RTP
// telephone-events and from SIP INFO (either may be nil), to the agent as DTMF
// events; each is logged and counted. Call before run.
func (s *session) watchDTMF(m *Metrics, rtp <-chan media.DTMFEvent, info <-chan rune) {
	s.metrics, s.dtmfRTP, s.dtmfInfo = m, rtp, info
}

// digit is one caller digit, on the frame clock.
func (s *session) digit(d rune, via string) {
	s.log.Info("dtmf", "digit", string(d), "via", via)
	if s.metrics != nil {
		s.metrics.dtmfReceived.WithLabelValues(via).Inc()
	}
	s.as.Event(agent.Event{Kind: agent.DTMF, Digit: d})
}

func newDTMFMetric(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "switchboard_dtmf_received_total",
		Help: "DTMF digits received from callers, by how they came (rfc4733, info).",
	}, []string{"via"})
	c.WithLabelValues(viaRFC4733) // both series exist from the start
	c.WithLabelValues(viaInfo)
	reg.MustRegister(c)
	return c
}
