// Package opus is the Opus payload format (RFC 7587) for media streams, on
// libopus through github.com/hraban/opus. It needs cgo, so it lives apart
// from media and registers itself there: a blank import enables it.
//
// Build with -tags nolibopusfile (the Makefile sets it in GOFLAGS) so that
// only libopus is linked; hraban/opus otherwise also links libopusfile for
// Ogg files we never read.
package opus

import (
	"strconv"
	"strings"

	"github.com/hraban/opus"

	"github.com/switchboard-voip/switchboard/media"
)

const (
	// ClockRate is Opus's RTP clock, whatever the audio bandwidth (RFC 7587 §4.1).
	ClockRate = 48000
	// PayloadType is the dynamic payload type we offer for Opus (WebRTC's
	// customary one); sip offers the same number.
	PayloadType = 111

	// maxFrame is the longest Opus packet, 120 ms at 48 kHz.
	maxFrame = 120 * ClockRate / 1000
	// plcStep is the granularity libopus conceals in, 2.5 ms.
	plcStep = ClockRate / 400
	// maxPacket is the most one 20 ms Opus frame can take (RFC 6716 §3.4).
	maxPacket = 1275
	// expectedLossPerc sizes the in-band FEC the encoder adds; FEC is only
	// emitted when this is non-zero.
	expectedLossPerc = 10
	// complexity 5 of libopus's 0–10 takes about half the encoder CPU of its
	// default 10 for little loss on speech; a gateway encodes for every call.
	complexity = 5
)

func init() {
	media.RegisterCodec(media.Codec{Name: "opus", PayloadType: PayloadType, ClockRate: ClockRate}, func(c media.Codec) (media.PayloadCodec, error) {
		return New(ParseFmtp(c.Fmtp))
	})
}

// Params are the receiver's format parameters from its a=fmtp (RFC 7587
// §6.1) that shape what we send it.
type Params struct {
	MaxPlaybackRate   int  // Hz; 0: 48000
	MaxAverageBitrate int  // bit/s; 0: ours
	UseInbandFEC      bool // the peer's decoder uses FEC; we send it regardless
}

// ParseFmtp reads an Opus fmtp value such as "maxplaybackrate=16000;
// useinbandfec=1". Unknown or malformed parameters are ignored, as RFC 7587
// asks. "stereo=1" needs nothing: we send mono, which every decoder plays.
func ParseFmtp(fmtp string) Params {
	var p Params
	for _, kv := range strings.Split(fmtp, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "maxplaybackrate":
			if n >= 8000 && n <= ClockRate {
				p.MaxPlaybackRate = n
			}
		case "maxaveragebitrate":
			if n >= 6000 && n <= 510000 {
				p.MaxAverageBitrate = n
			}
		case "useinbandfec":
			p.UseInbandFEC = n == 1
		}
	}
	return p
}

// bandwidth is the widest audio band a receiver playing at rate can use.
func bandwidth(rate int) (opus.Bandwidth, int) {
	switch {
	case rate <= 8000:
		return opus.Narrowband, 16000
	case rate <= 12000:
		return opus.Mediumband, 20000
	case rate <= 16000:
		return opus.Wideband, 24000
	case rate <= 24000:
		return opus.SuperWideband, 28000
	}
	return opus.Fullband, 32000
}
