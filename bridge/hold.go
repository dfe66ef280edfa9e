package bridge

import (
	"context"
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

// followMedia applies the caller's media changes to its stream for the call's
// life: hold stops our RTP and pauses the media timeout, unhold resumes both,
// and a new codec or address is switched to at once.
func followMedia(ctx context.Context, changes <-chan sip.Media, initial sip.Media, mc mediaControl, log *slog.Logger) {
	cur := initial
	for {
		var m sip.Media
		select {
		case <-ctx.Done():
			return
		case m = <-changes:
		}
		if m.Held() != cur.Held() {
			mc.SetHold(m.Held())
			log.Info("hold", "held", m.Held(), "direction", m.Direction)
		}
		if m.Codec != cur.Codec || m.Remote != cur.Remote {
			remote := netip.AddrPort{} // unchanged: keep the latched source
			if m.Remote != cur.Remote {
				remote = m.Remote
			}
			if err := mc.Reconfigure(mediaCodec(m.Codec), remote); err != nil {
				log.Warn("media change not applied", "codec", m.Codec.Name, "remote_rtp", m.Remote, "err", err)
			} else {
				log.Info("media changed", "codec", m.Codec.Name, "remote_rtp", m.Remote)
			}
		}
		cur = m
	}
}

// mediaCodec is a negotiated SIP codec as the media package names it.
func mediaCodec(c sip.Codec) media.Codec {
	return media.Codec{Name: c.Name, PayloadType: c.PayloadType, ClockRate: c.ClockRate, Fmtp: c.Fmtp}
}
