package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// callResult is one call as the caller saw it.
type callResult struct {
	ID          int     `json:"id"`
	Error       string  `json:"error,omitempty"`
	SetupMs     float64 `json:"setup_ms"`
	Sent        uint32  `json:"sent"`
	Received    uint32  `json:"received"`
	Matched     uint32  `json:"matched"` // sent packets whose marker came back
	Lost        uint32  `json:"lost"`    // sent - matched
	Dup         uint32  `json:"dup"`
	Unmarked    uint32  `json:"unmarked"` // returned packets without a marker (silence, concealment)
	SeqGaps     uint32  `json:"seq_gaps"` // missing sequence numbers in the returned stream
	JitterP99   float64 `json:"jitter_p99_ms"`
	JitterMax   float64 `json:"jitter_max_ms"`
	JitterMaxAt uint32  `json:"jitter_max_at_packet"`
	RTTP50      float64 `json:"rtt_p50_ms"`
	RTTP99      float64 `json:"rtt_p99_ms"`
	RTTMax      float64 `json:"rtt_max_ms"`
	GatewayBye  bool    `json:"gateway_bye,omitempty"`
	Missing     []int   `json:"missing,omitempty"` // the first lost packet indices
}

// result is the whole run.
type result struct {
	Route       string  `json:"route"`
	ChunkMs     int     `json:"chunk_ms,omitempty"` // the twilio route's chunk_ms; 0 for the default, 20
	Bot         string  `json:"bot,omitempty"`      // the twilio route's bot: polled or netpoll
	Warmup      int     `json:"warmup_calls"`       // placed and ended before the idle sample
	Calls       int     `json:"calls"`
	Established int     `json:"established"`
	Failed      int     `json:"failed"`
	HoldS       float64 `json:"hold_s"`
	RampRate    float64 `json:"ramp_calls_per_s"`
	LoadAvg     string  `json:"loadavg_at_start"`

	Sent      uint64  `json:"packets_sent"`
	Received  uint64  `json:"packets_received"`
	Matched   uint64  `json:"packets_matched"`
	Lost      uint64  `json:"packets_lost"`
	LossPct   float64 `json:"loss_pct"`
	SeqGaps   uint64  `json:"seq_gaps"`
	Unmarked  uint64  `json:"unmarked"`
	JitterP50 float64 `json:"jitter_p50_ms"`
	JitterP99 float64 `json:"jitter_p99_ms"`
	JitterMax float64 `json:"jitter_max_ms"`
	RTTP50    float64 `json:"rtt_p50_ms"`
	RTTP99    float64 `json:"rtt_p99_ms"`
	RTTMax    float64 `json:"rtt_max_ms"`
	SetupP50  float64 `json:"setup_p50_ms"`
	SetupP99  float64 `json:"setup_p99_ms"`

	CPUSeconds        float64        `json:"gateway_cpu_s"`            // over the hold
	CPUPerCallPct     float64        `json:"gateway_cpu_pct_per_call"` // % of one core per call
	CPUTotalPct       float64        `json:"gateway_cpu_pct"`          // % of one core, all calls
	RSSBaselineKB     int64          `json:"gateway_rss_idle_kb"`
	RSSLoadedKB       int64          `json:"gateway_rss_loaded_kb"`
	RSSPerCallKB      float64        `json:"gateway_rss_per_call_kb"`
	AnonPerCallKB     float64        `json:"gateway_rss_anon_per_call_kb"` // of it, anonymous memory (heap, stacks); the rest is code pages the calls first touched
	GoroutinesIdle    int            `json:"gateway_goroutines_idle"`
	GoroutinesLoaded  int            `json:"gateway_goroutines_loaded"`
	GoroutinesPerCall float64        `json:"gateway_goroutines_per_call"`
	Foreign           uint64         `json:"packets_foreign"` // RTP from no call's answered address
	ForeignFirst      string         `json:"packets_foreign_first,omitempty"`
	JBDelayMean       float64        `json:"gateway_jb_delay_mean_ms"` // mean playout delay the gateway's jitter buffers added (its call-end histogram), -1 unknown
	ClockLate2        float64        `json:"gateway_frames_late_2ms"`  // frames the gateway's clock handled > 2 ms late, over the run
	ClockLate5        float64        `json:"gateway_frames_late_5ms"`  // > 5 ms
	ClockMoves        float64        `json:"gateway_clock_moves"`      // schedules moved to follow the callers' packets
	GatewayLost       float64        `json:"gateway_rtp_lost"`         // callers' packets its jitter buffers never received by their playout time, -1 unknown
	GatewayLate       float64        `json:"gateway_rtp_late"`         // received after it, -1 unknown
	ToolDrops         int64          `json:"tool_rtp_drops"`           // datagrams the kernel dropped at this tool's full RTP socket during the hold (/proc/net/udp), -1 unknown
	SendLateP99       float64        `json:"sender_late_p99_ms"`       // this tool's own send jitter
	SendLateMax       float64        `json:"sender_late_max_ms"`
	ToolCPUPct        float64        `json:"load_tool_cpu_pct"` // this process (and its bot), % of one core over the hold
	BotMedia          int64          `json:"bot_media_messages,omitempty"`
	Errors            map[string]int `json:"errors,omitempty"`
	PerCall           []callResult   `json:"per_call"`
}

