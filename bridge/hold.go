package bridge

import (
	"log/slog"
	"net/netip"

	"github.com/switchboard-voip/switchboard/media"
	"github.com/switchboard-voip/switchboard/sip"
)

// mediaControl is what a re-INVITE or UPDATE changes on the caller's stream;
// media.Stream satisfies it.
type mediaControl interface {
	SetHold(held bool)
	Reconfigure(codec media.Codec, remote netip.AddrPort) error
}

// mediaFollower applies the caller's media changes to its stream: hold stops
// our RTP and pauses the media timeout, unhold resumes both, and a new codec
// or address is switched to at once.
type mediaFollower struct {
	cur sip.Media
	mc  mediaControl
	log *slog.Logger
}

// followMedia makes the session apply the call's media changes (from initial
// on) to mc. Call before run.
func (s *session) followMedia(changes <-chan sip.Media, initial sip.Media, mc mediaControl) {
	s.mediaChanges, s.follow = changes, &mediaFollower{cur: initial, mc: mc, log: s.log}
}

func (f *mediaFollower) apply(m sip.Media) {
	cur := f.cur
	if m.Held() != cur.Held() {
		f.mc.SetHold(m.Held())
		f.log.Info("hold", "held", m.Held(), "direction", m.Direction)
	}
	if m.Codec != cur.Codec || m.Remote != cur.Remote {
		remote := netip.AddrPort{} // unchanged: keep the latched source
		if m.Remote != cur.Remote {
			remote = m.Remote
		}
		if err := f.mc.Reconfigure(mediaCodec(m.Codec), remote); err != nil {
			f.log.Warn("media change not applied", "codec", m.Codec.Name, "remote_rtp", m.Remote, "err", err)
		} else {
			f.log.Info("media changed", "codec", m.Codec.Name, "remote_rtp", m.Remote)
		}
	}
	f.cur = m
}

// mediaCodec is a negotiated SIP codec as the media package names it.
func mediaCodec(c sip.Codec) media.Codec {
	return media.Codec{Name: c.Name, PayloadType: c.PayloadType, ClockRate: c.ClockRate, Fmtp: c.Fmtp}
}
