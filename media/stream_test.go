package media

import (
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

// Each test takes its own port range so that tests of other packages running at the
// same time do not collide; a busy port is skipped by the pool anyway.
func newTestPool(t *testing.T, min int) *PortPool {
	t.Helper()
	pool, err := NewPortPool(loopback, min, min+48)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if n := pool.InUse(); n != 0 {
			t.Errorf("%d ports still in use: a Stream leaked", n)
		}
	})
	return pool
}

func openStream(t *testing.T, pool *PortPool, cfg StreamConfig) *Stream {
	t.Helper()
	s, err := pool.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	keepPolling(t, s)
	return s
}

// keepPolling stands in for the call's clock: it polls s every 2 ms, as the
// bridge's frame clock does before each read, until the test ends.
func keepPolling(t testing.TB, s *Stream) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				pollNow(s)
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
}

// waitFor polls cond for up to 2 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// udpPeer is a plain socket standing in for a remote party.
func udpPeer(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func rtpPacket(t *testing.T, pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLoopbackTone(t *testing.T) {
	for i, codec := range []Codec{PCMU, PCMA} {
		t.Run(codec.Name, func(t *testing.T) {
			pool := newTestPool(t, 47400+100*i)
			a := openStream(t, pool, StreamConfig{Codec: codec})
			b := openStream(t, pool, StreamConfig{Codec: codec, Remote: a.LocalAddr()})
			a.setRemote(b.LocalAddr()) // as if from b's SDP

			const frames = 25
			tone := pcm.Tone(1000, 8000, frames*160, 0.5)
			for f := range frames {
				if err := a.WriteFrame(tone[f*160:(f+1)*160], f == 0); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "all packets", func() bool { return b.Stats().PacketsIn == frames })

			var got []int16
			frame := make([]int16, 160)
			for f := range frames {
				if !b.ReadFrame(frame) {
					t.Fatalf("frame %d: nothing due", f)
				}
				got = append(got, frame...)
			}
			if b.ReadFrame(frame) || slices.ContainsFunc(frame, func(v int16) bool { return v != 0 }) {
				t.Error("ReadFrame past the end returned audio")
			}
			if f := pcm.DominantFrequency(got, 8000); f != 1000 {
				t.Errorf("dominant frequency %v Hz, want 1000", f)
			}
			if d := pcm.LevelDB(got) - pcm.LevelDB(tone); math.Abs(d) > 0.5 {
				t.Errorf("level changed by %.2f dB", d)
			}
			if sampleError(got, tone) > 0.05 { // G.711 is about 34 dB SNR here: 2%
				t.Errorf("received audio differs from the sent tone by %.1f%%", 100*sampleError(got, tone))
			}
			st := b.Stats()
			if st.Lost+st.Late+st.Duplicate+st.Malformed != 0 || st.BytesIn != frames*(12+160) {
				t.Errorf("receiver stats %+v", st)
			}
			if st := a.Stats(); st.PacketsOut != frames || st.BytesOut != frames*(12+160) {
				t.Errorf("sender stats %+v", st)
			}
			// b latched a's socket, so it can answer without an SDP address.
			if b.Remote() != a.LocalAddr() {
				t.Errorf("b sends to %v, want %v", b.Remote(), a.LocalAddr())
			}
		})
	}
}

// sampleError is the RMS difference relative to the RMS of want.
func sampleError(got, want []int16) float64 {
	var d, w float64
	for i := range want {
		e := float64(got[i]) - float64(want[i])
		d += e * e
		w += float64(want[i]) * float64(want[i])
	}
	return math.Sqrt(d / w)
}

// Both sides on a real 20 ms clock, as the bridge runs them.
func TestLoopbackPaced(t *testing.T) {
	if testing.Short() {
		t.Skip("real-time test")
	}
	pool := newTestPool(t, 47600)
	a := openStream(t, pool, StreamConfig{Codec: PCMU})
	b := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: a.LocalAddr()})
	a.setRemote(b.LocalAddr())
	tone := pcm.Tone(1000, 8000, 160, 0.5) // 1 kHz is a whole number of cycles per frame
	frame := make([]int16, 160)
	tick := time.NewTicker(pcm.FrameDuration)
	defer tick.Stop()
	var got []int16
	for range 50 {
		<-tick.C
		if err := a.WriteFrame(tone, false); err != nil {
			t.Fatal(err)
		}
		if b.ReadFrame(frame) {
			got = append(got, frame...)
		}
	}
	if len(got) < 40*160 {
		t.Errorf("got %d frames of 50", len(got)/160)
	}
	if f := pcm.DominantFrequency(got, 8000); f != 1000 {
		t.Errorf("dominant frequency %v, want 1000", f)
	}
}

