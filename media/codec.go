package media

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/zaf/g711"
)

// Codec is a payload format as negotiated in SDP.
type Codec struct {
	Name        string // encoding name as in SDP rtpmap: "PCMU", "PCMA", "opus"
	PayloadType uint8
	ClockRate   uint32 // RTP clock, Hz
	Fmtp        string // the peer's a=fmtp parameters for it, e.g. "maxplaybackrate=16000; useinbandfec=1"
}

// The codecs this package implements, with their static payload types (RFC 3551);
// G722 is in g722.go.
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

// payloadTypeCN is RFC 3389 comfort noise: valid RTP that carriers send in silence,
// accepted (it keeps the stream alive) but not yet rendered.
const payloadTypeCN = 13

// CodecByName returns the codec with that encoding name (case-insensitive):
// G.711 with its static payload type, or a registered one with the payload
// type it registered (what sip offers for it; an answer may keep another).
func CodecByName(name string) (Codec, bool) {
	for _, c := range []Codec{PCMU, PCMA, G722} {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	for _, r := range registry {
		if strings.EqualFold(r.codec.Name, name) {
			return r.codec, true
		}
	}
	return Codec{}, false
}

func (c Codec) String() string {
	return fmt.Sprintf("%s/%d (PT %d)", c.Name, c.ClockRate, c.PayloadType)
}

// PayloadCodec is one stream's encoder and decoder for a payload format. Encode
// and the decoding methods may run concurrently with each other (send and
// receive are separate goroutines), each from one goroutine at a time; none may
// allocate per call.
type PayloadCodec interface {
	Rate() int // PCM rate of decoded frames
	// Encode writes src's payload into dst and returns the bytes written; dst
	// has room for MaxPayload(len(src)).
	Encode(dst []byte, src []int16) int
	MaxPayload(samples int) int
	// Decode appends payload's samples to dst.
	Decode(dst []int16, payload []byte) []int16
}

// Concealer is a PayloadCodec with loss concealment of its own (Opus PLC and
// in-band FEC); the jitter buffer uses it instead of waveform repetition.
type Concealer interface {
	// Conceal appends samples of concealment for one lost packet to dst. next is
	// the payload of the packet after the lost one when it is already buffered
	// (in-band FEC recovers from it), else nil.
	Conceal(dst []int16, samples int, next []byte) []int16
}

// Codecs that need cgo (Opus) live in packages of their own and register here
// from init, so media itself builds without cgo.
type registered struct {
	codec Codec
	open  func(Codec) (PayloadCodec, error)
}

var (
	registryMu sync.RWMutex
	registry   []registered
)

// RegisterCodec makes a payload format available to streams by encoding name.
// c names it, with its RTP clock rate and the payload type offered for it
// (a static one, or the dynamic one sip offers); c.Fmtp is unused.
func RegisterCodec(c Codec, open func(Codec) (PayloadCodec, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	c.Fmtp = ""
	registry = append(registry, registered{codec: c, open: open})
}

func newCodec(c Codec) (PayloadCodec, error) {
	switch {
	case strings.EqualFold(c.Name, "PCMU") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return ulaw{}, nil
	case strings.EqualFold(c.Name, "PCMA") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return alaw{}, nil
	case strings.EqualFold(c.Name, "G722") && c.ClockRate == 8000: // never 0: its clock is not its 16 kHz rate
		return newG722(), nil
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	for _, r := range registry {
		if strings.EqualFold(r.codec.Name, c.Name) && (c.ClockRate == 0 || c.ClockRate == r.codec.ClockRate) {
			return r.open(c)
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, c)
}

// ulaw and alaw are G.711 (one byte per 8 kHz sample), by table lookup into caller
// buffers. The tables come from zaf/g711 (its slice helpers allocate): µ-law
// encoding looks only at a sample's top 14 bits and A-law at its top 12, so
// encoding is one lookup too.
type (
	ulaw struct{}
	alaw struct{}
)

var (
	ulawDecode, alawDecode [256]int16
	ulawEncode             [1 << 14]uint8
	alawEncode             [1 << 12]uint8
)

func init() {
	for i := range 256 {
		ulawDecode[i], alawDecode[i] = g711.DecodeUlawFrame(uint8(i)), g711.DecodeAlawFrame(uint8(i))
	}
	for i := range ulawEncode {
		ulawEncode[i] = g711.EncodeUlawFrame(int16(i << 2))
	}
	for i := range alawEncode {
		alawEncode[i] = g711.EncodeAlawFrame(int16(i << 4))
	}
}

// grow extends dst by n samples and returns it and the new part.
func grow(dst []int16, n int) ([]int16, []int16) {
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	return dst, dst[l:]
}

func (ulaw) Rate() int                  { return 8000 }
func (ulaw) MaxPayload(samples int) int { return samples }
func (ulaw) Encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = ulawEncode[uint16(s)>>2]
	}
	return len(src)
}
func (ulaw) Decode(dst []int16, payload []byte) []int16 {
	dst, out := grow(dst, len(payload))
	out = out[:len(payload)]
	for i, b := range payload {
		out[i] = ulawDecode[b]
	}
	return dst
}

func (alaw) Rate() int                  { return 8000 }
func (alaw) MaxPayload(samples int) int { return samples }
func (alaw) Encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = alawEncode[uint16(s)>>4]
	}
	return len(src)
}
func (alaw) Decode(dst []int16, payload []byte) []int16 {
	dst, out := grow(dst, len(payload))
	out = out[:len(payload)]
	for i, b := range payload {
		out[i] = alawDecode[b]
	}
	return dst
}