func (r *result) summary() string {
	route := r.Route
	if r.Bot != "" {
		route += " bot=" + r.Bot
	}
	if r.ChunkMs != 0 {
		route += fmt.Sprintf(" chunk_ms=%d", r.ChunkMs)
	}
	return fmt.Sprintf("route=%s calls=%d/%d hold=%.0fs sent=%d lost=%d (%.4f%%) seqgaps=%d jitter p99=%.2fms max=%.1fms rtt p50=%.1fms p99=%.1fms jb=%.1fms setup p99=%.1fms cpu=%.4f%%/call (%.1f%% total) rss=%.1fKB/call (anon %.1f) goroutines=%.2f/call late>2ms=%.0f tool=%.0f%% send-late p99=%.1fms max=%.1fms gw_lost=%.0f gw_late=%.0f tool_drops=%d load=%s",
		route, r.Established, r.Calls, r.HoldS, r.Sent, r.Lost, r.LossPct, r.SeqGaps, r.JitterP99, r.JitterMax,
		r.RTTP50, r.RTTP99, r.JBDelayMean, r.SetupP99, r.CPUPerCallPct, r.CPUTotalPct, r.RSSPerCallKB, r.AnonPerCallKB, r.GoroutinesPerCall, r.ClockLate2, r.ToolCPUPct, r.SendLateP99, r.SendLateMax, r.GatewayLost, r.GatewayLate, r.ToolDrops, r.LoadAvg) +
		r.foreignNote()
}

// foreignNote flags RTP the tool could not attribute to a call (none in a sound run).
func (r *result) foreignNote() string {
	if r.Foreign == 0 {
		return ""
	}
	return fmt.Sprintf(" foreign=%d (first: %s)", r.Foreign, r.ForeignFirst)
}

type liveCall struct {
	id    int
	sip   *sipCall
	media *mediaCall
	res   callResult
	bye   chan struct{}
	once  sync.Once
}

