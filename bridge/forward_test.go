package bridge

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
	"github.com/switchboard-voip/switchboard/sip"
)

func TestLegFailStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{&sip.StatusError{Code: 486, Reason: "Busy Here"}, 486},
		{&sip.StatusError{Code: 404, Reason: "Not Found"}, 404},
		{&sip.StatusError{Code: 603, Reason: "Decline"}, 603},
		{&sip.StatusError{Code: 407, Reason: "Proxy Authentication Required"}, 503},
		{&sip.StatusError{Code: 487, Reason: "Request Terminated"}, 480},
		{&sip.StatusError{Code: 302, Reason: "Moved"}, 480},
		{errForwardNoAnswer, 480},
		{errors.New("sip: dial: transaction timeout"), 408},
	} {
		if got, _ := legFailStatus(c.err); got != c.want {
			t.Errorf("legFailStatus(%v) = %d, want %d", c.err, got, c.want)
		}
	}
}

// farEnd is a real SIP server standing for the forward's destination: by the
// called user it rejects busy, rings (ring), or answers and echoes (echo),
// hanging up after 400 ms for hangup.
type farEnd struct {
	srv    *sip.Server
	ports  *media.PortPool
	mu     sync.Mutex
	ended  map[string]string // user → who ended the call
	endedC chan string
}

func startFarEnd(t *testing.T, ports *media.PortPool, trunks ...sip.OutboundTrunk) *farEnd {
	t.Helper()
	f := &farEnd{ports: ports, ended: map[string]string{}, endedC: make(chan string, 8)}
	srv, err := sip.NewServer(sip.Config{
		Listen: []sip.Listen{{Transport: "udp", Addr: "127.0.0.1:0"}},
		Codecs: []string{"PCMU", "PCMA"}, Logger: quietLog(), Outbound: trunks,
	}, f.handle)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	f.srv = srv
	waitAddr(t, srv)
	return f
}

