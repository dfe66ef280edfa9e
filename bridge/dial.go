package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/sip"
)

// DialOptions describe a test call placed by `switchboard dial`.
type DialOptions struct {
	Target    string // SIP URI
	From      string // caller user
	Transport string // udp or tcp
	Codec     string // the one codec offered: PCMU or PCMA
	Ports     *media.PortPool
	Play      []int16 // sent to the far end, at PlayRate
	PlayRate  int
	// Record receives every 20 ms frame heard from the far end, at the stream's
	// rate (Result.Rate).
	Record func(frame []int16)
	// Duration bounds the call; 0 hangs up one second after Play has been sent.
	Duration time.Duration
	Logger   *slog.Logger
}

// DialResult is what a test call saw.
type DialResult struct {
	Rate   int
	Codec  string
	By     string
	Cause  string
	Stats  media.Stats
	Answer time.Duration // INVITE to answer
}

// Dial places a call, plays and records, and hangs up.
func Dial(ctx context.Context, o DialOptions) (DialResult, error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	var res DialResult
	codec, ok := media.CodecByName(o.Codec)
	if !ok {
		return res, fmt.Errorf("codec %q: want PCMU or PCMA", o.Codec)
	}
	// One codec offered, so the stream opened for the offer fits the answer.
	stream, err := o.Ports.Open(media.StreamConfig{
		Codec:   codec,
		Logger:  log,
		Timeout: 10 * time.Second,
	})
	if err != nil {
		return res, err
	}
	defer stream.Close()

	start := time.Now()
	call, err := sip.Dial(ctx, sip.DialOptions{
		Target:    o.Target,
		From:      o.From,
		Transport: o.Transport,
		LocalRTP:  stream.LocalAddr(),
		Codecs:    []string{codec.Name},
		Logger:    log,
	})
	if err != nil {
		return res, err
	}
	res.Answer = time.Since(start)
	m := call.Media()
	res.Codec = m.Codec.Name
	if m.Codec.Name != codec.Name {
		call.Hangup()
		return res, fmt.Errorf("answer chose %s, offer had only %s", m.Codec.Name, codec.Name)
	}
	stream.SetRemote(m.Remote)
	res.Rate = stream.Rate()
	log.Info("answered", "codec", m.Codec.Name, "remote_rtp", m.Remote, "after", res.Answer.Round(time.Millisecond))

	callCtx := call.Context()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		callCtx, cancel = context.WithTimeoutCause(callCtx, o.Duration, fmt.Errorf("%s elapsed", o.Duration))
		defer cancel()
	}
	s := newSession(stream, log)
	s.grid = stream.ArrivalGrid
	ph := &phone{o: o, ctl: s}
	ph.start()
	res.By, res.Cause = s.run(callCtx, ph)
	if call.Context().Err() != nil {
		res.By, res.Cause = call.EndCause()
	} else if err := call.Hangup(); err != nil {
		log.Warn("bye", "err", err)
	}
	res.Stats = stream.Stats()
	return res, nil
}

// phone is the dialling side's session: it plays its file and records what
// it hears.
type phone struct {
	o   DialOptions
	ctl *session
}

const phonePlayed = "played"

func (p *phone) start() {
	if len(p.o.Play) > 0 {
		p.ctl.Play(p.o.Play, p.o.PlayRate)
	}
	p.ctl.Mark(phonePlayed)
}

func (p *phone) Audio(frame []int16, _ int) {
	if p.o.Record != nil {
		p.o.Record(frame)
	}
}

func (p *phone) Event(e agent.Event) {
	if e.Kind == agent.MarkPlayed && e.Name == phonePlayed && p.o.Duration == 0 {
		time.AfterFunc(time.Second, func() { p.ctl.Hangup("played") })
	}
}

func (p *phone) Close() {}