func run(ctx context.Context, o options) (*result, error) {
	res := &result{Route: o.route, ChunkMs: o.chunkMs, Calls: o.calls, RampRate: o.rate, Errors: map[string]int{}}
	if la, err := os.ReadFile("/proc/loadavg"); err == nil {
		res.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
	}
	var bot echoBot
	botURL := "ws://127.0.0.1:1/unused"
	if o.route == "twilio" {
		var err error
		switch o.bot {
		case "polled":
			bot, err = startPolledBot()
		case "netpoll":
			bot, err = startBot()
		default:
			err = fmt.Errorf("-bot %q: polled or netpoll", o.bot)
		}
		if err != nil {
			return nil, err
		}
		defer bot.close()
		botURL = bot.address()
		res.Bot = o.bot
	}
	var g *gateway
	if o.attach != "" {
		g = &gateway{sip: o.attach, http: o.metrics, token: o.token, pid: o.pid}
		if o.route == "twilio" {
			log.Printf("attached: the gateway's twilio route must point at %s", botURL)
		}
	} else {
		var err error
		if g, err = startGateway(ctx, o, botURL); err != nil {
			return nil, err
		}
		defer g.stop(!o.keep)
		if o.keep {
			log.Printf("gateway directory: %s", g.dir)
		}
	}
	u, err := newUAC(g.sip)
	if err != nil {
		return nil, err
	}
	defer u.close()
	sock, err := newRTPSocket()
	if err != nil {
		return nil, err
	}
	sock.start()
	snd := &sender{sock: sock}
	stopSend := make(chan struct{})
	sendDone := make(chan struct{})
	go func() { snd.run(stopSend); close(sendDone) }()
	stopMedia := sync.OnceFunc(func() {
		close(stopSend)
		<-sendDone
		sock.close()
	})
	defer stopMedia()

	if err := warmUp(ctx, o, u, sock, snd); err != nil {
		return nil, err
	}
	res.Warmup = o.warmup
	time.Sleep(time.Second) // settle before the idle sample
	idle, err := g.sample()
	if err != nil {
		return nil, err
	}

	ramp := time.Duration(float64(o.calls) / o.rate * float64(time.Second))
	total := ramp + o.duration + 2*time.Second
	maxPackets := int(total/ptime) + 100
	base := time.Now()

	calls := make([]*liveCall, o.calls)
	var wg sync.WaitGroup
	var mu sync.Mutex
	interval := time.Duration(float64(time.Second) / o.rate)
	for i := range calls {
		if ctx.Err() != nil {
			break
		}
		time.Sleep(time.Until(base.Add(time.Duration(i) * interval)))
		lc := &liveCall{id: i, bye: make(chan struct{}), res: callResult{ID: i}}
		calls[i] = lc
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := lc.setup(ctx, u, o.route, maxPackets, sock, snd); err != nil {
				lc.res.Error = err.Error()
				mu.Lock()
				res.Errors[shortErr(err)]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, lc := range calls {
		if lc != nil && lc.sip != nil {
			res.Established++
		}
	}
	res.Failed = o.calls - res.Established
	log.Printf("%d of %d calls up after %s; holding %s", res.Established, o.calls, time.Since(base).Round(time.Millisecond), o.duration)

	// The hold: all calls up; CPU and memory over exactly this window.
	time.Sleep(500 * time.Millisecond)
	t0, _ := g.sample()
	self0 := selfCPU()
	drops0, drops0ok := udpDrops(sock.port)
	if o.selfProf != "" {
		if f, err := os.Create(o.selfProf); err == nil {
			if pprof.StartCPUProfile(f) == nil {
				defer f.Close()
			} else {
				f.Close()
			}
		}
	}
	profErr := make(chan error, 1)
	if o.profile != "" {
		go func() { profErr <- g.cpuProfile(int(o.duration.Seconds()), o.profile) }()
	}
	select {
	case <-time.After(o.duration):
	case <-ctx.Done():
	}
	t1, _ := g.sample()
	self1 := selfCPU()
	res.ToolDrops = -1
	if drops1, ok := udpDrops(sock.port); ok && drops0ok {
		res.ToolDrops = int64(drops1 - drops0)
	}
	pprof.StopCPUProfile()
	if o.profile != "" {
		if err := <-profErr; err != nil {
			log.Printf("cpu profile: %v", err)
		}
	}

	// Stop sending and measuring, let the echo drain, then hang up at the ramp rate.
	for _, lc := range calls {
		if lc != nil && lc.media != nil {
			lc.media.stop.Store(true)
		}
	}
	time.Sleep(500 * time.Millisecond)
	for _, lc := range calls {
		if lc != nil && lc.media != nil {
			lc.media.quiet.Store(true)
		}
	}
	var byeWG sync.WaitGroup
	for _, lc := range calls {
		if lc == nil || lc.sip == nil {
			continue
		}
		time.Sleep(interval)
		byeWG.Add(1)
		go func() {
			defer byeWG.Done()
			lc.finish(ctx)
		}()
	}
	byeWG.Wait()
	stopMedia() // the calls' receive figures are final once the reader has stopped
	gatewayFigures(g, res)
	if sock.sendErr > 0 {
		log.Printf("%d RTP packets could not be sent", sock.sendErr)
	}

	// Figures.
	var jit, rtt hist
	var setups []float64
	for _, lc := range calls {
		if lc == nil {
			continue
		}
		r := &lc.res
		if lc.sip != nil {
			setups = append(setups, r.SetupMs)
		}
		if m := lc.media; m != nil {
			r.Sent, r.Received, r.Matched, r.Dup, r.Unmarked, r.SeqGaps = m.sent.Load(), m.received, m.matched, m.dup, m.unmarked, m.seqGaps
			r.Lost = r.Sent - r.Matched
			for k := range int(r.Sent) {
				if m.seen[k/64]&(1<<(k%64)) == 0 && len(r.Missing) < 10 {
					r.Missing = append(r.Missing, k)
				}
			}
			r.JitterP99, r.JitterMax = m.jitter.quantile(0.99), ms(m.jitter.max)
			r.JitterMaxAt = m.jitterMaxAt
			r.RTTP50, r.RTTP99, r.RTTMax = m.rtt.quantile(0.5), m.rtt.quantile(0.99), ms(m.rtt.max)
			jit.merge(&m.jitter)
			rtt.merge(&m.rtt)
			res.Sent += uint64(r.Sent)
			res.Received += uint64(r.Received)
			res.Matched += uint64(r.Matched)
			res.Lost += uint64(r.Lost)
			res.SeqGaps += uint64(r.SeqGaps)
			res.Unmarked += uint64(r.Unmarked)
		}
		res.PerCall = append(res.PerCall, *r)
	}
	if res.Sent > 0 {
		res.LossPct = 100 * float64(res.Lost) / float64(res.Sent)
	}
	res.JitterP50, res.JitterP99, res.JitterMax = jit.quantile(0.5), jit.quantile(0.99), ms(jit.max)
	res.RTTP50, res.RTTP99, res.RTTMax = rtt.quantile(0.5), rtt.quantile(0.99), ms(rtt.max)
	sort.Float64s(setups)
	res.SetupP50, res.SetupP99 = pct(setups, 0.5), pct(setups, 0.99)
	hold := t1.at.Sub(t0.at).Seconds()
	res.HoldS = hold
	res.CPUSeconds = (t1.cpu - t0.cpu).Seconds()
	res.RSSBaselineKB, res.RSSLoadedKB = idle.rssKB, t1.rssKB
	res.GoroutinesIdle, res.GoroutinesLoaded = idle.gorout, t1.gorout
	if n := float64(res.Established); n > 0 && hold > 0 {
		res.CPUTotalPct = 100 * res.CPUSeconds / hold
		res.CPUPerCallPct = res.CPUTotalPct / n
		res.RSSPerCallKB = float64(t1.rssKB-idle.rssKB) / n
		res.AnonPerCallKB = float64(t1.anonKB-idle.anonKB) / n
		res.GoroutinesPerCall = float64(t1.gorout-idle.gorout) / n
	}
	snd.mu.Lock()
	res.SendLateP99, res.SendLateMax = snd.late.quantile(0.99), ms(snd.late.max)
	snd.mu.Unlock()
	if hold > 0 {
		res.ToolCPUPct = 100 * (self1 - self0).Seconds() / hold
	}
	if bot != nil {
		res.BotMedia = bot.counters().media.Load()
	}
	res.Foreign, res.ForeignFirst = sock.foreign, sock.first
	return res, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func pct(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// setup places the call, offering the shared RTP socket, and starts its media.
// warmUp places o.warmup calls, one at a time, holds them a second with
// media and ends them, before the idle sample: the code pages and runtime
// structures that the first call through the gateway brings in are a fixed
// cost, not memory per call. They are not part of any figure.
func warmUp(ctx context.Context, o options, u *uac, sock *rtpSocket, snd *sender) error {
	if o.warmup <= 0 {
		return nil
	}
	calls := make([]*liveCall, 0, o.warmup)
	for i := range o.warmup {
		lc := &liveCall{id: -1 - i, bye: make(chan struct{})}
		if err := lc.setup(ctx, u, o.route, warmUpPackets, sock, snd); err != nil {
			return fmt.Errorf("warm-up call: %w", err)
		}
		calls = append(calls, lc)
	}
	time.Sleep(time.Second)
	for _, lc := range calls {
		lc.finish(ctx)
	}
	return nil
}

// warmUpPackets bounds a warm-up call's media: its second and then some.
const warmUpPackets = 200

func (lc *liveCall) setup(ctx context.Context, u *uac, route string, maxPackets int, sock *rtpSocket, snd *sender) error {
	c, err := u.invite(ctx, route, sock.port, func() { lc.gatewayBye() })
	if err != nil {
		return err
	}
	lc.res.SetupMs = float64(c.setup.Microseconds()) / 1000
	lc.sip = c
	lc.media = newMediaCall(c.remoteRTP, maxPackets)
	sock.add(c.remoteRTP, lc.media)
	snd.add(lc.media)
	return nil
}

func (lc *liveCall) gatewayBye() {
	lc.once.Do(func() { lc.res.GatewayBye = true; close(lc.bye) })
}

// finish sends our BYE (unless the gateway hung up first) and stops the call's media.
func (lc *liveCall) finish(ctx context.Context) {
	lc.media.stop.Store(true)
	lc.media.quiet.Store(true)
	select {
	case <-lc.bye:
	default:
		bctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := lc.sip.bye(bctx); err != nil && !errors.Is(err, context.Canceled) {
			lc.res.Error = "bye: " + err.Error()
		}
		cancel()
	}
}

// gatewayFigures adds what the gateway's own metrics say once the calls have
// ended: the mean delay its jitter buffers added (the target the round trip
// is held to) and its frame clock's lateness.
func gatewayFigures(g *gateway, res *result) {
	res.JBDelayMean = -1
	var m map[string]float64
	for range 20 { // the calls' last records land just after their BYEs
		m = g.metrics()
		if m["switchboard_call_jitter_buffer_delay_seconds_count"] >= float64(res.Established) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := m["switchboard_call_jitter_buffer_delay_seconds_count"]; n > 0 {
		res.JBDelayMean = 1000 * m["switchboard_call_jitter_buffer_delay_seconds_sum"] / n
	}
	res.ClockLate2 = m[`switchboard_frame_clock_late_frames_total{over="2ms"}`]
	res.ClockLate5 = m[`switchboard_frame_clock_late_frames_total{over="5ms"}`]
	res.ClockMoves = m["switchboard_frame_clock_moves_total"]
	res.GatewayLost, res.GatewayLate = -1, -1
	if v, ok := m[`switchboard_rtp_lost_packets_total{kind="lost"}`]; ok {
		res.GatewayLost = v
	}
	if v, ok := m[`switchboard_rtp_lost_packets_total{kind="late"}`]; ok {
		res.GatewayLate = v
	}
}

// udpDrops reads the kernel's count of datagrams dropped at the full receive
// buffer of the IPv4 UDP socket on port: a marker the tool lost there was
// lost outside the gateway.
func udpDrops(port int) (uint64, bool) {
	b, err := os.ReadFile("/proc/net/udp")
	if err != nil {
		return 0, false
	}
	return procUDPDrops(string(b), port)
}

// procUDPDrops finds the drops column (the last) of the socket bound to port
// in /proc/net/udp's layout; local addresses are hex, "0100007F:4E20".
func procUDPDrops(table string, port int) (uint64, bool) {
	want := fmt.Sprintf(":%04X", port)
	for line := range strings.Lines(table) {
		f := strings.Fields(line)
		if len(f) < 13 || !strings.HasSuffix(f[1], want) {
			continue
		}
		v, err := strconv.ParseUint(f[len(f)-1], 10, 64)
		return v, err == nil
	}
	return 0, false
}
