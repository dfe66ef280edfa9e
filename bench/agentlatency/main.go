// Command agentlatency measures the latency the running gateway adds between
// a caller's RTP and a Twilio Media Streams bot, from the wire: it runs the
// real switchboard binary on 127.0.0.1 with a route to a Twilio-protocol bot
// served by this process, places a call (sip.Dial), and sends µ-law RTP from
// its own UDP socket, each packet carrying its number in the samples. The bot
// timestamps the media message that carries each number; in the other
// direction the bot sends numbered media messages and this process
// timestamps the RTP that carries them. Results are per-packet p50/p99, with
// the jitter-buffer depth and the wait for the 20 ms playout tick taken out.
//
//	go run ./bench/agentlatency [-packets 2500] [-bin path/to/switchboard]
package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/rtp"
	"github.com/zaf/g711"

	"github.com/switchboard-voip/switchboard/sip"
)

const (
	tick       = 20 * time.Millisecond // the gateway's playout clock and our packet interval
	frameBytes = 160                   // 20 ms of 8 kHz µ-law
	warmup     = 50                    // forward packets before the measured ones (1 s)
	pauseEvery = 10                    // every 10th interval each way carries no numbered frame
)

// pause says whether forward packet i is silence: like the pauses of speech,
// where the jitter buffer may lower its delay after a stall raised it (it
// never cuts audio to do so).
func pause(i int) bool { return i%pauseEvery == pauseEvery-1 }

func main() {
	packets := flag.Int("packets", 2500, "packets each way (20 ms each; every 10th forward one is a pause, not measured)")
	bin := flag.String("bin", "", "switchboard binary (default: go build ./cmd/switchboard into a temp dir)")
	keep := flag.Bool("v", false, "print the gateway's log at the end")
	flag.Parse()
	if err := run(*packets, *bin, *keep); err != nil {
		fmt.Fprintln(os.Stderr, "agentlatency:", err)
		os.Exit(1)
	}
}

// ---- the numbered payload ------------------------------------------------

// Each packet's 160 µ-law bytes are loud (no quiet frame for the jitter buffer
// to drop or stretch) and carry a signature and a 32-bit number in codes that
// survive the gateway's µ-law → PCM → µ-law round trip unchanged.
var signature = [4]byte{0x8a, 0x05, 0x8c, 0x03}

func init() {
	for b := 0x00; b <= 0xff; b++ {
		if (b&0x70 == 0) && g711.EncodeUlawFrame(g711.DecodeUlawFrame(byte(b))) != byte(b) {
			panic(fmt.Sprintf("µ-law code %#x does not survive a round trip", b))
		}
	}
}

func fillPayload(p []byte, n uint32) {
	for i := range p {
		p[i] = 0x80 // +full scale, alternating with -full scale: a loud 4 kHz square
		if i&1 == 1 {
			p[i] = 0x00
		}
	}
	copy(p, signature[:])
	for i := range 8 {
		v := byte(n >> (28 - 4*i) & 0xf)
		if i&1 == 0 {
			p[4+i] = 0x80 | v // positive, loud
		} else {
			p[4+i] = v // negative, loud
		}
	}
}

func readPayload(p []byte) (uint32, bool) {
	if len(p) < 12 || [4]byte(p[:4]) != signature {
		return 0, false
	}
	var n uint32
	for i := range 8 {
		n = n<<4 | uint32(p[4+i]&0xf)
	}
	return n, true
}

// ---- the run ---------------------------------------------------------------

// stamps are arrival or send times indexed by packet number, with the number
// of the gateway frame (its 20 ms clock's count) that carried the packet;
// zero time = never seen.
type stamps struct {
	mu    sync.Mutex
	t     []time.Time
	frame []int64
}

func newStamps(n int) *stamps { return &stamps{t: make([]time.Time, n), frame: make([]int64, n)} }

func (s *stamps) set(i uint32, t time.Time, frame int64) {
	s.mu.Lock()
	if int(i) < len(s.t) && s.t[i].IsZero() {
		s.t[i], s.frame[i] = t, frame
	}
	s.mu.Unlock()
}

