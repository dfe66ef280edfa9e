package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/media/pcm"
	"github.com/switchboard-voip/switchboard/sip"
)

// A bridge transfer (B2BUA): when the caller's side cannot take a REFER, the
// gateway dials the transfer target as a second leg and connects the caller's
// audio to it on the call's 20 ms clock, in place of the agent.

var errLegTarget = errors.New("a bridged transfer needs a sip: URI target")

// legDialer places the second leg; tests may stand in for sip.Dial.
type legDialer func(ctx context.Context, o sip.DialOptions) (*sip.OutboundCall, error)

// leg is the second leg as the session's target: the caller's frames go to it
// and its frames come back into the caller's playout queue, both on the
// caller's clock, so the two directions stay in step.
type leg struct {
	call   *sip.OutboundCall
	stream *media.Stream
	log    *slog.Logger

	callerRate int
	push       func([]int16) // into the caller's playout queue
	toLeg      *pcm.Resampler
	fromLeg    *pcm.Resampler
	legFrame   []int16 // one frame at the leg's rate
	conv       []int16
	started    bool
	closeOnce  sync.Once
}

// dialLeg places the second leg to target and opens its media. The leg runs
// G.711 (8 kHz): the caller's codec first when it is one of them, and any
// other caller rate is resampled.
func dialLeg(ctx context.Context, dial legDialer, ports *media.PortPool, target, from string, callerCodec string,
	timeout time.Duration, log *slog.Logger) (*leg, error) {
	lower := strings.ToLower(strings.TrimSpace(target))
	if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") {
		return nil, fmt.Errorf("%w, got %q", errLegTarget, target)
	}
	codecs := []string{"PCMU", "PCMA"}
	if strings.EqualFold(callerCodec, "PCMA") {
		codecs = []string{"PCMA", "PCMU"}
	}
	first, _ := media.CodecByName(codecs[0])
	log = log.With("leg", "transfer", "target", target)
	stream, err := ports.Open(media.StreamConfig{Codec: first, Timeout: timeout, Logger: log})
	if err != nil {
		return nil, err
	}
	if from == "" {
		from = "switchboard"
	}
	call, err := dial(ctx, sip.DialOptions{Target: target, From: from, LocalRTP: stream.LocalAddr(), Codecs: codecs, Logger: log})
	if err != nil {
		stream.Close()
		return nil, err
	}
	m := call.Media()
	if m.Codec.Name != first.Name || m.Codec.PayloadType != first.PayloadType {
		if err := stream.Reconfigure(mediaCodec(m.Codec), m.Remote); err != nil {
			_ = call.Hangup()
			stream.Close()
			return nil, err
		}
	}
	stream.SetRemote(m.Remote)
	log.Info("transfer leg answered", "codec", m.Codec.Name, "remote_rtp", m.Remote)
	return &leg{call: call, stream: stream, log: log, legFrame: make([]int16, pcm.FrameSamples(stream.Rate()))}, nil
}

// attach makes the leg feed the caller's playout queue at rate.
func (l *leg) attach(callerRate int, push func([]int16)) {
	l.callerRate, l.push = callerRate, push
	if r := l.stream.Rate(); r != callerRate {
		l.toLeg = pcm.NewResampler(callerRate, r)
		l.fromLeg = pcm.NewResampler(r, callerRate)
	}
}

// done is closed when the leg has ended: the far end's BYE or its media timeout.
func (l *leg) done() <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		select {
		case <-l.call.Context().Done():
		case <-l.stream.Done():
		}
		close(ch)
	}()
	return ch
}

// Audio implements agent.Session: one caller frame out to the leg, and the
// leg's frame for the same tick back into the caller's queue.
func (l *leg) Audio(frame []int16, _ int) {
	out := frame
	if l.toLeg != nil {
		l.conv = l.toLeg.Process(l.conv, frame)
		out = l.conv
	}
	if err := l.stream.WriteFrame(out, !l.started); err != nil {
		l.log.Debug("leg rtp write", "err", err)
	}
	l.started = true
	l.stream.ReadFrame(l.legFrame)
	if l.fromLeg != nil {
		l.conv = l.fromLeg.Process(l.conv, l.legFrame)
		l.push(l.conv)
		return
	}
	l.push(l.legFrame)
}

// Event implements agent.Session: the caller's digits go on to the leg.
func (l *leg) Event(e agent.Event) {
	if e.Kind == agent.DTMF {
		if err := l.stream.SendDTMF(string(e.Digit)); err != nil {
			l.log.Debug("leg dtmf", "err", err)
		}
	}
}

// Close implements agent.Session: BYE to the leg (unless it hung up) and its port back.
func (l *leg) Close() {
	l.closeOnce.Do(func() {
		if err := l.call.Hangup(); err != nil {
			l.log.Debug("leg bye", "err", err)
		}
		l.stream.Close()
		st := l.stream.Stats()
		l.log.Info("transfer leg ended", "rtp_in", st.PacketsIn, "rtp_out", st.PacketsOut)
	})
}

// legSwitch hands a session's run loop its new target.
type legSwitch struct {
	target agent.Session
	done   <-chan struct{}
}

// bridgeTo connects the running session to l in place of its agent: the
// agent's queued audio is dropped and its controls are ignored from then on.
// It returns false when the call ended first.
func (s *session) bridgeTo(ctx context.Context, l *leg) bool {
	l.attach(s.rate, s.queue.Push)
	select {
	case s.switchTo <- legSwitch{target: l, done: l.done()}:
		return true
	case <-ctx.Done():
		return false
	}
}

// bridgeTransfer is the bridging half of a session's transfer action: dial
// target, switch the caller's audio to it, then close the agent. The leg is
// hung up when the call ends.
func (g *Gateway) bridgeTransfer(ctx context.Context, c *sip.InboundCall, s *session, closeAgent func(), log *slog.Logger) func(context.Context, string) error {
	return func(tctx context.Context, target string) error {
		l, err := dialLeg(tctx, sip.Dial, g.ports, target, c.From(), c.Media().Codec.Name, g.mediaTimeout, log)
		if err != nil {
			return err
		}
		if !s.bridgeTo(ctx, l) {
			l.Close()
			return sip.ErrCallEnded
		}
		closeAgent()
		go func() {
			<-ctx.Done()
			l.Close()
		}()
		return nil
	}
}

// lateCloser closes an agent session that starts after the transfer action is made.
type lateCloser struct {
	mu sync.Mutex
	s  agent.Session
}

func (l *lateCloser) set(s agent.Session) {
	l.mu.Lock()
	l.s = s
	l.mu.Unlock()
}

// close closes the session once; the gateway's own Close at the end is then a no-op.
func (l *lateCloser) close() {
	l.mu.Lock()
	s := l.s
	l.s = nil
	l.mu.Unlock()
	if s != nil {
		s.Close()
	}
}