func waitAddr(t *testing.T, s *sip.Server) {
	for i := 0; i < 200 && strings.HasSuffix(s.Addr("udp"), ":0"); i++ {
		time.Sleep(5 * time.Millisecond)
	}
	if s.Addr("udp") == "" || strings.HasSuffix(s.Addr("udp"), ":0") {
		t.Fatal("far end did not bind")
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (f *farEnd) handle(c *sip.InboundCall) {
	user := strings.TrimPrefix(c.To(), "+")
	switch {
	case strings.HasSuffix(user, "busy"):
		_ = c.Reject(486, "Busy Here")
		return
	case strings.HasSuffix(user, "ring"):
		_ = c.Ringing()
		<-c.Context().Done()
		f.end(user, "cancel")
		return
	}
	m := c.Media()
	st, err := f.ports.Open(media.StreamConfig{Codec: mediaCodec(m.Codec), Remote: m.Remote, Logger: quietLog()})
	if err != nil {
		_ = c.Reject(503, "")
		return
	}
	defer st.Close()
	_ = c.Ringing()
	if err := c.Answer(st.LocalAddr()); err != nil {
		return
	}
	frame := make([]int16, pcm.FrameSamples(st.Rate()))
	tick := time.NewTicker(pcm.FrameDuration)
	defer tick.Stop()
	var bye <-chan time.Time
	if user == "hangup" {
		bye = time.After(400 * time.Millisecond)
	}
	for {
		select {
		case <-c.Context().Done():
			f.end(user, "caller")
			return
		case <-bye:
			_ = c.Hangup("done")
			f.end(user, "far end")
			return
		case <-tick.C:
			st.ReadFrame(frame)
			_ = st.WriteFrame(frame, false)
		}
	}
}

func (f *farEnd) end(user, by string) {
	f.mu.Lock()
	f.ended[user] = by
	f.mu.Unlock()
	f.endedC <- user + " " + by
}

// forwardControls collects what the leg plays to the caller and its hang-up.
type forwardControls struct {
	agent.Controls
	mu     sync.Mutex
	played []int16
	hangup chan string
}

func (c *forwardControls) Play(s []int16, _ int) {
	c.mu.Lock()
	c.played = append(c.played, s...)
	c.mu.Unlock()
}
func (c *forwardControls) Hangup(r string) { c.hangup <- r }

func testPool(t *testing.T, lo int) *media.PortPool {
	p, err := media.NewPortPool(netip.MustParseAddr("127.0.0.1"), lo, lo+40)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A forward to a SIP URI answers once the far end does and carries audio both
// ways: a 1 kHz tone sent into the leg comes back from the far end's echo.
func TestForwardBridgesEcho(t *testing.T) {
	ports := testPool(t, 46400)
	far := startFarEnd(t, ports)
	g := &Gateway{ports: ports, mediaTimeout: 5 * time.Second, log: quietLog()}
	f := &forward{target: dialplan.Target{Type: dialplan.TypeTransfer, To: "sip:echo@" + far.srv.Addr("udp")}, g: g}
	ctl := &forwardControls{hangup: make(chan string, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := f.Start(ctx, agent.Call{ID: "c1", From: "+15550100", To: "fwd", Logger: quietLog()}, ctl)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tone := pcm.Tone(1000, 8000, 8000, 0.3)
	tick := time.NewTicker(pcm.FrameDuration)
	for i := 0; i+160 <= len(tone); i += 160 {
		<-tick.C
		s.Audio(tone[i:i+160], 8000)
	}
	tick.Stop()
	ctl.mu.Lock()
	heard := append([]int16(nil), ctl.played...)
	ctl.mu.Unlock()
	tail := heard[len(heard)/2:]
	if f := pcm.DominantFrequency(tail, 8000); f < 950 || f > 1050 || rms(tail) < 1000 {
		t.Errorf("heard back from the leg: dominant %.0f Hz, rms %.0f over %d samples; want the 1 kHz tone", f, rms(tail), len(tail))
	}
	s.Close()
	select {
	case e := <-far.endedC:
		if e != "echo caller" {
			t.Errorf("far end: %q, want the leg ended by our BYE", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close sent no BYE to the leg")
	}
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	if len(s) == 0 {
		return 0
	}
	return math.Sqrt(sum / float64(len(s)))
}

// The far end's BYE hangs up the caller.
func TestForwardFarEndHangsUp(t *testing.T) {
	ports := testPool(t, 46450)
	far := startFarEnd(t, ports)
	g := &Gateway{ports: ports, mediaTimeout: 5 * time.Second, log: quietLog()}
	f := &forward{target: dialplan.Target{Type: dialplan.TypeTransfer, To: "sip:hangup@" + far.srv.Addr("udp")}, g: g}
	ctl := &forwardControls{hangup: make(chan string, 1)}
	s, err := f.Start(context.Background(), agent.Call{ID: "c2", From: "a", Logger: quietLog()}, ctl)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer s.Close()
	select {
	case r := <-ctl.hangup:
		if r != "forward target hung up" {
			t.Errorf("hang-up reason %q", r)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the far end's BYE did not hang up the caller")
	}
}

// Failures before answer give the caller the leg's status, unless a fallback
// takes the call or on_failure says otherwise; trunk refusals are 503.
func TestForwardFailures(t *testing.T) {
	ports := testPool(t, 46500)
	far := startFarEnd(t, ports)
	farPort := netip.MustParseAddrPort(far.srv.Addr("udp")).Port()
	carrier := startFarEnd(t, ports, sip.OutboundTrunk{Name: "carrier", Host: "127.0.0.1", Port: int(farPort),
		MaxCalls: 1, AllowedDestinations: []string{"+4930*"}})
	g := &Gateway{ports: ports, mediaTimeout: 5 * time.Second, log: quietLog()}
	g.SetTrunks(carrier.srv)
	uri := func(user string) string { return "sip:" + user + "@" + far.srv.Addr("udp") }
	start := func(c *chain) (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s, err := c.Start(ctx, agent.Call{ID: "x", From: "a", Logger: quietLog()}, &forwardControls{hangup: make(chan string, 1)})
		if err == nil {
			s.Close()
			return 0, nil
		}
		st, _ := failStatus(err)
		return st, err
	}
	fwd := func(to, trunk string) step {
		return step{target: dialplan.Target{Type: dialplan.TypeTransfer, To: to, Trunk: trunk},
			agent: &forward{target: dialplan.Target{Type: dialplan.TypeTransfer, To: to, Trunk: trunk}, g: g}}
	}

	if st, err := start(&chain{failStatus: 503, steps: []step{fwd(uri("busy"), "")}}); st != 486 {
		t.Errorf("busy destination: status %d (%v), want 486", st, err)
	}
	if st, _ := start(&chain{failStatus: 480, steps: []step{fwd(uri("busy"), "")}}); st != 480 {
		t.Errorf("busy destination with on_failure 480: status %d, want 480", st)
	}
	fb := &fakeAgent{}
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd(uri("busy"), ""), {agent: fb}}}); err != nil || fb.started != 1 {
		t.Errorf("busy destination with a fallback: status %d err %v, fallback started %d times", st, err, fb.started)
	}
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd("+4930busy", "carrier")}}); st != 486 {
		t.Errorf("busy number through the trunk: status %d (%v), want 486", st, err)
	}
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd("+15550100", "carrier")}}); st != 503 || !errors.Is(err, sip.ErrDestinationNotAllowed) {
		t.Errorf("number the trunk's guard refuses: status %d (%v), want 503", st, err)
	}
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd("+4930123", "nosuch")}}); st != 503 || !errors.Is(err, sip.ErrUnknownTrunk) {
		t.Errorf("unknown trunk: status %d (%v), want 503", st, err)
	}

	// A number through the trunk reaches the far end's echo; while it is up
	// the trunk's one call slot is taken, so a second forward gets 503.
	ctl := &forwardControls{hangup: make(chan string, 1)}
	s, err := (&forward{target: dialplan.Target{To: "+4930echo", Trunk: "carrier"}, g: g}).Start(context.Background(),
		agent.Call{ID: "t", From: "a", Logger: quietLog()}, ctl)
	if err != nil {
		t.Fatalf("number through the trunk: %v", err)
	}
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd("+4930echo", "carrier")}}); st != 503 || !errors.Is(err, sip.ErrTrunkBusy) {
		t.Errorf("second forward over max_calls: status %d (%v), want 503 trunk busy", st, err)
	}
	s.Close()
	select {
	case e := <-far.endedC:
		if e != "4930echo caller" && e != "echo caller" {
			t.Errorf("far end: %q", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no BYE reached the trunk's far end")
	}

	// Nobody answers within the ring time: 480, and the leg is cancelled.
	old := forwardRingTimeout
	forwardRingTimeout = 300 * time.Millisecond
	defer func() { forwardRingTimeout = old }()
	if st, err := start(&chain{failStatus: 503, steps: []step{fwd(uri("ring"), "")}}); st != 480 {
		t.Errorf("no answer: status %d (%v), want 480", st, err)
	}
	select {
	case e := <-far.endedC:
		if e != "ring cancel" {
			t.Errorf("far end: %q, want the ringing leg cancelled", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the unanswered leg was not cancelled")
	}
}