func (s *stamps) get(i int) (time.Time, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t[i], s.frame[i]
}

// frameSeen is one product of a gateway tick: a media message or an RTP packet.
type frameSeen struct {
	frame int64
	at    time.Time
}

type result struct {
	fwdSent, fwdGot *stamps // RTP sent → bot has the media message
	revSent, revGot *stamps // bot sends media → RTP arrives here
	seenMu          sync.Mutex
	seen            []frameSeen
}

func (r *result) frameSeen(frame int64, t time.Time) {
	r.seenMu.Lock()
	r.seen = append(r.seen, frameSeen{frame, t})
	r.seenMu.Unlock()
}

func (r *result) snapshot() []frameSeen {
	r.seenMu.Lock()
	defer r.seenMu.Unlock()
	return slices.Clone(r.seen)
}

func run(packets int, bin string, verbose bool) error {
	total := warmup + packets
	limit := time.Duration(total)*tick + 40*time.Second
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	dir, err := os.MkdirTemp("", "agentlatency-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if bin == "" {
		bin = filepath.Join(dir, "switchboard")
		fmt.Fprintln(os.Stderr, "building switchboard…")
		if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/switchboard-voip/switchboard/cmd/switchboard").CombinedOutput(); err != nil {
			return fmt.Errorf("go build: %v\n%s", err, out)
		}
	}

	res := &result{fwdSent: newStamps(total), fwdGot: newStamps(total), revSent: newStamps(packets), revGot: newStamps(packets)}
	botURL, botDone, err := startBot(ctx, res, packets)
	if err != nil {
		return err
	}

	gw, err := startGateway(ctx, dir, bin, botURL)
	if err != nil {
		return err
	}
	defer gw.stop()

	// Our RTP socket, then the call.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer conn.Close()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	call, err := sip.Dial(ctx, sip.DialOptions{Target: "sip:bot@" + gw.sip, From: "bench", LocalRTP: local, Codecs: []string{"PCMU"}, Logger: quiet})
	if err != nil {
		return fmt.Errorf("dial: %w\n%s", err, gw.logs.String())
	}
	remote := net.UDPAddrFromAddrPort(call.Media().Remote)

	recvDone := make(chan struct{})
	go receiveRTP(conn, res, recvDone)
	if err := sendRTP(ctx, conn, remote, res, total); err != nil {
		call.Hangup()
		return err
	}
	select { // the bot's last frames play out
	case <-botDone:
	case <-ctx.Done():
		call.Hangup()
		return fmt.Errorf("bot did not finish its %d frames: %w", packets, ctx.Err())
	}
	time.Sleep(200 * time.Millisecond)
	call.Hangup()
	conn.SetReadDeadline(time.Now())
	<-recvDone

	jbMean := gw.jitterDelay(ctx)
	report(res, packets, jbMean)
	if verbose {
		fmt.Fprint(os.Stderr, gw.logs.String())
	}
	return nil
}

