package bridge

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the gateway's call counters; one set per registry.
type Metrics struct {
	callsTotal   *prometheus.CounterVec
	callsActive  prometheus.Gauge
	callDuration prometheus.Histogram
	stage        *prometheus.HistogramVec
	quality      *qualityMetrics
	dtmfReceived *prometheus.CounterVec // by via (dtmf.go)
}

// NewMetrics registers the call metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_calls_total",
			Help: "Calls that reached the gateway, by result (answered, rejected, no_route, failed, cancelled).",
		}, []string{"result"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_calls_active",
			Help: "Calls in progress.",
		}),
		callDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_call_duration_seconds",
			Help:    "Duration of answered calls, answer to end.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "switchboard_call_stage_seconds",
			Help:    "Time spent in each stage of call set-up (invite_to_route, route_to_answer).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"stage"}),
	}
	reg.MustRegister(m.callsTotal, m.callsActive, m.callDuration, m.stage)
	m.quality = newQualityMetrics(reg)
	m.dtmfReceived = newDTMFMetric(reg)
	return m
}
