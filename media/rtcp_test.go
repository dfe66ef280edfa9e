package media

import (
	"math"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtcp"
)

// parseCompound unmarshals one of our reports and checks it is a valid compound
// packet (§6.1: SR or RR first, SDES with a CNAME).
func parseCompound(t *testing.T, pkt []byte) []rtcp.Packet {
	t.Helper()
	pkts, err := rtcp.Unmarshal(pkt)
	if err != nil {
		t.Fatalf("pion/rtcp cannot parse our report: %v", err)
	}
	if len(pkts) < 2 {
		t.Fatalf("compound packet has %d packets, want report + SDES", len(pkts))
	}
	sdes, ok := pkts[1].(*rtcp.SourceDescription)
	if !ok || len(sdes.Chunks) != 1 || len(sdes.Chunks[0].Items) == 0 || sdes.Chunks[0].Items[0].Type != rtcp.SDESCNAME || sdes.Chunks[0].Items[0].Text == "" {
		t.Fatalf("second packet is %T %+v, want SDES with CNAME", pkts[1], pkts[1])
	}
	return pkts
}

// Our SR carries the packets and payload octets we sent; the receiver's RR
// carries our SSRC, the highest sequence number, and the loss it saw.
func TestRTCPReportsCarryCounts(t *testing.T) {
	pool := newTestPool(t, 46600)
	b := openStream(t, pool, StreamConfig{Codec: PCMU})
	a := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: b.LocalAddr()})

	frame := make([]int16, 160)
	const sent = 50
	for range sent {
		if err := a.WriteFrame(frame, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all RTP at b", func() bool { return b.Stats().PacketsIn == sent })

	pkt, err := a.buildReport(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	pkts := parseCompound(t, pkt)
	sr, ok := pkts[0].(*rtcp.SenderReport)
	if !ok {
		t.Fatalf("a sent RTP but its report is %T, want SR", pkts[0])
	}
	a.tx.mu.Lock()
	aSSRC, nextSeq := a.tx.hdr.SSRC, a.tx.hdr.SequenceNumber
	a.tx.mu.Unlock()
	if sr.SSRC != aSSRC || sr.PacketCount != sent || sr.OctetCount != sent*160 {
		t.Fatalf("SR ssrc %x packets %d octets %d, want %x %d %d", sr.SSRC, sr.PacketCount, sr.OctetCount, aSSRC, sent, sent*160)
	}
	if d := time.Duration(ntpTime(time.Now())-sr.NTPTime) * time.Second >> 32; d < 0 || d > time.Second {
		t.Fatalf("SR NTP time is %v off now", d)
	}

	pkt, err = b.buildReport(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	rr, ok := parseCompound(t, pkt)[0].(*rtcp.ReceiverReport)
	if !ok {
		t.Fatalf("b sent no RTP but its report is %T, want RR", pkts[0])
	}
	if len(rr.Reports) != 1 {
		t.Fatalf("RR has %d report blocks, want 1", len(rr.Reports))
	}
	blk := rr.Reports[0]
	if blk.SSRC != aSSRC || blk.TotalLost != 0 || blk.FractionLost != 0 || uint16(blk.LastSequenceNumber) != nextSeq-1 {
		t.Fatalf("report block %+v, want ssrc %x, no loss, highest seq %d", blk, aSSRC, nextSeq-1)
	}
	if st := b.Stats(); st.Expected != sent || st.NetworkLost != 0 {
		t.Fatalf("b expected %d lost %d, want %d and 0", st.Expected, st.NetworkLost, sent)
	}
}

// Loss, sequence wrap-around and the interval's fraction lost, from raw RTP.
func TestRTCPLossAcrossWrap(t *testing.T) {
	pool := newTestPool(t, 46700)
	s := openStream(t, pool, StreamConfig{Codec: PCMU})
	peer := udpPeer(t)
	send := func(seq uint16) {
		if _, err := peer.WriteToUDPAddrPort(rtpPacket(t, 0, seq, uint32(seq)*160, 0xabc, make([]byte, 160)), s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	// 65526 … 9 is 20 packets across the wrap; 4 of them never come.
	n := 0
	for i := range 20 {
		seq := uint16(65526 + i)
		if seq == 65530 || seq == 2 || seq == 3 || seq == 7 {
			continue
		}
		send(seq)
		n++
	}
	waitFor(t, "RTP in", func() bool { return s.Stats().PacketsIn == uint64(n) })
	pkt, err := s.buildReport(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	blk := parseCompound(t, pkt)[0].(*rtcp.ReceiverReport).Reports[0]
	if blk.TotalLost != 4 || blk.LastSequenceNumber != 1<<16+9 || blk.FractionLost != 4*256/20 {
		t.Fatalf("block %+v, want 4 lost, highest seq %d, fraction %d/256", blk, 1<<16+9, 4*256/20)
	}
	if st := s.Stats(); st.Expected != 20 || st.NetworkLost != 4 {
		t.Fatalf("stats expected %d lost %d, want 20 and 4", st.Expected, st.NetworkLost)
	}
	// The next interval: 10 more, none lost, so fraction 0 while the total stays.
	for i := range 10 {
		send(uint16(10 + i))
	}
	waitFor(t, "RTP in", func() bool { return s.Stats().PacketsIn == uint64(n+10) })
	pkt, _ = s.buildReport(time.Now(), false)
	blk = parseCompound(t, pkt)[0].(*rtcp.ReceiverReport).Reports[0]
	if blk.TotalLost != 4 || blk.FractionLost != 0 {
		t.Fatalf("second block %+v, want 4 lost in total and fraction 0", blk)
	}
}

// A.8 jitter: packets every 20 ms whose arrival alternates 10 ms late and on
// time converge on 10 ms of jitter.
func TestInterarrivalJitter(t *testing.T) {
	var r rxStats
	const clock = 8000
	for i := range 500 {
		arrival := int64(i) * 160
		if i%2 == 1 {
			arrival += 80 // 10 ms at 8 kHz
		}
		r.update(1, uint16(i), uint32(i*160)+12345, arrival, true)
	}
	got := time.Duration(r.jitter * float64(time.Second) / clock)
	if got < 9*time.Millisecond || got > 11*time.Millisecond {
		t.Fatalf("jitter %v, want 10 ms", got)
	}
	// A steady stream has none.
	r = rxStats{}
	for i := range 100 {
		r.update(2, uint16(i), uint32(i*160), int64(i)*160+999, true)
	}
	if r.jitter != 0 {
		t.Fatalf("jitter of a steady stream %v, want 0", r.jitter)
	}
}

// The peer's RR answering our SR gives the round trip: a peer that holds our SR
// for 150 ms and says it held it 50 ms is 100 ms away.
func TestRTTFromPeerReport(t *testing.T) {
	pool := newTestPool(t, 46800)
	peer := udpPeer(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: addrOf(peer)})
	for range 10 {
		if err := s.WriteFrame(make([]int16, 160), false); err != nil {
			t.Fatal(err)
		}
	}
	pkt, err := s.buildReport(time.Now(), false)
	if err != nil {
		t.Fatal(err)
	}
	sr := parseCompound(t, pkt)[0].(*rtcp.SenderReport)
	lsr := uint32(sr.NTPTime >> 16)

	time.Sleep(150 * time.Millisecond)
	reply, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 0x5eed, Reports: []rtcp.ReceptionReport{{
		SSRC: sr.SSRC, FractionLost: 64, TotalLost: 3, LastSequenceNumber: 10, Jitter: 40,
		LastSenderReport: lsr, Delay: 65536 / 20, // 50 ms
	}}}})
	if err != nil {
		t.Fatal(err)
	}
	// Sent from the peer's RTP socket: our reports must then follow it there.
	rtcpAddr := netip.AddrPortFrom(s.LocalAddr().Addr(), s.LocalAddr().Port()+1)
	if _, err := peer.WriteToUDPAddrPort(reply, rtcpAddr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the RR", func() bool { return s.Stats().RTCPIn == 1 })
	st := s.Stats()
	if st.RTT < 95*time.Millisecond || st.RTT > 140*time.Millisecond {
		t.Fatalf("RTT %v, want about 100 ms", st.RTT)
	}
	if st.PeerFractionLost != 0.25 || st.PeerLost != 3 || st.PeerJitter != 5*time.Millisecond {
		t.Fatalf("peer view %v %d %v, want 0.25, 3, 5ms", st.PeerFractionLost, st.PeerLost, st.PeerJitter)
	}
	// Our next report goes where the peer's RTCP came from.
	if err := s.sendReport(time.Now(), false); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 1500)
	for {
		n, err := peer.Read(buf)
		if err != nil {
			t.Fatalf("no report at the peer's RTCP source: %v", err)
		}
		if buf[0]>>6 == 2 && buf[1] >= 200 && buf[1] <= 204 { // RTCP, not our RTP
			parseCompound(t, buf[:n])
			break
		}
	}
	t.Logf("RTT %v from a report held 150 ms with DLSR 50 ms", st.RTT)

	// A peer whose DLSR overstates its hold by a few ms (coarse clocks) on a
	// LAN still gives a (minimal) RTT; one 1 s off is rejected.
	for _, c := range []struct {
		over time.Duration
		want bool
	}{{3 * time.Millisecond, true}, {time.Second, false}} {
		s.rtcp.mu.Lock()
		s.rtcp.rtt = 0
		s.rtcp.mu.Unlock()
		pkt, _ := s.buildReport(time.Now(), false)
		sr, ok := parseCompound(t, pkt)[0].(*rtcp.SenderReport)
		if !ok {
			s.WriteFrame(make([]int16, 160), false)
			pkt, _ = s.buildReport(time.Now(), false)
			sr = parseCompound(t, pkt)[0].(*rtcp.SenderReport)
		}
		time.Sleep(20 * time.Millisecond)
		held := 20*time.Millisecond + c.over
		reply, _ := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 0x5eed, Reports: []rtcp.ReceptionReport{{
			SSRC: sr.SSRC, LastSenderReport: uint32(sr.NTPTime >> 16), Delay: uint32(held * 65536 / time.Second),
		}}}})
		in := s.Stats().RTCPIn
		peer.WriteToUDPAddrPort(reply, rtcpAddr)
		waitFor(t, "the RR", func() bool { return s.Stats().RTCPIn == in+1 })
		if got := s.Stats().RTT; (got > 0) != c.want || got > time.Millisecond {
			t.Errorf("DLSR %v over the hold: RTT %v, want known=%v and tiny", c.over, got, c.want)
		}
	}
}