// sendRTP sends total numbered PCMU packets, one per 20 ms, from our socket.
func sendRTP(ctx context.Context, conn *net.UDPConn, to *net.UDPAddr, res *result, total int) error {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32())}}
	pkt.Timestamp = rand.Uint32()
	payload := make([]byte, frameBytes)
	buf := make([]byte, 12+frameBytes)
	start := time.Now()
	for i := range total {
		fillPayload(payload, uint32(i))
		if pause(i) {
			for k := range payload {
				payload[k] = 0xff // µ-law silence: a pause the jitter buffer may shed delay in
			}
		}
		pkt.Payload = payload
		pkt.Marker = i == 0
		n, err := pkt.MarshalTo(buf)
		if err != nil {
			return err
		}
		time.Sleep(time.Until(start.Add(time.Duration(i) * tick)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
		res.fwdSent.set(uint32(i), time.Now(), 0)
		if _, err := conn.WriteToUDP(buf[:n], to); err != nil {
			return err
		}
		pkt.SequenceNumber++
		pkt.Timestamp += frameBytes
	}
	return nil
}

// receiveRTP timestamps every packet from the gateway (one per tick, its
// sequence number counting the gateway's frames from the first) and notes
// the ones that carry the bot's numbers.
func receiveRTP(conn *net.UDPConn, res *result, done chan struct{}) {
	defer close(done)
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	var first bool = true
	var lastSeq uint16
	var frame int64
	for {
		n, err := conn.Read(buf)
		at := time.Now()
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil || pkt.PayloadType != 0 {
			continue
		}
		if first {
			first, lastSeq = false, pkt.SequenceNumber
		}
		frame += int64(int16(pkt.SequenceNumber - lastSeq))
		lastSeq = pkt.SequenceNumber
		res.frameSeen(frame, at)
		if i, ok := readPayload(pkt.Payload); ok {
			res.revGot.set(i, at, frame)
		}
	}
}

// ---- the bot -------------------------------------------------------------

// startBot serves one Twilio Media Streams bot: it timestamps each numbered
// media message, and once the call's clock runs sends its own numbered
// frames, one in each 20 ms tick interval at a random point of it. botDone
// closes when it has sent them all.
func startBot(ctx context.Context, res *result, packets int) (string, chan struct{}, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	done := make(chan struct{})
	var once sync.Once
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		started := make(chan string, 1)
		go func() {
			var sid string
			select {
			case sid = <-started:
			case <-ctx.Done():
				return
			}
			// Learn the gateway's clock from its first second of media, then send.
			for len(res.snapshot()) < 100 {
				if ctx.Err() != nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
			sendFrames(ctx, c, sid, clockStart(res.snapshot()), res, packets)
			once.Do(func() { close(done) })
		}()
		var msg struct {
			Event     string `json:"event"`
			StreamSid string `json:"streamSid"`
			Media     struct {
				Chunk   string `json:"chunk"`
				Payload []byte `json:"payload"`
			} `json:"media"`
		}
		for {
			_, data, err := c.Read(ctx)
			at := time.Now()
			if err != nil {
				return
			}
			msg.Media.Payload = msg.Media.Payload[:0]
			if json.Unmarshal(data, &msg) != nil {
				continue
			}
			switch msg.Event {
			case "start":
				started <- msg.StreamSid
			case "media":
				chunk, err := strconv.ParseInt(msg.Media.Chunk, 10, 64)
				if err != nil {
					continue
				}
				frame := chunk - 1 // Twilio's chunks count from 1
				res.frameSeen(frame, at)
				if i, ok := readPayload(msg.Media.Payload); ok {
					res.fwdGot.set(i, at, frame)
				}
			}
		}
	})}
	go srv.Serve(ln)
	go func() { <-ctx.Done(); srv.Close() }()
	return "ws://" + ln.Addr().String() + "/media", done, nil
}

// sendFrames sends numbered frames: frame j at a uniformly random point of
// one tick interval of the gateway's clock (1–19 ms after a tick), one frame
// per interval and none in every 10th, so each normally finds the playout
// queue empty and its wait for the next tick is spread as for a bot that
// sends whenever it has audio.
func sendFrames(ctx context.Context, c *websocket.Conn, sid string, start time.Time, res *result, packets int) {
	payload := make([]byte, frameBytes)
	k0 := time.Since(start)/tick + 2
	for j := range packets {
		fillPayload(payload, uint32(j))
		msg, _ := json.Marshal(map[string]any{"event": "media", "streamSid": sid,
			"media": map[string]any{"payload": base64.StdEncoding.EncodeToString(payload)}})
		at := start.Add((k0+time.Duration(j+j/(pauseEvery-1)))*tick + time.Millisecond + rand.N(18*time.Millisecond))
		time.Sleep(time.Until(at))
		if ctx.Err() != nil {
			return
		}
		res.revSent.set(uint32(j), time.Now(), 0)
		if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
			return
		}
	}
}

