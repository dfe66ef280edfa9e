package media

import (
	"fmt"
	"strings"
	"sync"

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

// CodecByName returns the codec with that encoding name (case-insensitive):
// G.711 with its static payload type, or a registered one (payload type 0:
// dynamic, chosen in SDP).
func CodecByName(name string) (Codec, bool) {
	for _, c := range []Codec{PCMU, PCMA} {
		if strings.EqualFold(c.Name, name) {
			return c, true
		}
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	for _, r := range registry {
		if strings.EqualFold(r.name, name) {
			return Codec{Name: r.name, ClockRate: r.clockRate}, true
		}
	}
	return Codec{}, false
}

func (c Codec) String() string {
	return fmt.Sprintf("%s/%d (PT %d)", c.Name, c.ClockRate, c.PayloadType)
}

// PayloadCodec is one stream's encoder and decoder for a payload format. It is
// used from one goroutine at a time and must not allocate per call.
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

// Codecs beyond G.711 live in packages of their own (Opus needs cgo) and
// register here from init.
type registered struct {
	name      string
	clockRate uint32
	open      func(Codec) (PayloadCodec, error)
}

var (
	registryMu sync.RWMutex
	registry   []registered
)

// RegisterCodec makes a payload format available to streams by encoding name.
func RegisterCodec(name string, clockRate uint32, open func(Codec) (PayloadCodec, error)) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry = append(registry, registered{name: name, clockRate: clockRate, open: open})
}

func newCodec(c Codec) (PayloadCodec, error) {
	switch {
	case strings.EqualFold(c.Name, "PCMU") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return ulaw{}, nil
	case strings.EqualFold(c.Name, "PCMA") && (c.ClockRate == 0 || c.ClockRate == 8000):
		return alaw{}, nil
	}
	registryMu.RLock()
	defer registryMu.RUnlock()
	for _, r := range registry {
		if strings.EqualFold(r.name, c.Name) && (c.ClockRate == 0 || c.ClockRate == r.clockRate) {
			return r.open(c)
		}
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCodec, c)
}

// ulaw and alaw are G.711 (one byte per 8 kHz sample), done sample by sample with
// zaf/g711 into caller buffers; its slice helpers allocate.
type (
	ulaw struct{}
	alaw struct{}
)

func (ulaw) Rate() int                  { return 8000 }
func (ulaw) MaxPayload(samples int) int { return samples }
func (ulaw) Encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = g711.EncodeUlawFrame(s)
	}
	return len(src)
}
func (ulaw) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, g711.DecodeUlawFrame(b))
	}
	return dst
}

func (alaw) Rate() int                  { return 8000 }
func (alaw) MaxPayload(samples int) int { return samples }
func (alaw) Encode(dst []byte, src []int16) int {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = g711.EncodeAlawFrame(s)
	}
	return len(src)
}
func (alaw) Decode(dst []int16, payload []byte) []int16 {
	for _, b := range payload {
		dst = append(dst, g711.DecodeAlawFrame(b))
	}
	return dst
}
