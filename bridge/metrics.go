package bridge

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voip/switchboard/media"
)

// Call stages timed by switchboard_call_stage_seconds ("why was this call slow").
const (
	stageInviteToRoute   = "invite_to_route" // INVITE in → dialplan route chosen
	stageRouteToAnswer   = "route_to_answer" // route chosen → 200 OK acknowledged (agent connect included)
	stageInviteTo200     = "invite_to_200"   // INVITE taken by the SIP handler → 200 OK sent: the caller's set-up time, less the network and the ACK
	stageAnswerToRTP     = "answer_to_first_rtp"
	stageAgentConnect    = "agent_connect"     // target started (bot connected, fallbacks tried)
	stageAgentFirstAudio = "agent_first_audio" // answer → first audio from the agent (0 if queued before answer)
)

// Metrics are the gateway's Prometheus series; one set per registry. The
// series list is documented in README.md ("Metrics").
type Metrics struct {
	callsTotal   *prometheus.CounterVec // trunk, route, result
	callsActive  prometheus.Gauge
	routeActive  *prometheus.GaugeVec // trunk, route
	callDuration prometheus.Histogram
	stage        *prometheus.HistogramVec
	quality      *qualityMetrics
	dtmfReceived *prometheus.CounterVec // by via (dtmf.go)
	trunkUp      *prometheus.GaugeVec   // trunk (outbound.go)

	sipRequests  *prometheus.CounterVec // direction, method
	sipResponses *prometheus.CounterVec // direction, method, code
	sipRejected  *prometheus.CounterVec // reason, code
	sipDropped   *prometheus.CounterVec // reason

	rtp   rtpTotals                      // packets of ended calls; live ones are summed at scrape
	live  atomic.Pointer[Gateway]        // for the RTP collector and the port gauge
	ports atomic.Pointer[media.PortPool] // set by New
}

// NewMetrics registers the gateway's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		callsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_calls_total",
			Help: "Calls that reached the gateway, by trunk, route and result (answered, rejected, no_route, failed, cancelled).",
		}, []string{"trunk", "route", "result"}),
		callsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "switchboard_calls_active",
			Help: "Calls in progress, from INVITE to hang-up.",
		}),
		routeActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "switchboard_route_calls_active",
			Help: "Calls in progress by trunk and route (route is empty until the dialplan has chosen one).",
		}, []string{"trunk", "route"}),
		callDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "switchboard_call_duration_seconds",
			Help:    "Duration of answered calls, answer to end.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 12),
		}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "switchboard_call_stage_seconds",
			Help: "Time spent in each stage of a call: invite_to_route, route_to_answer, invite_to_200, answer_to_first_rtp, " +
				"agent_connect, agent_first_audio.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"stage"}),
		sipRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_requests_total",
			Help: "SIP requests received (in), retransmissions included, by method; dropped ones are not counted here.",
		}, []string{"direction", "method"}),
		sipResponses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_responses_total",
			Help: "SIP responses sent (out) and received (in), by the method they answer and status code.",
		}, []string{"direction", "method", "code"}),
		sipRejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_rejected_total",
			Help: "SIP requests answered with an error before any call handling, by reason (invalid, malformed, max_calls, draining) and status.",
		}, []string{"reason", "code"}),
		sipDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_sip_dropped_total",
			Help: "SIP messages dropped without a reply, by reason (rate, scanner, malformed).",
		}, []string{"reason"}),
	}
	for _, s := range []string{stageInviteToRoute, stageRouteToAnswer, stageInviteTo200, stageAnswerToRTP, stageAgentConnect, stageAgentFirstAudio} {
		m.stage.WithLabelValues(s) // every stage is listed from the start, at 0
	}
	for _, r := range []string{"rate", "scanner", "malformed"} {
		m.sipDropped.WithLabelValues(r)
	}
	reg.MustRegister(m.callsTotal, m.callsActive, m.routeActive, m.callDuration, m.stage,
		m.sipRequests, m.sipResponses, m.sipRejected, m.sipDropped, &rtpCollector{m},
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "switchboard_rtp_ports_in_use",
			Help: "RTP ports (even ports; RTCP takes the next) held by calls.",
		}, func() float64 {
			if p := m.ports.Load(); p != nil {
				return float64(p.InUse())
			}
			return 0
		}))
	reg.MustRegister(&clockCollector{frames})
	m.quality = newQualityMetrics(reg)
	m.dtmfReceived = newDTMFMetric(reg)
	m.trunkUp = newTrunkMetric(reg)
	return m
}

