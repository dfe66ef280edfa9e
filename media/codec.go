package media

import (
	"fmt"
	"strings"
	"sync"

	"github.com/switchboard-voip/switchboard/media/pcm"
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

// ulaw and alaw are G.711 (one byte per 8 kHz sample), by pcm's lookup
// tables into caller buffers.
type (
	ulaw struct{}
	alaw struct{}
)

func (ulaw) Rate() int                  { return 8000 }
func (ulaw) MaxPayload(samples int) int { return samples }
func (ulaw) Encode(dst []byte, src []int16) int {
	pcm.AppendUlaw(dst[:0:len(src)], src) // in dst's own array, never a new one
	return len(src)
}
func (ulaw) Decode(dst []int16, payload []byte) []int16 {
	return pcm.AppendFromUlaw(dst, payload)
}

func (alaw) Rate() int                  { return 8000 }
func (alaw) MaxPayload(samples int) int { return samples }
func (alaw) Encode(dst []byte, src []int16) int {
	pcm.AppendAlaw(dst[:0:len(src)], src) // in dst's own array, never a new one
	return len(src)
}
func (alaw) Decode(dst []int16, payload []byte) []int16 {
	return pcm.AppendFromAlaw(dst, payload)
}