// Two streams talking to each other exchange reports on their own timer and
// each learns the (loopback) round trip.
func TestRTCPBetweenStreams(t *testing.T) {
	old := rtcpInterval
	rtcpInterval = 200 * time.Millisecond
	defer func() { rtcpInterval = old }()
	pool := newTestPool(t, 46900)
	a := openStream(t, pool, StreamConfig{Codec: PCMA})
	b := openStream(t, pool, StreamConfig{Codec: PCMA, Remote: a.LocalAddr()})
	a.SetRemote(b.LocalAddr())

	frame := make([]int16, 160)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for range tick.C {
		a.WriteFrame(frame, false)
		b.WriteFrame(frame, false)
		if sa, sb := a.Stats(), b.Stats(); sa.RTT > 0 && sb.RTT > 0 && sa.RTCPIn >= 2 && sb.RTCPIn >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no RTT after 5 s: a %+v b %+v", a.Stats(), b.Stats())
		}
	}
	for _, s := range []*Stream{a, b} {
		st := s.Stats()
		if st.RTT > 50*time.Millisecond || st.Jitter > 20*time.Millisecond || st.NetworkLost != 0 || st.PeerLost != 0 {
			t.Fatalf("loopback stats %+v: want RTT and jitter near 0, no loss", st)
		}
		t.Logf("rtt %v jitter %v rtcp in %d out %d", st.RTT, st.Jitter, st.RTCPIn, st.RTCPOut)
	}
}

func TestReportIntervalIsRandomised(t *testing.T) {
	lo, hi := time.Hour, time.Duration(0)
	for range 1000 {
		d := jitterInterval(5 * time.Second)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 2500*time.Millisecond || hi >= 7500*time.Millisecond || hi-lo < 4*time.Second {
		t.Fatalf("intervals span [%v, %v], want across [2.5 s, 7.5 s)", lo, hi)
	}
}

func TestNTPTime(t *testing.T) {
	at := time.Date(2024, 1, 2, 3, 4, 5, 500_000_000, time.UTC)
	n := ntpTime(at)
	if sec := n >> 32; sec != uint64(at.Unix())+2208988800 {
		t.Fatalf("NTP seconds %d", sec)
	}
	if frac := float64(uint32(n)) / (1 << 32); math.Abs(frac-0.5) > 1e-9 {
		t.Fatalf("NTP fraction %v, want 0.5", frac)
	}
}

// The per-packet cost of RFC 3550 receiver statistics on the receive path.
func BenchmarkRTCPReceiverUpdate(b *testing.B) {
	var r rxStats
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		r.update(1, uint16(i), uint32(i*160), int64(i*160+i%7), true)
		i++
	}
}
