package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
)

// rtcpInterval is RFC 3550's minimum report interval (§6.2); each interval is
// randomised over [0.5, 1.5] of it so streams opened together do not report in step.
// A variable so that tests need not wait seconds; read once per stream.
var rtcpInterval = 5 * time.Second

const (
	// A.1's sequence-number validation constants.
	maxDropout  = 3000
	maxMisorder = 100
	seqMod      = 1 << 16
	// rttSlack is how far (10 ms, in 1/65536 s) A − LSR − DLSR may fall below
	// zero from the peer's rounding and still count as a round trip.
	rttSlack = 655
)

// rtcpSession is one Stream's RTCP endpoint on the odd port above its RTP port:
// it sends SR/RR+SDES on a randomised 5 s interval and reads the peer's reports.
type rtcpSession struct {
	conn     *udpSocket // nil: the odd port was taken, the stream runs without RTCP
	cname    string
	clock    int64                                               // RTP clock rate, for jitter in timestamp units
	interval time.Duration                                       // rtcpInterval when the stream opened
	epoch    time.Time                                           // arrival times are measured from here, in RTP units
	onPkt    func(pkt []byte, from netip.AddrPort, at time.Time) // s.rtcpDatagram, bound once
	next     time.Time                                           // our next report; poll's

	rx rxStats

	sendMu     sync.Mutex // one report at a time (the poll, or Close's final BYE)
	txMu       sync.Mutex // one send at a time on conn
	lastOut    uint64     // RTP packets sent at the previous report: SR only while sending
	in, out    atomic.Uint64
	malformed  atomic.Uint64
	mu         sync.Mutex
	remote     netip.AddrPort // latched RTCP source of the peer; invalid until RTCP arrives
	rtt        time.Duration  // latest RTT from the peer's report blocks about us
	peerFrac   float64        // the peer's latest fraction lost of our packets
	peerLost   int32          // its cumulative count
	peerJitter time.Duration
}

// rxStats is RFC 3550 receiver state for the latched source (A.1 sequence
// validation, A.3 loss, A.8 jitter), updated per packet by the poll and read by
// RTCP reports and Stats, all under Stream.mu.
type rxStats struct {
	started       bool
	ssrc          uint32
	baseSeq       uint16
	maxSeq        uint16
	cycles        uint32
	badSeq        uint32
	received      uint64
	expectedPrior int64
	receivedPrior uint64
	transit       int32
	haveTransit   bool
	jitter        float64 // RTP timestamp units
	lsr           uint32  // middle 32 bits of the NTP time in the source's last SR
	lsrAt         time.Time
}

// senderReportState is what an SR says about our RTP: noted per packet sent.
type senderReportState struct {
	octets uint64    // payload octets sent
	n      uint64    // packets noted
	lastTS uint32    // RTP timestamp of a recent packet
	lastAt time.Time // when it was sent; the SR extrapolates the RTP clock from this pair
}

// noteSent records a sent RTP packet for the next SR. The timestamp pair is
// taken every 16th packet (320 ms): any recent pair extrapolates as well, and
// it saves reading the clock per packet. Callers hold the sender's lock.
func (r *senderReportState) noteSent(pkt []byte) {
	r.octets += uint64(len(pkt) - rtpHeaderMin)
	if r.n++; r.n%16 == 1 {
		r.lastTS = binary.BigEndian.Uint32(pkt[4:8])
		r.lastAt = time.Now()
	}
}

// listenRTCP binds the odd port above an RTP port.
func (p *PortPool) listenRTCP(rtpPort int) (*udpSocket, error) {
	return listenUDP(p.ip, rtpPort+1)
}

func (r *rtcpSession) init(clock uint32) {
	r.clock = int64(clock)
	r.interval = rtcpInterval
	r.epoch = time.Now()
	r.cname = fmt.Sprintf("switchboard-%08x@switchboard", rand.Uint32())
}

