package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// SRTP keys one stream's RTP and RTCP with AES_CM_128_HMAC_SHA1_80 (RFC 3711),
// keys exchanged by SDES (RFC 4568): each side encrypts with its own master key.
type SRTP struct {
	Local  []byte // our master key and salt (SRTPKeyLen bytes): what we send is protected with it
	Remote []byte // the peer's: what we receive is checked and decrypted with it
}

// SRTPKeyLen is the master key (16) plus master salt (14) of AES_CM_128_HMAC_SHA1_80.
const SRTPKeyLen = 30

// replayWindow is how far behind the newest packet an older one may still arrive
// (reordered, not replayed): wider than the jitter buffer's deepest target.
const replayWindow = 256

// srtpOverhead is what protection appends to an RTP packet: the 80-bit auth tag.
const srtpOverhead = 10

// ErrSRTPKey is a key of the wrong length.
var ErrSRTPKey = errors.New("media: SRTP key must be 16 bytes of key and 14 of salt")

// srtpSession holds a context per direction and protocol: pion's Context is not safe
// for concurrent use, and RTP out (tx.mu), RTP in (the reader), RTCP out (sendMu)
// and RTCP in (the RTCP goroutine) each run under their own owner.
type srtpSession struct {
	rtpOut, rtpIn, rtcpOut, rtcpIn *srtp.Context
	outHdr, inHdr                  rtp.Header // reused, so that parsing allocates nothing
	rtpFailed, rtcpFailed          bool       // the first failure of each is logged (by its one reader)
}

func newSRTPSession(k *SRTP) (*srtpSession, error) {
	if len(k.Local) != SRTPKeyLen || len(k.Remote) != SRTPKeyLen {
		return nil, ErrSRTPKey
	}
	s := &srtpSession{}
	var err error
	for _, c := range []struct {
		dst    **srtp.Context
		key    []byte
		replay srtp.ContextOption // RFC 3711 §3.3.2: a replayed packet is dropped, not played twice
	}{
		{&s.rtpOut, k.Local, nil}, {&s.rtcpOut, k.Local, nil},
		{&s.rtpIn, k.Remote, srtp.SRTPReplayProtection(replayWindow)}, {&s.rtcpIn, k.Remote, srtp.SRTCPReplayProtection(replayWindow)},
	} {
		var opts []srtp.ContextOption
		if c.replay != nil {
			opts = append(opts, c.replay)
		}
		if *c.dst, err = srtp.CreateContext(c.key[:16], c.key[16:], srtp.ProtectionProfileAes128CmHmacSha1_80, opts...); err != nil {
			return nil, fmt.Errorf("media: SRTP context: %w", err)
		}
	}
	return s, nil
}

// protectRTP encrypts pkt in place and appends its auth tag; pkt must have
// srtpOverhead bytes of spare capacity. Callers hold tx.mu.
func (s *srtpSession) protectRTP(pkt []byte) ([]byte, error) {
	return s.rtpOut.EncryptRTP(pkt, pkt, &s.outHdr)
}

// unprotectRTP checks pkt's auth tag and replay index, then decrypts it in place.
// Only the reader goroutine calls it.
func (s *srtpSession) unprotectRTP(pkt []byte) ([]byte, error) {
	return s.rtpIn.DecryptRTP(pkt, pkt, &s.inHdr)
}

// protectRTCP makes a compound RTCP packet SRTCP (RFC 3711 §3.4): reports are rare, so
// a fresh buffer is fine here.
func (s *srtpSession) protectRTCP(pkt []byte) ([]byte, error) {
	return s.rtcpOut.EncryptRTCP(nil, pkt, &rtcp.Header{})
}

func (s *srtpSession) unprotectRTCP(pkt []byte) ([]byte, error) {
	return s.rtcpIn.DecryptRTCP(pkt, pkt, &rtcp.Header{})
}

// writeRTP sends one RTP packet built in the sender's buffer, encrypting it first on an
// SRTP stream. Callers hold tx.mu.
func (s *Stream) writeRTP(pkt []byte, remote netip.AddrPort) error {
	if s.srtp != nil {
		var err error
		if pkt, err = s.srtp.protectRTP(pkt); err != nil {
			return fmt.Errorf("media: SRTP protect: %w", err)
		}
	}
	if err := s.conn.sendTo(pkt, remote); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return ErrStreamClosed
		}
		return fmt.Errorf("media: send RTP to %v: %w", remote, err)
	}
	return nil
}

// secureRTCP wraps a built report for the wire; plain RTCP passes through.
func (s *Stream) secureRTCP(pkt []byte, err error) ([]byte, error) {
	if err != nil || pkt == nil || s.srtp == nil {
		return pkt, err
	}
	return s.srtp.protectRTCP(pkt)
}

// openRTCP undoes secureRTCP on a received report; false drops it.
func (s *Stream) openRTCP(pkt []byte) ([]byte, bool) {
	if s.srtp == nil {
		return pkt, true
	}
	out, err := s.srtp.unprotectRTCP(pkt)
	if err != nil && !s.srtp.rtcpFailed {
		s.srtp.rtcpFailed = true
		s.log.Debug("srtcp packet dropped", "err", err, "len", len(pkt))
	}
	return out, err == nil
}

// openRTP authenticates and decrypts a received packet in place; false drops it.
func (s *Stream) openRTP(pkt []byte) ([]byte, bool) {
	out, err := s.srtp.unprotectRTP(pkt)
	if err != nil && !s.srtp.rtpFailed {
		s.srtp.rtpFailed = true
		s.log.Debug("srtp packet dropped", "err", err, "len", len(pkt))
	}
	return out, err == nil
}

// Secure reports whether the stream runs SRTP.
func (s *Stream) Secure() bool { return s.srtp != nil }
