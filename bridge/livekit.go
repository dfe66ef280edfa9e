package bridge

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/go-logr/logr"
	"github.com/livekit/protocol/livekit"
	protoLogger "github.com/livekit/protocol/logger"
	lksdk "github.com/livekit/server-sdk-go/v2"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	webrtcmedia "github.com/pion/webrtc/v4/pkg/media"

	"github.com/switchboard-voip/switchboard/agent"
	"github.com/switchboard-voip/switchboard/dialplan"
	"github.com/switchboard-voip/switchboard/media/opus"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

const (
	// liveKitJoinTimeout bounds joining the room while the caller hears ringing.
	liveKitJoinTimeout = 10 * time.Second
	// liveKitRate is Opus's rate: the room's audio is mixed at it.
	liveKitRate = opus.ClockRate
	// liveKitUplinkDepth is how many caller frames may wait for the encoder.
	liveKitUplinkDepth = 8
	// maxConcealed bounds the frames of loss concealment for one gap; past it
	// the mixer's own silence is as good.
	maxConcealed = 5
)

// Participant attributes set on the caller, as LiveKit's own SIP service
// names them, so room agents written for it read them unchanged.
const (
	attrCallID      = "sip.callID"
	attrPhoneNumber = "sip.phoneNumber"      // the caller
	attrTrunkNumber = "sip.trunkPhoneNumber" // the number called
	attrTrunkID     = "sip.trunkID"
	attrRoute       = "sip.route"
	attrHeader      = "sip.h." // + lower-case header name
)

var sdkLogger sync.Once

// liveKitRoom is a room target on a LiveKit server: each call joins the room
// as a participant that publishes the caller and hears everyone else.
type liveKitRoom struct {
	cfg    *dialplan.LiveKit
	secret string
}

// newLiveKitRoom reads the API secret once, when the plan is loaded, so a
// missing secret fails the plan rather than every call.
func newLiveKitRoom(lk *dialplan.LiveKit) (*liveKitRoom, error) {
	sdkLogger.Do(func() { lksdk.SetLogger(liveKitLogger(slog.Default())) }) // its WebRTC stack logs here, not per room
	secret := os.Getenv(lk.APISecretEnv)
	if secret == "" {
		return nil, fmt.Errorf("livekit: environment variable %s (api_secret_env) is not set", lk.APISecretEnv)
	}
	return &liveKitRoom{cfg: lk, secret: secret}, nil
}