// update takes one valid RTP packet from the latched source. Jitter counts audio
// only: RFC 4733 events repeat their start timestamp.
func (r *rxStats) update(ssrc uint32, seq uint16, ts uint32, arrival int64, audio bool) {
	if !r.started || ssrc != r.ssrc { // a new source: its statistics start afresh
		r.started, r.ssrc = true, ssrc
		r.haveTransit, r.jitter, r.lsr, r.lsrAt = false, 0, 0, time.Time{}
		r.resetSeq(seq)
	} else {
		udelta := seq - r.maxSeq
		switch {
		case udelta < maxDropout: // in order, with a permissible gap
			if seq < r.maxSeq {
				r.cycles += seqMod
			}
			r.maxSeq = seq
		case uint32(udelta) <= seqMod-maxMisorder: // a big jump: believe it when the next packet follows it
			if uint32(seq) != r.badSeq {
				r.badSeq = (uint32(seq) + 1) & (seqMod - 1)
				return
			}
			r.resetSeq(seq)
		}
		// else a duplicate or reordered packet: counted, as A.1 does
	}
	r.received++
	if !audio {
		return
	}
	transit := int32(uint32(arrival) - ts)
	if r.haveTransit {
		d := float64(transit - r.transit)
		if d < 0 {
			d = -d
		}
		r.jitter += (d - r.jitter) / 16
	}
	r.transit, r.haveTransit = transit, true
}

func (r *rxStats) resetSeq(seq uint16) {
	r.baseSeq, r.maxSeq = seq, seq
	r.badSeq = seqMod + 1
	r.cycles = 0
	r.received = 0
	r.expectedPrior, r.receivedPrior = 0, 0
}

// expectedLocked is A.3's packets expected. Callers hold mu.
func (r *rxStats) expectedLocked() int64 {
	return int64(r.cycles) + int64(r.maxSeq) - int64(r.baseSeq) + 1
}

// block makes the reception report for the next RTCP packet and starts a new interval.
func (r *rxStats) block(now time.Time) (rtcp.ReceptionReport, bool) {
	if !r.started {
		return rtcp.ReceptionReport{}, false
	}
	expected := r.expectedLocked()
	lost := min(max(expected-int64(r.received), -0x800000), 0x7fffff) // 24-bit signed
	expInt := expected - r.expectedPrior
	recvInt := int64(r.received - r.receivedPrior)
	r.expectedPrior, r.receivedPrior = expected, r.received
	var frac uint8
	if lostInt := expInt - recvInt; expInt > 0 && lostInt > 0 {
		frac = uint8(min(lostInt<<8/expInt, 255))
	}
	var dlsr uint32
	if r.lsr != 0 {
		dlsr = uint32(now.Sub(r.lsrAt).Seconds() * 65536)
	}
	return rtcp.ReceptionReport{
		SSRC:               r.ssrc,
		FractionLost:       frac,
		TotalLost:          uint32(lost) & 0xffffff,
		LastSequenceNumber: r.cycles + uint32(r.maxSeq),
		Jitter:             uint32(r.jitter),
		LastSenderReport:   r.lsr,
		Delay:              dlsr,
	}, true
}

// arrival is now in RTP timestamp units since the stream opened (A.8's clock).
func (r *rtcpSession) arrival(now time.Time) int64 {
	ns := now.Sub(r.epoch).Nanoseconds()
	return ns/1e9*r.clock + ns%1e9*r.clock/1e9
}

// ntpTime is t as a 64-bit NTP timestamp (seconds since 1900, 32.32 fixed point).
func ntpTime(t time.Time) uint64 {
	const unixToNTP = 2208988800
	ns := t.UnixNano()
	sec := uint64(ns/1e9) + unixToNTP
	frac := uint64(ns%1e9) << 32 / 1e9
	return sec<<32 | frac
}

// jitterInterval is a randomised report interval (RFC 3550 §6.3.1).
func jitterInterval(d time.Duration) time.Duration {
	return d/2 + rand.N(d)
}

