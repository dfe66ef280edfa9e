package media

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"github.com/pion/rtp"
)

// maxFrameSamples bounds one WriteFrame: 120 ms at 8 kHz, well inside one datagram.
const maxFrameSamples = 960

// sender is the outgoing RTP state: random SSRC and starting points (RFC 3550 §5.1),
// then continuous sequence numbers and timestamps.
type sender struct {
	mu     sync.Mutex
	hdr    rtp.Header
	buf    []byte
	clock  uint32 // RTP clock rate
	closed bool
	report senderReportState // for RTCP sender reports
	dtmf   dtmfSender        // digits replace audio packets while they play
}

func (t *sender) init(c Codec) {
	t.hdr = rtp.Header{
		Version:        rtpVersion,
		PayloadType:    c.PayloadType,
		SSRC:           rand.Uint32(),
		SequenceNumber: uint16(rand.Uint32()),
		Timestamp:      rand.Uint32(),
	}
	t.clock = c.ClockRate
	t.fit(rtpHeaderMin + 2*(maxFrameSamples/6)) // a 20 ms G.711 or 16-bit 8 kHz frame; grows once for more
}

// WriteFrame encodes src (normally 20 ms) and sends it as one RTP packet to the
// latched remote, or to the SDP address until RTP arrives. marker sets the RTP marker
// bit, as at the start of a talkspurt.
func (s *Stream) WriteFrame(src []int16, marker bool) error {
	t := &s.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrStreamClosed
	}
	if s.held.Load() {
		// On hold nothing is sent, but RTP time runs on (RFC 3550 §5.1).
		t.hdr.Timestamp += uint32(len(src)) * t.clock / uint32(s.rate)
		return nil
	}
	remote := s.Remote()
	if !remote.IsValid() || remote.Port() == 0 {
		return ErrNoRemote
	}
	if t.dtmf.pending() {
		if sent, err := s.writeDTMF(remote, len(src)); sent {
			return err
		}
	}
	pkt, err := s.marshal(src, marker)
	if err != nil {
		return err
	}
	if err := s.writeRTP(pkt, remote); err != nil {
		return err
	}
	s.stats.packetsOut.Add(1)
	s.stats.bytesOut.Add(uint64(len(pkt)))
	t.report.noteSent(pkt)
	return nil
}

// marshal encodes src into the next packet in t.buf and advances sequence number
// and timestamp. The packet is valid until the next call. Callers hold t.mu.
func (s *Stream) marshal(src []int16, marker bool) ([]byte, error) {
	t := &s.tx
	if len(src) == 0 || len(src) > maxFrameSamples {
		return nil, fmt.Errorf("%w: %d samples, want 1..%d", ErrFrameSize, len(src), maxFrameSamples)
	}
	t.hdr.Marker = marker
	t.fit(t.hdr.MarshalSize() + s.codec.MaxPayload(len(src)))
	n, err := t.hdr.MarshalTo(t.buf)
	if err != nil {
		return nil, err
	}
	n += s.codec.Encode(t.buf[n:n+s.codec.MaxPayload(len(src))], src)
	t.hdr.SequenceNumber++
	t.hdr.Timestamp += uint32(len(src)) * t.clock / uint32(s.codec.Rate())
	return t.buf[:n], nil
}

// fit makes buf hold a packet of n bytes, with room for SRTP to protect it
// in place; it allocates only when a stream's frames grow.
func (t *sender) fit(n int) {
	if cap(t.buf) < n+srtpOverhead {
		t.buf = make([]byte, n, n+srtpOverhead)
	}
	t.buf = t.buf[:n]
}