// clockStart estimates when the gateway's 20 ms clock started: frame k
// (k ≥ 1) is due at start + k×20 ms and yields one media message to the bot
// and one RTP packet to us, each numbered, so start is the earliest arrival
// less its frame's offset. Late ticks only make arrivals later, so there is
// no ambiguity of a whole tick; the estimate is late by the fastest path.
func clockStart(seen []frameSeen) time.Time {
	var start time.Time
	for _, f := range seen {
		if f.frame < 1 {
			continue
		}
		if s := f.at.Add(-time.Duration(f.frame) * tick); start.IsZero() || s.Before(start) {
			start = s
		}
	}
	return start
}

// frameTicks says when each frame was due. After a stall of more than ten
// ticks the gateway's clock skips ahead (bridge's maxCatchUp) and frame
// numbers no longer count ticks from the start, so each frame's start is the
// least offset over the next second of frames (a skip only raises offsets,
// and a later, on-time frame shows the new base).
type frameTicks map[int64]time.Time

func newFrameTicks(seen []frameSeen) frameTicks {
	const window = 50
	off := map[int64]time.Duration{}
	var base time.Time
	var last int64
	for _, f := range seen {
		if base.IsZero() {
			base = f.at
		}
		o := f.at.Sub(base) - time.Duration(max(f.frame, 1))*tick
		if v, ok := off[f.frame]; !ok || o < v {
			off[f.frame] = o
		}
		last = max(last, f.frame)
	}
	ticks := frameTicks{}
	for k := range last + 1 {
		if _, ok := off[k]; !ok {
			continue
		}
		lo := off[k]
		for j := k + 1; j <= min(k+window, last); j++ {
			if v, ok := off[j]; ok && v < lo {
				lo = v
			}
		}
		ticks[k] = base.Add(lo + time.Duration(max(k, 1))*tick)
	}
	return ticks
}

// nextTick is the first tick of that clock at or after t.
func nextTick(start, t time.Time) time.Time {
	d := t.Sub(start)
	k := (d + tick - 1) / tick
	return start.Add(max(k, 1) * tick)
}

// ---- the gateway ---------------------------------------------------------

type gatewayProc struct {
	cmd    *exec.Cmd
	sip    string
	http   string
	logs   *lockedBuffer
	exited chan struct{}
}

func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port, nil
		}
	}
	return 0, errors.New("no free port")
}

func startGateway(ctx context.Context, dir, bin, botURL string) (*gatewayProc, error) {
	sipPort, err := freePort()
	if err != nil {
		return nil, err
	}
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	rtpMin := 40000 + 2*rand.IntN(5000)
	plan := fmt.Sprintf("routes:\n  - name: bot\n    match: { to: bot }\n    target: { type: agent, protocol: twilio, url: \"%s\" }\n", botURL)
	cfg := fmt.Sprintf(`sip:
  listen:
    - { transport: udp, addr: 127.0.0.1:%d }
rtp:
  ip: 127.0.0.1
  port_min: %d
  port_max: %d
  timeout: 10s
http:
  listen: 127.0.0.1:%d
dialplan: dialplan.yaml
drain_timeout: 1s
log:
  level: info
`, sipPort, rtpMin, rtpMin+19, httpPort)
	if err := os.WriteFile(filepath.Join(dir, "dialplan.yaml"), []byte(plan), 0o644); err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, err
	}
	g := &gatewayProc{sip: fmt.Sprintf("127.0.0.1:%d", sipPort), http: fmt.Sprintf("127.0.0.1:%d", httpPort),
		logs: &lockedBuffer{}, exited: make(chan struct{})}
	g.cmd = exec.Command(bin, "run", "-c", cfgPath)
	g.cmd.Stdout, g.cmd.Stderr = g.logs, g.logs
	if err := g.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		if resp, err := http.Get("http://" + g.http + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return g, nil
			}
		}
		select {
		case <-g.exited:
			return nil, fmt.Errorf("gateway exited at start:\n%s", g.logs.String())
		case <-ctx.Done():
			g.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			g.stop()
			return nil, fmt.Errorf("gateway not healthy after 15 s:\n%s", g.logs.String())
		}
	}
}

func (g *gatewayProc) stop() {
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(10 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
	}
}

