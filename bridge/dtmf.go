package bridge

import (
	"context"

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

// relayDTMF hands the caller's digits, from RTP telephone-events and from SIP
// INFO, to the agent as DTMF events until ctx ends; each is logged and counted.
func (s *session) relayDTMF(ctx context.Context, m *Metrics, rtp <-chan media.DTMFEvent, info <-chan rune) {
	for {
		var d rune
		via := viaRFC4733
		select {
		case <-ctx.Done():
			return
		case e := <-rtp:
			d = e.Digit
		case d = <-info:
			via = viaInfo
		}
		s.log.Info("dtmf", "digit", string(d), "via", via)
		m.dtmfReceived.WithLabelValues(via).Inc()
		s.deliver(agent.Event{Kind: agent.DTMF, Digit: d})
	}
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