func TestGarbageIsCountedAndHarmless(t *testing.T) {
	pool := newTestPool(t, 47700)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: 101})
	junk := udpPeer(t)
	rng := rand.New(rand.NewPCG(7, 7))

	var garbage [][]byte
	for range 200 { // random bytes, never RTP version 2
		b := make([]byte, rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if len(b) > 0 && b[0]>>6 == 2 {
			b[0] ^= 0x40
		}
		garbage = append(garbage, b)
	}
	for n := range 12 { // too short, including empty
		garbage = append(garbage, []byte{0x80, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}[:n])
	}
	v1 := rtpPacket(t, 0, 1, 160, 42, make([]byte, 160))
	v1[0] = v1[0]&^0xC0 | 0x40
	csrcPastEnd := rtpPacket(t, 0, 1, 160, 42, nil)
	csrcPastEnd[0] |= 0x0F // 15 CSRCs announced, none present
	extPastEnd := rtpPacket(t, 0, 1, 160, 42, []byte{0xBE, 0xDE, 0xFF, 0xFF})
	extPastEnd[0] |= 0x10 // extension header claiming 256 KiB
	padPastEnd := rtpPacket(t, 0, 1, 160, 42, []byte{1, 2, 200})
	padPastEnd[0] |= 0x20
	garbage = append(garbage,
		v1, csrcPastEnd, extPastEnd, padPastEnd,
		rtpPacket(t, 99, 1, 160, 42, make([]byte, 160)), // payload type not negotiated
		rtpPacket(t, 8, 1, 160, 42, make([]byte, 160)),  // PCMA on a PCMU stream
	)
	for _, g := range garbage {
		if _, err := junk.WriteToUDPAddrPort(g, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "every datagram counted", func() bool { return s.Stats().Malformed == uint64(len(garbage)) })
	if st := s.Stats(); st.PacketsIn != 0 || s.Remote().IsValid() {
		t.Fatalf("garbage was taken as RTP: %+v, latched to %v", st, s.Remote())
	}
	select {
	case <-s.Done():
		t.Fatal("stream ended on garbage")
	default:
	}

	// Real RTP still flows, and latches its own source, not the garbage's.
	peer := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: s.LocalAddr()})
	tone := pcm.Tone(1000, 8000, 5*160, 0.5)
	for f := range 5 {
		if err := peer.WriteFrame(tone[f*160:(f+1)*160], false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "real RTP", func() bool { return s.Stats().PacketsIn == 5 })
	if s.Remote() != peer.LocalAddr() {
		t.Errorf("latched %v, want %v", s.Remote(), peer.LocalAddr())
	}
	frame := make([]int16, 160)
	if !s.ReadFrame(frame) || pcm.DominantFrequency(frame, 8000) != 1000 {
		t.Error("no 1 kHz audio after the garbage")
	}
}

// Arbitrary datagrams straight into the parser: no panic, whatever the bytes.
func FuzzReceive(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42, 0xff, 0xff})
	f.Add([]byte{0xBF, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42})
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 42, 0xBE, 0xDE, 0, 1, 0x10, 0xAA, 0, 0})
	pool, err := NewPortPool(loopback, 47900, 47910)
	if err != nil {
		f.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMU, DTMFPayloadType: 101})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	from := netip.MustParseAddrPort("127.0.0.1:9")
	frame := make([]int16, 160)
	f.Fuzz(func(t *testing.T, b []byte) {
		deliver(s, b, from, time.Now())
		s.ReadFrame(frame)
	})
}