// pollRTCP takes the peer's reports from the RTCP socket and sends ours when
// one is due. It runs in poll, every rtcpPollEvery.
func (s *Stream) pollRTCP(now time.Time) {
	r := &s.rtcp
	if r.conn == nil {
		return
	}
	if err := r.conn.drain(now, 16, 16, 0, r.onPkt); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("rtcp read", "err", err)
	}
	if r.next.IsZero() {
		r.next = now.Add(jitterInterval(r.interval / 2)) // §6.2: the first report comes after half the interval
	}
	if now.Before(r.next) {
		return
	}
	r.next = now.Add(jitterInterval(r.interval))
	if err := s.sendReport(now, false); err != nil {
		s.log.Debug("rtcp send", "err", err)
	}
}

// rtcpDatagram takes one datagram from the RTCP socket.
func (s *Stream) rtcpDatagram(pkt []byte, from netip.AddrPort, at time.Time) {
	if pkt, ok := s.openRTCP(pkt); ok {
		s.receiveRTCP(pkt, from, at)
	} else {
		s.rtcp.malformed.Add(1)
	}
}

// receiveRTCP takes one compound packet from the peer: its SR for our LSR/DLSR,
// and the report blocks about our SSRC for RTT and the peer's view of our stream.
func (s *Stream) receiveRTCP(pkt []byte, from netip.AddrPort, now time.Time) {
	r := &s.rtcp
	pkts, err := rtcp.Unmarshal(pkt)
	if err != nil {
		r.malformed.Add(1)
		return
	}
	from = unmapAddrPort(from)
	if remote := s.Remote(); remote.IsValid() && from.Addr() != remote.Addr() {
		r.malformed.Add(1) // not our peer
		return
	}
	r.in.Add(1)
	s.tx.mu.Lock()
	ours := s.tx.hdr.SSRC
	s.tx.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.remote = from // symmetric RTCP: answer where reports come from
	blocks := func(reports []rtcp.ReceptionReport) {
		for _, b := range reports {
			if b.SSRC != ours {
				continue
			}
			r.peerFrac = float64(b.FractionLost) / 256
			r.peerLost = int32(b.TotalLost<<8) >> 8 // sign-extend 24 bits
			if r.clock > 0 {
				r.peerJitter = time.Duration(int64(b.Jitter) * int64(time.Second) / r.clock)
			}
			if b.LastSenderReport == 0 {
				continue
			}
			// §6.4.1: RTT = A − LSR − DLSR, in 1/65536 s of the NTP middle 32 bits.
			// On a LAN the peer's rounding of DLSR can exceed the true round trip:
			// up to rttSlack below zero counts as the smallest measurable RTT.
			a := uint32(ntpTime(now) >> 16)
			if rtt := int64(int32(a - b.LastSenderReport - b.Delay)); rtt > -rttSlack && rtt < 60*65536 {
				r.rtt = time.Duration(max(rtt, 1) * int64(time.Second) / 65536)
			}
		}
	}
	for _, p := range pkts {
		switch p := p.(type) {
		case *rtcp.SenderReport:
			r.rx.noteSR(p.SSRC, p.NTPTime, now)
			blocks(p.Reports)
		case *rtcp.ReceiverReport:
			blocks(p.Reports)
		}
	}
}

// noteSR keeps the source's last SR time for LSR/DLSR in our next report.
func (r *rxStats) noteSR(ssrc uint32, ntp uint64, now time.Time) {
	if r.started && ssrc == r.ssrc {
		r.lsr, r.lsrAt = uint32(ntp>>16), now
	}
}