// Start implements agent.Agent: it joins the room and publishes the caller's
// track before the call is answered.
func (r *liveKitRoom) Start(ctx context.Context, call agent.Call, ctl agent.Controls) (agent.Session, error) {
	log := call.Logger
	if log == nil {
		log = slog.Default()
	}
	data := dialplan.CallData{From: call.From, To: call.To, CallID: call.ID, Route: call.Route, Headers: call.Headers}
	var room, identity, name string
	for _, f := range []struct {
		dst *string
		t   *template.Template
	}{{&room, r.cfg.Room}, {&identity, r.cfg.Identity}, {&name, r.cfg.Name}} {
		v, err := dialplan.Render(f.t, data)
		if err != nil {
			return nil, fmt.Errorf("livekit: %s: %w", f.t.Name(), err)
		}
		*f.dst = v
	}
	if room == "" || identity == "" {
		return nil, fmt.Errorf("livekit: room %q, identity %q: both must render non-empty", room, identity)
	}
	attrs := map[string]string{attrCallID: call.ID, attrPhoneNumber: call.From, attrTrunkNumber: call.To, attrRoute: call.Route}
	if call.Trunk != "" {
		attrs[attrTrunkID] = call.Trunk
	}
	for _, h := range r.cfg.Headers {
		if v := data.Header(h); v != "" {
			attrs[attrHeader+strings.ToLower(h)] = v
		}
	}
	log = log.With("room", room, "identity", identity)

	s := &liveKitSession{
		ctl:    ctl,
		log:    log,
		mix:    newMixer(liveKitRate),
		out:    make([]int16, pcm.FrameSamples(liveKitRate)),
		free:   make(chan []int16, liveKitUplinkDepth),
		full:   make(chan uplinkFrame, liveKitUplinkDepth),
		dtmf:   make(chan rune, 16),
		done:   make(chan struct{}),
		inputs: make(map[string]*mixInput),
	}
	for range liveKitUplinkDepth {
		s.free <- make([]int16, 0, pcm.FrameSamples(liveKitRate))
	}
	cb := lksdk.NewRoomCallback()
	cb.OnTrackSubscribed = s.onTrack
	cb.OnTrackUnsubscribed = s.onTrackGone
	cb.OnParticipantConnected = func(p *lksdk.RemoteParticipant) { log.Info("participant joined", "participant", p.Identity()) }
	cb.OnParticipantDisconnected = func(p *lksdk.RemoteParticipant) { log.Info("participant left", "participant", p.Identity()) }
	cb.OnDisconnectedWithReason = s.onDisconnected
	s.room = lksdk.NewRoom(cb)

	jctx, cancel := context.WithTimeout(ctx, liveKitJoinTimeout)
	defer cancel()
	start := time.Now()
	err := s.room.JoinWithContext(jctx, r.cfg.URL, lksdk.ConnectInfo{
		APIKey:                r.cfg.APIKey,
		APISecret:             r.secret,
		RoomName:              room,
		ParticipantIdentity:   identity,
		ParticipantName:       name,
		ParticipantKind:       lksdk.ParticipantSIP,
		ParticipantAttributes: attrs,
	}, lksdk.WithAutoSubscribe(true), lksdk.WithLogger(liveKitLogger(log)), lksdk.WithDisableRegionDiscovery())
	if err != nil {
		return nil, fmt.Errorf("livekit: join %s at %s: %w", room, r.cfg.URL, err)
	}
	s.track, err = lksdk.NewLocalSampleTrack(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: liveKitRate, Channels: 2})
	if err == nil {
		_, err = s.room.LocalParticipant.PublishTrack(s.track, &lksdk.TrackPublicationOptions{Name: "phone", Source: livekit.TrackSource_MICROPHONE})
	}
	if err != nil {
		s.room.Disconnect()
		return nil, fmt.Errorf("livekit: publish the caller's track: %w", err)
	}
	enc, err := opus.New(opus.Params{})
	if err != nil {
		s.room.Disconnect()
		return nil, err
	}
	s.wg.Add(2)
	go s.publish(enc)
	go s.sendDTMF()
	log.Info("joined livekit room", "url", r.cfg.URL, "after", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// liveKitSession is one caller in a LiveKit room.
type liveKitSession struct {
	ctl   agent.Controls
	log   *slog.Logger
	room  *lksdk.Room
	track *lksdk.LocalTrack

	mix *mixer
	out []int16 // one mixed 48 kHz frame, on the clock

	// The caller's frames go to the publisher goroutine through reused buffers.
	free    chan []int16
	full    chan uplinkFrame
	dropped atomic.Int64

	dtmf    chan rune
	done    chan struct{}
	closing atomic.Bool
	wg      sync.WaitGroup

	mu     sync.Mutex
	inputs map[string]*mixInput // by remote track ID
}

type uplinkFrame struct {
	samples []int16
	rate    int
}

// Audio implements agent.Session: the caller's frame goes to the room, and
// the room's mix of the same tick goes to the caller.
func (s *liveKitSession) Audio(frame []int16, rate int) {
	select {
	case b := <-s.free:
		s.full <- uplinkFrame{samples: append(b[:0], frame...), rate: rate}
	default:
		s.dropped.Add(1) // the publisher is behind; never block the clock
	}
	if s.mix.mix(s.out) {
		s.ctl.Play(s.out, liveKitRate)
	}
}

// Event implements agent.Session: the caller's digits go to the room as
// LiveKit's SIP DTMF data packets.
func (s *liveKitSession) Event(e agent.Event) {
	if e.Kind != agent.DTMF {
		return
	}
	select {
	case s.dtmf <- e.Digit:
	default:
		s.log.Warn("dtmf queue full, digit dropped", "digit", string(e.Digit))
	}
}

// Close implements agent.Session: the participant leaves the room.
func (s *liveKitSession) Close() {
	if s.closing.Swap(true) {
		return
	}
	close(s.done)
	s.wg.Wait()
	s.room.Disconnect()
	if n := s.dropped.Load(); n > 0 {
		s.log.Warn("caller frames dropped before the room", "frames", n)
	}
}

// publish encodes the caller's frames to 20 ms Opus packets on the published
// track, on its own goroutine so the call's clock never waits for WebRTC.
func (s *liveKitSession) publish(enc *opus.Codec) {
	defer s.wg.Done()
	var (
		rs     *pcm.Resampler
		rsRate int
		pcm48  []int16
		pkt    = make([]byte, enc.MaxPayload(pcm.FrameSamples(liveKitRate)))
	)
	for {
		var f uplinkFrame
		select {
		case <-s.done:
			return
		case f = <-s.full:
		}
		in := f.samples
		if f.rate != liveKitRate {
			if rs == nil || rsRate != f.rate {
				rs, rsRate = pcm.NewResampler(f.rate, liveKitRate), f.rate
			}
			pcm48 = rs.Process(pcm48, in)
			in = pcm48
		}
		n := 0
		if len(in) == pcm.FrameSamples(liveKitRate) {
			n = enc.Encode(pkt, in)
		}
		s.free <- f.samples
		if n == 0 {
			continue
		}
		if err := s.track.WriteSample(webrtcmedia.Sample{Data: pkt[:n], Duration: pcm.FrameDuration}, nil); err != nil {
			s.log.Debug("livekit write", "err", err)
		}
	}
}

// sendDTMF publishes the caller's digits, reliably and in order.
func (s *liveKitSession) sendDTMF() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case d := <-s.dtmf:
			code, ok := dtmfCode(d)
			if !ok {
				continue
			}
			err := s.room.LocalParticipant.PublishDataPacket(&livekit.SipDTMF{Code: code, Digit: string(d)}, lksdk.WithDataPublishReliable(true))
			if err != nil {
				s.log.Warn("livekit dtmf", "digit", string(d), "err", err)
			}
		}
	}
}