func TestMediaTimeout(t *testing.T) {
	pool := newTestPool(t, 48000)
	const timeout = 150 * time.Millisecond

	quiet := openStream(t, pool, StreamConfig{Codec: PCMU, Timeout: timeout})
	start := time.Now()
	select {
	case <-quiet.Done():
		if el := time.Since(start); el < timeout {
			t.Errorf("timed out after %v, before the %v timeout", el, timeout)
		}
		if err := quiet.Err(); !errors.Is(err, ErrMediaTimeout) {
			t.Errorf("Err = %v, want ErrMediaTimeout", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no timeout without RTP")
	}

	// RTP every 20 ms keeps a stream alive; garbage does not.
	live := openStream(t, pool, StreamConfig{Codec: PCMU, Timeout: timeout})
	peer := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: live.LocalAddr()})
	junk := udpPeer(t)
	frame := make([]int16, 160)
	for range 20 {
		peer.WriteFrame(frame, false)
		junk.WriteToUDPAddrPort([]byte("not rtp"), live.LocalAddr())
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-live.Done():
		t.Fatalf("timed out while RTP was flowing: %v", live.Err())
	default:
	}
	if live.Err() != nil {
		t.Errorf("Err = %v while running", live.Err())
	}
	stop := time.Now()
	for range 10 { // garbage alone must not keep it alive
		junk.WriteToUDPAddrPort([]byte("not rtp"), live.LocalAddr())
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-live.Done():
		if el := time.Since(stop); el < timeout-20*time.Millisecond {
			t.Errorf("timed out %v after RTP stopped, want about %v", el, timeout)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no timeout after RTP stopped")
	}
	live.Close()
	if !errors.Is(live.Err(), ErrMediaTimeout) {
		t.Errorf("Close changed Err to %v", live.Err())
	}

	// Timeout 0 never fires; Close ends the stream instead.
	never := openStream(t, pool, StreamConfig{Codec: PCMU})
	time.Sleep(2 * timeout)
	if never.Err() != nil {
		t.Fatalf("Err = %v with no timeout set", never.Err())
	}
	never.Close()
	<-never.Done()
	if !errors.Is(never.Err(), ErrStreamClosed) {
		t.Errorf("Err after Close = %v, want ErrStreamClosed", never.Err())
	}
}

func TestWriteFramePackets(t *testing.T) {
	pool := newTestPool(t, 48100)
	raw := udpPeer(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMA, Remote: addrOf(raw)})
	frame := pcm.Tone(440, 8000, 160, 0.3)
	for i := range 4 {
		if err := s.WriteFrame(frame, i == 0); err != nil {
			t.Fatal(err)
		}
	}
	var pkts []rtp.Packet
	buf := make([]byte, 1500)
	raw.SetReadDeadline(time.Now().Add(2 * time.Second))
	for range 4 {
		n, from, err := raw.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatal(err)
		}
		if from != s.LocalAddr() {
			t.Errorf("packet from %v, want the stream's port %v (symmetric RTP)", from, s.LocalAddr())
		}
		var p rtp.Packet
		if err := p.Unmarshal(slices.Clone(buf[:n])); err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	for i, p := range pkts {
		h := p.Header
		if h.Version != 2 || h.PayloadType != PCMA.PayloadType || len(p.Payload) != 160 || h.Marker != (i == 0) {
			t.Errorf("packet %d: version %d PT %d marker %v, %d bytes", i, h.Version, h.PayloadType, h.Marker, len(p.Payload))
		}
		if h.SSRC != pkts[0].SSRC || h.SequenceNumber != pkts[0].SequenceNumber+uint16(i) || h.Timestamp != pkts[0].Timestamp+uint32(160*i) {
			t.Errorf("packet %d: SSRC %#x seq %d ts %d after SSRC %#x seq %d ts %d",
				i, h.SSRC, h.SequenceNumber, h.Timestamp, pkts[0].SSRC, pkts[0].SequenceNumber, pkts[0].Timestamp)
		}
	}

	for _, bad := range [][]int16{nil, make([]int16, maxFrameSamples+1)} {
		if err := s.WriteFrame(bad, false); !errors.Is(err, ErrFrameSize) {
			t.Errorf("WriteFrame(%d samples): err = %v, want ErrFrameSize", len(bad), err)
		}
	}
	s.Close()
	if err := s.WriteFrame(frame, false); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("WriteFrame after Close: err = %v, want ErrStreamClosed", err)
	}
	if s.Close() != nil {
		t.Error("second Close returned an error")
	}

	nowhere := openStream(t, pool, StreamConfig{Codec: PCMU})
	if err := nowhere.WriteFrame(frame, false); !errors.Is(err, ErrNoRemote) {
		t.Errorf("WriteFrame with no remote: err = %v, want ErrNoRemote", err)
	}
}

