package media

import (
	"fmt"
	"strings"

	"github.com/zaf/g711"
)

// Codec is a payload format as negotiated in SDP.
type Codec struct {
	Name        string // encoding name as in SDP rtpmap: "PCMU", "PCMA"
	PayloadType uint8
	ClockRate   uint32 // RTP clock, Hz
}

// The codecs this package implements, with their static payload types (RFC 3551).
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

// payloadTypeCN is RFC 3389 comfort noise: valid RTP that carriers send in silence,
// accepted (it keeps the stream alive) but not yet rendered.
const payloadTypeCN = 13

// CodecByName returns the codec with that encoding name (case-insensitive).
func CodecByName(name string) (Codec, bool) {
	for _, c := range []Codec{PCMU, PCMA} {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	return Codec{}, false
}

func (c Codec) String() string {
	return fmt.Sprintf("%s/%d (PT %d)", c.Name, c.ClockRate, c.PayloadType)
}

// codec is what a Stream needs of a payload format; Opus will be a second one.
type codec interface {
	rate() int // PCM rate of decoded frames
	// encode writes src's payload into dst and returns the bytes written; dst must
	// have room for maxPayload(len(src)).
	encode(dst []byte, src []int16) int
	maxPayload(samples int) int
	// decode appends payload's samples to dst.
	decode(dst []int16, payload []byte) []int16
}

func newCodec(c Codec) (codec, error) {
	switch {
	case strings.EqualFold(c.Name, "PCMU") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return ulaw{}, nil
	case strings.EqualFold(c.Name, "PCMA") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return alaw{}, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, c)
}

// ulaw and alaw are G.711 (one byte per 8 kHz sample), done sample by sample with
// zaf/g711 into caller buffers; its slice helpers allocate.
type (
	ulaw struct{}
	alaw struct{}
)

func (ulaw) rate() int                  { return 8000 }
func (ulaw) maxPayload(samples int) int { return samples }
func (ulaw) encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = g711.EncodeUlawFrame(s)
	}
	return len(src)
}
func (ulaw) decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, g711.DecodeUlawFrame(b))
	}
	return dst
}

func (alaw) rate() int                  { return 8000 }
func (alaw) maxPayload(samples int) int { return samples }
func (alaw) encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = g711.EncodeAlawFrame(s)
	}
	return len(src)
}
func (alaw) decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, g711.DecodeAlawFrame(b))
	}
	return dst
}