// dtmfCode is a digit's RFC 4733 event code, which LiveKit's SipDTMF carries.
func dtmfCode(d rune) (uint32, bool) {
	switch {
	case d >= '0' && d <= '9':
		return uint32(d - '0'), true
	case d == '*':
		return 10, true
	case d == '#':
		return 11, true
	case d >= 'A' && d <= 'D':
		return uint32(d-'A') + 12, true
	}
	return 0, false
}

// onTrack mixes a newly subscribed audio track into what the caller hears.
func (s *liveKitSession) onTrack(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	if track.Kind() != webrtc.RTPCodecTypeAudio {
		return
	}
	if !strings.EqualFold(track.Codec().MimeType, webrtc.MimeTypeOpus) {
		s.log.Warn("audio track not Opus, not mixed", "participant", rp.Identity(), "codec", track.Codec().MimeType)
		return
	}
	dec, err := opus.New(opus.Params{})
	if err != nil {
		s.log.Warn("opus decoder", "err", err)
		return
	}
	in := s.mix.add()
	s.mu.Lock()
	s.inputs[track.ID()] = in
	s.mu.Unlock()
	s.log.Info("mixing participant", "participant", rp.Identity(), "track", track.ID())
	go s.receive(track, dec, in)
}

// onTrackGone stops mixing a track (unpublished, or its participant left).
func (s *liveKitSession) onTrackGone(track *webrtc.TrackRemote, _ *lksdk.RemoteTrackPublication, rp *lksdk.RemoteParticipant) {
	s.mu.Lock()
	in := s.inputs[track.ID()]
	delete(s.inputs, track.ID())
	s.mu.Unlock()
	if in != nil {
		s.mix.remove(in)
		s.log.Info("stopped mixing participant", "participant", rp.Identity(), "track", track.ID())
	}
}

// receive decodes one remote track into its mixer input until the track ends.
func (s *liveKitSession) receive(track *webrtc.TrackRemote, dec *opus.Codec, in *mixInput) {
	defer s.mix.remove(in)
	buf := make([]byte, 1500)
	samples := make([]int16, 0, 120*liveKitRate/1000)
	var (
		pkt      rtp.Packet
		have     bool
		lastSeq  uint16
		nextTS   uint32 // timestamp the next packet has when nothing is skipped
		lastSize int
	)
	for {
		n, _, err := track.Read(buf)
		if err != nil {
			return // the track ended: unsubscribed, participant gone, room closed
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		talkspurt := !have
		if have {
			switch gap := pkt.SequenceNumber - lastSeq; {
			case gap == 0 || gap >= 0x8000:
				continue // duplicate or late: its time has passed
			case gap > 1:
				// Lost packets: conceal them (FEC from this one for the last).
				for i := range min(int(gap-1), maxConcealed) {
					var next []byte
					if i == int(gap-2) {
						next = pkt.Payload
					}
					samples = dec.Conceal(samples[:0], lastSize, next)
					in.write(samples, false)
				}
			case int32(pkt.Timestamp-nextTS) > int32(lastSize):
				// Nothing lost but time skipped: the sender was silent (DTX).
				talkspurt = true
			}
		}
		samples = dec.Decode(samples[:0], pkt.Payload)
		have, lastSeq = true, pkt.SequenceNumber
		lastSize = max(len(samples), 1)
		nextTS = pkt.Timestamp + uint32(len(samples))
		in.write(samples, talkspurt)
	}
}

// onDisconnected ends the call when the room is gone or the caller was
// removed from it; a disconnect we asked for (Close) ends nothing.
func (s *liveKitSession) onDisconnected(reason lksdk.DisconnectionReason) {
	if s.closing.Load() {
		return
	}
	// The raw reason tells a deleted room from a closed one, which reason does not.
	why := strings.ToLower(strings.ReplaceAll(s.room.DisconnectReason().String(), "_", " "))
	if s.room.DisconnectReason() == livekit.DisconnectReason_UNKNOWN_REASON {
		why = string(reason)
	}
	s.log.Info("left the livekit room", "reason", why)
	s.ctl.Hangup("livekit: " + why)
}

// liveKitLogger sends the SDK's logs to the call's logger, its chatter at
// debug level.
func liveKitLogger(log *slog.Logger) protoLogger.Logger {
	return protoLogger.LogRLogger(logr.FromSlogHandler(quietHandler{log.Handler()}))
}

// quietHandler demotes records below warning to debug.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	if l < slog.LevelWarn {
		l = slog.LevelDebug
	}
	return h.Handler.Enabled(ctx, l)
}

func (h quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		r.Level = slog.LevelDebug
	}
	return h.Handler.Handle(ctx, r)
}

func (h quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return quietHandler{h.Handler.WithAttrs(as)}
}

func (h quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{h.Handler.WithGroup(name)}
}