func TestLatching(t *testing.T) {
	pool := newTestPool(t, 48200)
	sdp := netip.MustParseAddrPort("127.0.0.1:9") // what the SDP said; RTP comes from elsewhere (NAT)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: sdp})
	if s.Remote() != sdp {
		t.Fatalf("before RTP, sending to %v, want the SDP address %v", s.Remote(), sdp)
	}
	first, second, third := udpPeer(t), udpPeer(t), udpPeer(t)
	payload := make([]byte, 160)
	send := func(c *net.UDPConn, seq uint16, ssrc uint32) {
		t.Helper()
		if _, err := c.WriteToUDPAddrPort(rtpPacket(t, 0, seq, uint32(seq)*160, ssrc, payload), s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(first, 1, 0xAAAA)
	waitFor(t, "latch", func() bool { return s.Remote() == addrOf(first) })

	send(second, 2, 0xBBBB) // another source while the first is live: ignored
	waitFor(t, "foreign packet", func() bool { return s.Stats().Foreign == 1 })
	if s.Remote() != addrOf(first) {
		t.Errorf("a second SSRC stole the latch: sending to %v", s.Remote())
	}

	send(second, 2, 0xAAAA) // the same SSRC from a new port: NAT rebinding
	waitFor(t, "re-latch on rebinding", func() bool { return s.Remote() == addrOf(second) })

	time.Sleep(relatchQuiet + 50*time.Millisecond) // the source went quiet; a new one may take over
	send(third, 100, 0xCCCC)
	waitFor(t, "re-latch after quiet", func() bool { return s.Remote() == addrOf(third) })
	if st := s.Stats(); st.PacketsIn != 3 || st.Foreign != 1 {
		t.Errorf("stats %+v", st)
	}
}

// A new SSRC (the far end restarted its stream) starts a fresh sequence; its packets
// must not be taken as late or lost against the old one.
func TestNewSSRCResetsReorder(t *testing.T) {
	pool := newTestPool(t, 48300)
	s := openStream(t, pool, StreamConfig{Codec: PCMU})
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	payload := make([]byte, 160)
	now := time.Now()
	for i := range 3 {
		deliver(s, rtpPacket(t, 0, uint16(30000+i), 0, 1, payload), from, now)
	}
	frame := make([]int16, 160)
	s.ReadFrame(frame)
	for i := range 3 {
		deliver(s, rtpPacket(t, 0, uint16(10+i), 0, 2, payload), from, now)
	}
	for i := range 3 {
		if !s.ReadFrame(frame) {
			t.Fatalf("frame %d of the new SSRC not played", i)
		}
	}
	if st := s.Stats(); st.Late+st.Lost+st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// Packets of 30 ms still come out as 20 ms frames.
func TestReadFrameOtherPtime(t *testing.T) {
	pool := newTestPool(t, 48400)
	s := openStream(t, pool, StreamConfig{Codec: PCMU})
	impl, _ := newCodec(PCMU)
	tone := pcm.Tone(1000, 8000, 240*6, 0.5)
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	for i := range 6 {
		payload := make([]byte, 240)
		impl.Encode(payload, tone[240*i:240*(i+1)])
		deliver(s, rtpPacket(t, 0, uint16(i), uint32(240*i), 9, payload), from, time.Now())
	}
	var got []int16
	frame := make([]int16, 160)
	for s.ReadFrame(frame) {
		got = append(got, frame...)
	}
	if len(got) != len(tone) {
		t.Fatalf("got %d samples, want %d", len(got), len(tone))
	}
	if e := sampleError(got, tone); e > 0.05 {
		t.Errorf("audio differs by %.1f%%", 100*e)
	}
}

// deliver hands s one datagram as its poll would, serialised with the
// background poll of keepPolling.
func deliver(s *Stream, pkt []byte, from netip.AddrPort, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.receive(pkt, from, at)
}

// pollNow polls s as its reading clock would.
func pollNow(s *Stream) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.poll(time.Now())
}