// SIPMessage counts one SIP message: a request (code 0) or a response to
// method. It is the sip server's Config.OnMessage.
func (m *Metrics) SIPMessage(direction, method string, code int) {
	if code == 0 {
		m.sipRequests.WithLabelValues(direction, method).Inc()
		return
	}
	m.sipResponses.WithLabelValues(direction, method, statusText(code)).Inc()
}

// SIPRefused counts a request the sip server refused before any call
// handling: answered with code, or dropped when code is 0. It is the sip
// server's Config.OnRefused.
func (m *Metrics) SIPRefused(reason string, code int) {
	if code == 0 {
		m.sipDropped.WithLabelValues(reason).Inc()
		return
	}
	m.sipRejected.WithLabelValues(reason, statusText(code)).Inc()
}

// statusCodes are SIP status codes as label values, made once: a flood must not allocate per message.
var statusCodes = func() (s [700]string) {
	for i := range s {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}

// rtpTotals are the RTP counts of calls that have ended.
type rtpTotals struct {
	in, out, lost, late, concealedMs atomic.Uint64
}

func (t *rtpTotals) add(st media.Stats) {
	t.in.Add(st.PacketsIn)
	t.out.Add(st.PacketsOut)
	t.lost.Add(st.Lost)
	t.late.Add(st.Late)
	t.concealedMs.Add(st.ConcealedMs)
}

var (
	rtpPacketsDesc = prometheus.NewDesc("switchboard_rtp_packets_total",
		"RTP packets received (in) and sent (out) by calls, the ones in progress included.", []string{"direction"}, nil)
	rtpLostDesc = prometheus.NewDesc("switchboard_rtp_lost_packets_total",
		"Callers' RTP packets never received by their playout time (lost), or received after it (late).", []string{"kind"}, nil)
	rtpConcealedDesc = prometheus.NewDesc("switchboard_rtp_concealed_seconds_total",
		"Caller audio synthesised by loss concealment.", nil, nil)
)

// rtpCollector sums the RTP counters of ended calls and of the calls up now,
// so a long call shows up while it runs rather than when it ends.
type rtpCollector struct{ m *Metrics }

func (c *rtpCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- rtpPacketsDesc
	ch <- rtpLostDesc
	ch <- rtpConcealedDesc
}

func (c *rtpCollector) Collect(ch chan<- prometheus.Metric) {
	t := &c.m.rtp
	in, out, lost, late, conc := t.in.Load(), t.out.Load(), t.lost.Load(), t.late.Load(), t.concealedMs.Load()
	if g := c.m.live.Load(); g != nil {
		for _, st := range g.liveStats() {
			in, out, lost, late, conc = in+st.PacketsIn, out+st.PacketsOut, lost+st.Lost, late+st.Late, conc+st.ConcealedMs
		}
	}
	ch <- prometheus.MustNewConstMetric(rtpPacketsDesc, prometheus.CounterValue, float64(in), "in")
	ch <- prometheus.MustNewConstMetric(rtpPacketsDesc, prometheus.CounterValue, float64(out), "out")
	ch <- prometheus.MustNewConstMetric(rtpLostDesc, prometheus.CounterValue, float64(lost), "lost")
	ch <- prometheus.MustNewConstMetric(rtpLostDesc, prometheus.CounterValue, float64(late), "late")
	ch <- prometheus.MustNewConstMetric(rtpConcealedDesc, prometheus.CounterValue, float64(conc)/1000)
}

// clockCollector reports the frame clock's health: frames taken late (the
// gateway is short of CPU) and schedules moved to follow a caller's packets.
type clockCollector struct{ c *frameClock }

var (
	clockLateDesc = prometheus.NewDesc("switchboard_frame_clock_late_frames_total",
		"Call frames handled later than due, by more than the given lateness.", []string{"over"}, nil)
	clockMovesDesc = prometheus.NewDesc("switchboard_frame_clock_moves_total",
		"Times a call's 20 ms schedule moved to follow the arrival of the caller's packets.", nil, nil)
)

func (cc *clockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- clockLateDesc
	ch <- clockMovesDesc
}

func (cc *clockCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(clockLateDesc, prometheus.CounterValue, float64(cc.c.late2.Load()), "2ms")
	ch <- prometheus.MustNewConstMetric(clockLateDesc, prometheus.CounterValue, float64(cc.c.late5.Load()), "5ms")
	ch <- prometheus.MustNewConstMetric(clockLateDesc, prometheus.CounterValue, float64(cc.c.late20.Load()), "20ms")
	ch <- prometheus.MustNewConstMetric(clockMovesDesc, prometheus.CounterValue, float64(cc.c.moves.Load()))
}
