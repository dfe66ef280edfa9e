package opus

import (
	"fmt"

	"github.com/hraban/opus"
)

// Codec is one stream's Opus encoder and decoder: 48 kHz mono in and out.
// A stereo-signalled stream (opus/48000/2, which RFC 7587 always writes) is
// decoded to mono by libopus. Encoding and decoding own separate state and
// buffers, so send and receive may run concurrently; each must stay on one
// goroutine at a time. Nothing allocates per packet.
type Codec struct {
	enc *opus.Encoder
	dec *opus.Decoder
	// decBuf takes one decoded packet of up to 120 ms before it is appended
	// to the caller's slice: libopus needs the room up front.
	decBuf []int16
	last   int // samples in the last good packet: the size of a concealed one
}

// New makes a VoIP-tuned encoder (20 ms frames, in-band FEC, the band and
// bitrate the receiver's params allow) and a mono decoder.
func New(p Params) (*Codec, error) {
	enc, err := opus.NewEncoder(ClockRate, 1, opus.AppVoIP)
	if err != nil {
		return nil, fmt.Errorf("opus: encoder: %w", err)
	}
	rate := p.MaxPlaybackRate
	if rate == 0 {
		rate = ClockRate
	}
	bw, bitrate := bandwidth(rate)
	if p.MaxAverageBitrate > 0 && p.MaxAverageBitrate < bitrate {
		bitrate = p.MaxAverageBitrate
	}
	for _, set := range []func() error{
		func() error { return enc.SetMaxBandwidth(bw) },
		func() error { return enc.SetBitrate(bitrate) },
		func() error { return enc.SetInBandFEC(true) },
		func() error { return enc.SetPacketLossPerc(expectedLossPerc) },
		func() error { return enc.SetComplexity(complexity) },
	} {
		if err := set(); err != nil {
			return nil, fmt.Errorf("opus: encoder setup: %w", err)
		}
	}
	dec, err := opus.NewDecoder(ClockRate, 1)
	if err != nil {
		return nil, fmt.Errorf("opus: decoder: %w", err)
	}
	return &Codec{enc: enc, dec: dec, decBuf: make([]int16, maxFrame), last: ClockRate / 50}, nil
}

// Rate is the PCM rate of frames in and out.
func (c *Codec) Rate() int { return ClockRate }

// MaxPayload bounds one packet: a single Opus frame is at most 1275 bytes.
func (c *Codec) MaxPayload(samples int) int { return min(maxPacket, max(samples*2, 1)) }

// Encode compresses src, which must be an Opus frame duration (2.5, 5, 10,
// 20, 40 or 60 ms at 48 kHz; the bridge sends 20 ms). It returns 0 when
// libopus refuses the input.
func (c *Codec) Encode(dst []byte, src []int16) int {
	if len(dst) == 0 || len(src) == 0 {
		return 0
	}
	n, err := c.enc.Encode(src, dst[:len(dst):len(dst)]) // libopus writes up to cap
	if err != nil {
		return 0
	}
	return n
}

// Decode appends payload's samples to dst. A packet libopus rejects is
// concealed instead, so the timeline keeps its length.
func (c *Codec) Decode(dst []int16, payload []byte) []int16 {
	n, err := c.dec.Decode(payload, c.decBuf)
	if err != nil || n <= 0 {
		return c.Conceal(dst, c.last, nil)
	}
	c.last = n
	return append(dst, c.decBuf[:n]...)
}

// Conceal appends samples of audio for a lost packet: recovered from next's
// in-band FEC when next is given (libopus falls back to its PLC when next
// carries none), else the decoder's own packet loss concealment, which
// fades out over successive losses by itself.
func (c *Codec) Conceal(dst []int16, samples int, next []byte) []int16 {
	if samples <= 0 {
		return dst
	}
	// libopus conceals whole 2.5 ms steps; round up, hand out what was asked.
	n := min((samples+plcStep-1)/plcStep*plcStep, maxFrame)
	buf := c.decBuf[:n:n] // the frame size libopus fills is cap(buf)
	var err error
	if len(next) > 0 {
		err = c.dec.DecodeFEC(next, buf)
	} else {
		err = c.dec.DecodePLC(buf)
	}
	if err != nil {
		clear(buf)
	}
	dst = append(dst, buf[:min(samples, n)]...)
	for range samples - min(samples, n) { // more than 120 ms asked: silence past it
		dst = append(dst, 0)
	}
	return dst
}