// jitterDelay is the mean playout delay the gateway's jitter buffer reported
// for the call (the switchboard_call_jitter_buffer_delay_seconds histogram's
// sum: one call), once the call has ended.
func (g *gatewayProc) jitterDelay(ctx context.Context) time.Duration {
	for range 50 {
		resp, err := http.Get("http://" + g.http + "/metrics")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			for _, line := range strings.Split(string(body), "\n") {
				if v, ok := strings.CutPrefix(line, "switchboard_call_jitter_buffer_delay_seconds_sum "); ok {
					if f, err := strconv.ParseFloat(v, 64); err == nil && f > 0 {
						return time.Duration(f * float64(time.Second))
					}
				}
			}
		}
		if ctx.Err() != nil {
			return 0
		}
		time.Sleep(100 * time.Millisecond)
	}
	return 0
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// ---- the report ----------------------------------------------------------

type dist []time.Duration

func (d dist) pct(p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func (d dist) row(name string) string {
	return fmt.Sprintf("| %s | %s | %s | %s |", name, us(d.pct(0.5)), us(d.pct(0.99)), us(d.pct(1)))
}

func us(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

func report(res *result, packets int, jbMean time.Duration) {
	ticks := newFrameTicks(res.snapshot())

	// RTP in → bot: total; the part before the tick that read the packet (the
	// jitter buffer's depth, which includes lining up with the tick); and the
	// gateway's own part, from that tick to the bot holding the message.
	var fTotal, fBefore, fAfter dist
	fLost := 0
	for i := warmup; i < warmup+packets; i++ {
		if pause(i) {
			continue
		}
		s, _ := res.fwdSent.get(i)
		r, frame := res.fwdGot.get(i)
		if r.IsZero() {
			fLost++
			continue
		}
		t := ticks[frame]
		fTotal = append(fTotal, r.Sub(s))
		fBefore = append(fBefore, t.Sub(s))
		fAfter = append(fAfter, r.Sub(t))
	}

	// Bot → RTP out: total; the wait for the tick an ideal gateway on the same
	// clock would play the frame on (the first tick after it was sent that the
	// previous frame did not take), or for the late tick that took it sooner;
	// and what the gateway adds beyond that (a tick missed counts 20 ms).
	var rTotal, rWait, rAdded dist
	rLost, later, earlier := 0, 0, 0
	var prev time.Time
	for j := range packets {
		s, _ := res.revSent.get(j)
		r, frame := res.revGot.get(j)
		if s.IsZero() || r.IsZero() {
			rLost++
			continue
		}
		played := ticks[frame]
		t := nextTick(played.Add(-time.Duration(max(frame, 1))*tick), s) // on the clock as it ran then
		if !prev.IsZero() && !t.After(prev) {
			t = prev.Add(tick)
		}
		prev = played
		ref := t
		switch {
		case played.After(t):
			later++
		case played.Before(t):
			earlier++
			ref = played
			if ref.Before(s) {
				ref = s
			}
		}
		rTotal = append(rTotal, r.Sub(s))
		rWait = append(rWait, ref.Sub(s))
		rAdded = append(rAdded, r.Sub(ref))
	}

	fmt.Printf("packets: %d RTP → bot (%d never arrived), %d bot → RTP (%d never arrived)\n",
		len(fTotal), fLost, len(rTotal), rLost)
	fmt.Printf("bot frames played a tick later than an ideal gateway would: %d; taken early by a tick that ran late: %d\n", later, earlier)
	fmt.Printf("gateway jitter buffer: mean playout delay %v (its target's floor: 20 ms, the default min)\n\n", jbMean.Round(10*time.Microsecond))
	fmt.Println("| path | p50 | p99 | max |")
	fmt.Println("|---|---|---|---|")
	fmt.Println(fTotal.row("RTP in → bot has `media`: total"))
	fmt.Println(fBefore.row("… jitter buffer + tick alignment (packet sent → its frame's tick)"))
	fmt.Println(fAfter.row("**… gateway-added: tick → bot has `media`**"))
	fmt.Println(rTotal.row("bot `media` → RTP out: total"))
	fmt.Println(rWait.row("… wait for the playout tick (and a frame queued ahead)"))
	fmt.Println(rAdded.row("**… gateway-added: tick → RTP out**"))
}
