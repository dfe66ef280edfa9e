package media

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pion/rtp"
)

const (
	// maxDatagram bounds what we read; anything larger is not RTP we can use.
	maxDatagram = 2048
	// relatchQuiet is how long the latched source must be silent before a source
	// with a different SSRC may take over (a media server change without re-INVITE).
	relatchQuiet = 500 * time.Millisecond
	rtpVersion   = 2
	rtpHeaderMin = 12
)

// receiver is the receive side's state; only poll touches it, under Stream.mu.
type receiver struct {
	onPkt    func(pkt []byte, from netip.AddrPort, at time.Time) // s.receive, bound once
	polled   bool
	hdr      rtp.Header // reused: Unmarshal keeps its CSRC and extension slices
	latched  bool
	source   netip.AddrPort // latched source address
	ssrc     uint32         // latched SSRC
	lastRTP  time.Time      // last valid RTP, for the media timeout and re-latching
	timedOut bool
	rtcpAt   time.Time // next RTCP poll
	lastPoll time.Time
	skipped  bool // the last frame was read without a poll
	closed   bool
	dtmf     dtmfReceiver // RFC 4733 events to digits
}

// pollLimit bounds the datagrams one poll takes; a larger backlog waits a tick.
const pollLimit = 64

// freshArrival: a packet that arrived less than half a frame before the poll
// is the newest; one that waited longer says more may be queued behind it.
const freshArrival = 10 * time.Millisecond

// rtcpPollEvery is how often a poll also looks at the RTCP socket: reports
// come every few seconds, and their arrival times are the kernel's anyway.
const rtcpPollEvery = 250 * time.Millisecond

func (s *Stream) initReceiver() {
	r := &s.rx
	r.dtmf.init()
	r.onPkt = s.receive
}

// poll takes what the sockets hold and runs the stream's timers (media
// timeout, RTCP). The clock that reads frames polls, just before it reads, so
// no goroutine waits on a call's sockets. The caller holds s.mu.
func (s *Stream) poll(now time.Time) {
	r := &s.rx
	if r.closed {
		return
	}
	expect := 1
	if r.skipped {
		expect = 2
	}
	r.lastPoll, r.skipped = now, false
	if !r.polled {
		r.polled = true
		r.lastRTP = now // the timeout counts from the first poll: a leg may ring before it is read
		r.rtcpAt = now.Add(rtcpPollEvery)
	}
	if err := s.conn.drain(now, pollLimit, expect, freshArrival, r.onPkt); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("rtp read", "err", err) // transient (e.g. ICMP-induced); the socket stays usable
	}
	s.checkTimeout(now)
	if !now.Before(r.rtcpAt) {
		r.rtcpAt = now.Add(rtcpPollEvery)
		s.pollRTCP(now)
	}
}

// skipPoll says whether this read can do without a poll: the frame it plays
// is already buffered and the last poll was the frame before. So a call whose
// packets arrive just before its reads polls every other frame and takes two
// packets in one system call, each still in time (their arrival times are
// the kernel's).
func (s *Stream) skipPoll(now time.Time) bool {
	r := &s.rx
	if r.skipped || !r.polled || now.Sub(r.lastPoll) > skipPollWithin || !s.jb.ready() {
		return false
	}
	r.skipped = true
	return true
}

// skipPollWithin is how recent the last poll must be for a read to skip one.
const skipPollWithin = 30 * time.Millisecond

// checkTimeout ends the stream when no RTP came for the timeout. A held
// caller sends nothing, so hold pauses it and unhold restarts it.
func (s *Stream) checkTimeout(now time.Time) {
	r := &s.rx
	timeout := s.cfg.Timeout
	if timeout <= 0 || r.timedOut || s.held.Load() {
		return
	}
	if res := time.Unix(0, s.resumed.Load()); res.After(r.lastRTP) {
		r.lastRTP = res
	}
	if now.Sub(r.lastRTP) >= timeout {
		r.timedOut = true
		s.log.Info("rtp timeout", "after", timeout.String(), "remote", s.Remote().String())
		s.finish(ErrMediaTimeout)
	}
}

// receive takes one datagram that arrived at now; the caller holds s.mu. Anything that is not usable RTP is counted and
// dropped; it must never panic whatever the bytes.
func (s *Stream) receive(pkt []byte, from netip.AddrPort, now time.Time) {
	// Cheap checks first: pion's error paths allocate, garbage should not.
	if len(pkt) < rtpHeaderMin || pkt[0]>>6 != rtpVersion {
		s.stats.malformed.Add(1)
		return
	}
	if s.srtp != nil { // authenticated before it may latch or reach the jitter buffer
		var ok bool
		if pkt, ok = s.openRTP(pkt); !ok {
			s.stats.malformed.Add(1)
			return
		}
	}
	h := &s.rx.hdr
	n, err := h.Unmarshal(pkt)
	if err != nil || n > len(pkt) {
		s.stats.malformed.Add(1)
		return
	}
	payload := pkt[n:]
	if h.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) || payload[len(payload)-1] == 0 {
			s.stats.malformed.Add(1)
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}

	audio := uint32(h.PayloadType) == s.audioPT.Load()
	switch {
	case audio:
	case s.cfg.DTMFPayloadType != 0 && h.PayloadType == s.cfg.DTMFPayloadType:
		// RFC 4733 events: live media, decoded into digits below once latched.
	case h.PayloadType == payloadTypeCN:
	default:
		s.stats.malformed.Add(1)
		return
	}

	ok, newSSRC := s.latch(from, h.SSRC, now)
	if !ok {
		s.stats.foreign.Add(1)
		return
	}
	s.rx.lastRTP = now
	s.stats.packetsIn.Add(1)
	s.stats.bytesIn.Add(uint64(len(pkt)))
	s.rtcp.rx.update(h.SSRC, h.SequenceNumber, h.Timestamp, s.rtcp.arrival(now), audio)

	if newSSRC {
		s.rx.dtmf.reset()
	}
	if !audio && s.cfg.DTMFPayloadType != 0 && h.PayloadType == s.cfg.DTMFPayloadType {
		s.receiveDTMF(h.Timestamp, payload)
	}
	if !audio && !newSSRC {
		return
	}
	if newSSRC {
		s.jb.reset()
	}
	if audio && len(payload) > 0 {
		s.jb.push(now, h.SequenceNumber, h.Timestamp, payload)
	}
}

// latch implements symmetric RTP: we send to wherever the caller's RTP comes from,
// which is right behind NAT where the SDP address is not. The first valid packet
// latches its source. The same SSRC from a new address re-latches (NAT rebinding);
// a different SSRC from a new address is ignored while the latched source is live.
// newSSRC reports a stream the jitter buffer has not seen.
func (s *Stream) latch(from netip.AddrPort, ssrc uint32, now time.Time) (ok, newSSRC bool) {
	from = unmapAddrPort(from)
	r := &s.rx
	switch {
	case !r.latched:
		r.latched, r.source, r.ssrc = true, from, ssrc
		if from != s.Remote() {
			s.log.Info("rtp latched", "source", from.String(), "sdp", s.cfg.Remote.String())
			s.setRemote(from)
		}
		return true, true
	case from == r.source:
		newSSRC = ssrc != r.ssrc
		r.ssrc = ssrc
		return true, newSSRC
	case ssrc == r.ssrc || now.Sub(r.lastRTP) >= relatchQuiet:
		s.log.Info("rtp re-latched", "source", from.String(), "was", r.source.String())
		newSSRC = ssrc != r.ssrc
		r.source, r.ssrc = from, ssrc
		s.setRemote(from)
		return true, newSSRC
	}
	return false, false
}