// sendReport sends SR (if we sent RTP since the last report) or RR, with SDES
// CNAME, and BYE when the stream is closing.
func (s *Stream) sendReport(now time.Time, bye bool) error {
	r := &s.rtcp
	pkt, err := s.buildReport(now, bye)
	if err != nil || pkt == nil {
		return err
	}
	r.mu.Lock()
	to := r.remote
	r.mu.Unlock()
	if !to.IsValid() {
		rtp := s.Remote()
		if !rtp.IsValid() || rtp.Port() == 0 || rtp.Port() == 65535 {
			return nil // nowhere to send yet
		}
		to = netip.AddrPortFrom(rtp.Addr(), rtp.Port()+1)
	}
	r.txMu.Lock()
	err = r.conn.sendTo(pkt, to)
	r.txMu.Unlock()
	if err != nil {
		return err
	}
	r.out.Add(1)
	return nil
}

// buildReport marshals the compound RTCP packet of §6.1 for now.
func (s *Stream) buildReport(now time.Time, bye bool) ([]byte, error) {
	r := &s.rtcp
	r.sendMu.Lock()
	defer r.sendMu.Unlock()
	t := &s.tx
	t.mu.Lock()
	ssrc := t.hdr.SSRC
	sr := t.report
	t.mu.Unlock()
	sent := s.stats.packetsOut.Load()

	var reports []rtcp.ReceptionReport
	if b, ok := r.rx.block(now); ok {
		reports = append(reports, b)
	}
	var first rtcp.Packet
	if sent > r.lastOut && !sr.lastAt.IsZero() {
		ts := sr.lastTS + uint32(now.Sub(sr.lastAt).Seconds()*float64(r.clock)) // the RTP clock, extrapolated to now
		first = &rtcp.SenderReport{SSRC: ssrc, NTPTime: ntpTime(now), RTPTime: ts,
			PacketCount: uint32(sent), OctetCount: uint32(sr.octets), Reports: reports}
	} else {
		first = &rtcp.ReceiverReport{SSRC: ssrc, Reports: reports}
	}
	r.lastOut = sent
	pkts := []rtcp.Packet{first, rtcp.NewCNAMESourceDescription(ssrc, r.cname)}
	if bye {
		pkts = append(pkts, &rtcp.Goodbye{Sources: []uint32{ssrc}})
	}
	return s.secureRTCP(rtcp.Marshal(pkts))
}

// closeRTCP sends a final report with BYE and closes the RTCP socket.
func (s *Stream) closeRTCP() {
	r := &s.rtcp
	if r.conn == nil {
		return
	}
	if err := s.sendReport(time.Now(), true); err != nil {
		s.log.Debug("rtcp bye", "err", err)
	}
	r.conn.Close()
}

// rtcpStats adds the RTCP-derived figures to st.
func (s *Stream) rtcpStats(st *Stats) {
	r := &s.rtcp
	s.mu.Lock() // rxStats is the poll's, under the stream's lock
	if r.rx.started {
		exp := r.rx.expectedLocked()
		st.Expected = uint64(max(exp, 0))
		st.NetworkLost = uint64(max(exp-int64(r.rx.received), 0))
		if r.clock > 0 {
			st.Jitter = time.Duration(r.rx.jitter * float64(time.Second) / float64(r.clock))
		}
	}
	s.mu.Unlock()
	r.mu.Lock()
	st.RTT = r.rtt
	st.PeerFractionLost = r.peerFrac
	st.PeerLost = r.peerLost
	st.PeerJitter = r.peerJitter
	r.mu.Unlock()
	st.RTCPIn = r.in.Load()
	st.RTCPOut = r.out.Load()
	st.Malformed += r.malformed.Load() // unusable RTCP counts with unusable RTP
}

// startRTCP binds the odd port above the stream's RTP port; poll serves it.
// Without that port the call still works, without reports.
func (s *Stream) startRTCP(p *PortPool, clock uint32) {
	s.rtcp.init(clock)
	conn, err := p.listenRTCP(s.port)
	if err != nil {
		s.log.Warn("rtcp port unavailable; no RTCP on this call", "port", s.port+1, "err", err)
		return
	}
	s.rtcp.conn = conn
	s.rtcp.onPkt = s.rtcpDatagram
}
