package media

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/switchboard-voip/switchboard/media/pcm"
)

const testDTMFPT = 101

// ev is one telephone-event packet as a sender puts it on the wire.
type ev struct {
	seq    uint16
	ts     uint32
	code   uint8
	end    bool
	dur    uint16
	marker bool
	ssrc   uint32 // 0: the default test SSRC
}

func (e ev) packet(t testing.TB) []byte {
	payload := []byte{e.code, dtmfVolume, 0, 0}
	if e.end {
		payload[1] |= 0x80
	}
	binary.BigEndian.PutUint16(payload[2:], e.dur)
	ssrc := e.ssrc
	if ssrc == 0 {
		ssrc = 0x0e05384e
	}
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: testDTMFPT, Marker: e.marker,
		SequenceNumber: e.seq, Timestamp: e.ts, SSRC: ssrc}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// press is a conformant key press as the sipp pcaps carry it: marker on the
// first packet, an update every 20 ms, the end packet three times (with the
// same sequence number there).
func press(seq uint16, ts uint32, code uint8, updates int, marker bool) []ev {
	var out []ev
	for i := range updates {
		out = append(out, ev{seq: seq + uint16(i), ts: ts, code: code, dur: uint16(i * 160), marker: marker && i == 0})
	}
	end := ev{seq: seq + uint16(updates), ts: ts, code: code, end: true, dur: uint16(updates * 160)}
	return append(out, end, end, end)
}

func concat(parts ...[]ev) []ev {
	var out []ev
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func dupEach(in []ev) []ev {
	var out []ev
	for _, e := range in {
		out = append(out, e, e)
	}
	return out
}

// received drains the stream's digits without blocking.
func received(s *Stream) string {
	var got []rune
	for {
		select {
		case e := <-s.DTMF():
			got = append(got, e.Digit)
		default:
			return string(got)
		}
	}
}

func TestDTMFReceive(t *testing.T) {
	five := press(8155, 43200, 5, 8, true)
	one, two := press(100, 1000, 1, 5, true), press(108, 2600, 2, 5, true)
	// The second press's first packets arrive before the first press's end packets.
	reordered := concat(one[:5], two[:2], one[5:], two[2:])
	// A 10 s press of 7 at 8 kHz: the duration field saturates at 0xFFFF and the
	// press continues as a second segment with a new timestamp (RFC 4733 2.5.1.3).
	var long []ev
	seq := uint16(500)
	for d := 160; d < 0xFFFF; d += 160 {
		long = append(long, ev{seq: seq, ts: 5000, code: 7, dur: uint16(d), marker: d == 160})
		seq++
	}
	long = append(long, ev{seq: seq, ts: 5000, code: 7, dur: 0xFFFF}) // segment end, no E bit
	seg1 := len(long)
	for d := 160; d <= 14000; d += 160 {
		seq++
		long = append(long, ev{seq: seq, ts: 5000 + 0xFFFF, code: 7, dur: uint16(d)})
	}
	long = append(long, ev{seq: seq + 1, ts: 5000 + 0xFFFF, code: 7, end: true, dur: 14000})
	// A sender that wrongly stamps every update with the packet's own time.
	var restamped []ev
	for i := range 6 {
		restamped = append(restamped, ev{seq: uint16(900 + i), ts: uint32(9000 + 160*i), code: 3, dur: uint16(160 * (i + 1)), end: i == 5})
	}
	restampedEnds := append(restamped[:len(restamped):len(restamped)],
		ev{seq: 906, ts: 9960, code: 3, dur: 960, end: true}, ev{seq: 907, ts: 10120, code: 3, dur: 960, end: true})
	var all []ev
	for c := range uint8(16) {
		all = append(all, press(uint16(2000+10*int(c)), 100000+uint32(c)*2000, c, 4, true)...)
	}
	ssrcChange := concat(press(10, 90000, 4, 3, true),
		[]ev{{seq: 7000, ts: 1000, code: 6, dur: 160, marker: true, ssrc: 0x1234}, {seq: 7001, ts: 1000, code: 6, end: true, dur: 320, ssrc: 0x1234}})

	for _, tc := range []struct {
		name string
		pkts []ev
		want string
	}{
		{"marker, updates, 3 end packets", five, "5"},
		{"no marker bit at all", press(8155, 43200, 5, 8, false), "5"},
		{"every packet duplicated", dupEach(five), "5"},
		{"end packets with new sequence numbers", concat(five[:8], []ev{{seq: 8163, ts: 43200, code: 5, end: true, dur: 1280}, {seq: 8164, ts: 43200, code: 5, end: true, dur: 1280}}), "5"},
		{"only the end packets arrived", five[8:], "5"},
		{"update before the first packet", concat(five[1:2], five[:1], five[2:]), "5"},
		{"same key twice", concat(press(10, 1000, 5, 5, true), press(18, 2600, 5, 5, true)), "55"},
		{"same key twice, no marker", concat(press(10, 1000, 5, 5, false), press(18, 2600, 5, 5, false)), "55"},
		{"late end packets of the previous press", reordered, "12"},
		{"previous press replayed after the next", concat(one, two, one), "12"},
		{"long press with updates", press(300, 7000, 9, 150, true), "9"},
		{"press longer than the duration field", long, "7"},
		{"sender restamps each update", restamped, "3"},
		{"sender restamps the repeated end packets too", concat(restampedEnds, press(910, 12000, 3, 4, true)), "33"},
		{"every event code", all, "0123456789*#ABCD"},
		{"flash is not a digit", press(40, 3000, 16, 4, true), ""},
		{"late packet of a press three presses back", concat(one, two, press(116, 4200, 3, 5, true), press(124, 5800, 4, 5, true), one[2:3]), "1234"},
		{"timestamps going backwards (separate captures replayed)", concat(press(1, 92640, 11, 8, true), press(20, 17632, 0, 8, true), press(40, 43200, 5, 8, true)), "#05"},
		{"late first segment of a long press", concat(long[:seg1+5], long[100:101], long[seg1+5:]), "7"},
		{"timestamp wrap", concat(press(1, 0xffffff00, 1, 3, true), press(5, 0x00000100, 2, 3, true)), "12"},
		{"new SSRC starts over", ssrcChange, "46"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pool := newTestPool(t, 45000)
			s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT})
			from := netip.MustParseAddrPort("127.0.0.1:5004")
			now := time.Now()
			for _, e := range tc.pkts {
				deliver(s, e.packet(t), from, now)
			}
			if got := received(s); got != tc.want {
				t.Errorf("digits %q, want %q", got, tc.want)
			}
			if st := s.Stats(); st.Malformed != 0 {
				t.Errorf("%d packets counted malformed", st.Malformed)
			}
		})
	}
}

func TestDTMFReceiveIgnoredWithoutNegotiation(t *testing.T) {
	pool := newTestPool(t, 45060)
	s := openStream(t, pool, StreamConfig{Codec: PCMU}) // no telephone-event in SDP
	for _, e := range press(1, 1000, 5, 3, true) {
		deliver(s, e.packet(t), netip.MustParseAddrPort("127.0.0.1:5004"), time.Now())
	}
	if got := received(s); got != "" {
		t.Errorf("digits %q from a payload type never negotiated", got)
	}
}

func TestDTMFReceiveShortPayload(t *testing.T) {
	pool := newTestPool(t, 45120)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT})
	pkt := ev{seq: 1, ts: 1, code: 5}.packet(t)
	deliver(s, pkt[:len(pkt)-1], netip.MustParseAddrPort("127.0.0.1:5004"), time.Now())
	if got := received(s); got != "" {
		t.Errorf("digit %q from a 3-byte payload", got)
	}
}

// sent is one packet as a peer received it.
type sent struct {
	pt     uint8
	seq    uint16
	ts     uint32
	marker bool
	ssrc   uint32
	code   uint8
	end    bool
	dur    uint16
}

func TestDTMFSendPacketSequence(t *testing.T) {
	pool := newTestPool(t, 45180)
	peer := udpPeer(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT, Remote: addrOf(peer)})
	frame := pcm.Tone(1000, 8000, 160, 0.3)
	const slots = 18
	for i := range slots {
		if i == 1 {
			if err := s.SendDTMF("1#"); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.WriteFrame(frame, i == 0); err != nil {
			t.Fatal(err)
		}
	}
	var got []sent
	buf := make([]byte, 1500)
	for {
		wait := 2 * time.Second
		if len(got) >= slots {
			wait = 100 * time.Millisecond // and then nothing more
		}
		peer.SetReadDeadline(time.Now().Add(wait))
		n, err := peer.Read(buf)
		if err != nil {
			break
		}
		var p rtp.Packet
		if err := p.Unmarshal(buf[:n]); err != nil {
			t.Fatal(err)
		}
		g := sent{pt: p.PayloadType, seq: p.SequenceNumber, ts: p.Timestamp, marker: p.Marker, ssrc: p.SSRC}
		if p.PayloadType == testDTMFPT {
			if len(p.Payload) != 4 {
				t.Fatalf("event payload of %d bytes", len(p.Payload))
			}
			g.code, g.end, g.dur = p.Payload[0], p.Payload[1]&0x80 != 0, binary.BigEndian.Uint16(p.Payload[2:])
			if vol := p.Payload[1] & 0x3f; vol != dtmfVolume {
				t.Errorf("volume %d", vol)
			}
		}
		got = append(got, g)
	}
	if len(got) != slots {
		t.Fatalf("%d packets for %d slots, want one per slot", len(got), slots)
	}
	t0, s0, ssrc := got[0].ts, got[0].seq, got[0].ssrc
	// Digit 1 starts with slot 1 and lasts 100 ms = 800 ticks: updates every
	// 20 ms, its end in slot 5 and twice more. Digit # starts 50 ms after the
	// end of 1 (tick 1360 from slot 0), inside slot 8, and ends in slot 13.
	e1, e2 := t0+160, t0+1360
	want := []sent{
		{pt: 0, ts: t0, marker: true},
		{pt: testDTMFPT, ts: e1, marker: true, code: 1, dur: 160},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 320},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 480},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 640},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 800, end: true},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 800, end: true},
		{pt: testDTMFPT, ts: e1, code: 1, dur: 800, end: true},
		{pt: testDTMFPT, ts: e2, marker: true, code: 11, dur: 80},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 240},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 400},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 560},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 720},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 800, end: true},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 800, end: true},
		{pt: testDTMFPT, ts: e2, code: 11, dur: 800, end: true},
		{pt: 0, ts: t0 + 16*160},
		{pt: 0, ts: t0 + 17*160},
	}
	for i, w := range want {
		w.seq, w.ssrc = s0+uint16(i), ssrc
		if got[i] != w {
			t.Errorf("packet %d: got %+v\n            want %+v", i, got[i], w)
		}
	}
}

// TestDTMFSendDecodes loops our sender into our receiver: every digit, once.
func TestDTMFSendDecodes(t *testing.T) {
	pool := newTestPool(t, 45240)
	rx := openStream(t, pool, StreamConfig{Codec: PCMA, DTMFPayloadType: testDTMFPT})
	tx := openStream(t, pool, StreamConfig{Codec: PCMA, DTMFPayloadType: testDTMFPT, Remote: rx.LocalAddr()})
	const digits = "0123456789*#ABCD"
	if err := tx.SendDTMF(digits); err != nil {
		t.Fatal(err)
	}
	frame := make([]int16, 160)
	for range len(digits)*8 + 4 {
		if err := tx.WriteFrame(frame, false); err != nil {
			t.Fatal(err)
		}
	}
	var got []rune
	timeout := time.After(2 * time.Second)
	for len(got) < len(digits) {
		select {
		case e := <-rx.DTMF():
			got = append(got, e.Digit)
		case <-timeout:
			t.Fatalf("got %q, want %q", string(got), digits)
		}
	}
	if string(got) != digits {
		t.Fatalf("got %q, want %q", string(got), digits)
	}
	time.Sleep(50 * time.Millisecond)
	if extra := received(rx); extra != "" {
		t.Errorf("digits counted twice: %q more", extra)
	}
}

// TestDTMFSenderClock checks the schedule at the 48 kHz clock of Opus: the
// telephone-event clock is the codec's.
func TestDTMFSenderClock(t *testing.T) {
	d := dtmfSender{tone: 4800, gap: 2400, queue: []uint8{5, 5}}
	var out [dtmfMaxSlot]dtmfPacket
	type pk struct {
		slot int
		dtmfPacket
	}
	var got []pk
	ts := uint32(0xffffe000) // wraps during the second digit
	for slot := 0; slot < 20 && d.pending(); slot++ {
		n := d.step(ts, 960, &out)
		for _, p := range out[:n] {
			got = append(got, pk{slot, p})
		}
		ts += 960
	}
	start1, start2 := uint32(0xffffe000), uint32(0xffffe000)+4800+2400
	want := []pk{
		{0, dtmfPacket{ts: start1, code: 5, marker: true, dur: 960}},
		{1, dtmfPacket{ts: start1, code: 5, dur: 1920}},
		{2, dtmfPacket{ts: start1, code: 5, dur: 2880}},
		{3, dtmfPacket{ts: start1, code: 5, dur: 3840}},
		{4, dtmfPacket{ts: start1, code: 5, dur: 4800, end: true}},
		{5, dtmfPacket{ts: start1, code: 5, dur: 4800, end: true}},
		{6, dtmfPacket{ts: start1, code: 5, dur: 4800, end: true}},
		// 50 ms after the end is half-way into slot 7.
		{7, dtmfPacket{ts: start2, code: 5, marker: true, dur: 480}},
		{8, dtmfPacket{ts: start2, code: 5, dur: 1440}},
		{9, dtmfPacket{ts: start2, code: 5, dur: 2400}},
		{10, dtmfPacket{ts: start2, code: 5, dur: 3360}},
		{11, dtmfPacket{ts: start2, code: 5, dur: 4320}},
		{12, dtmfPacket{ts: start2, code: 5, dur: 4800, end: true}},
		{13, dtmfPacket{ts: start2, code: 5, dur: 4800, end: true}},
		{14, dtmfPacket{ts: start2, code: 5, dur: 4800, end: true}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d packets, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("packet %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if d.pending() {
		t.Error("sender still pending after the last end packet and gap")
	}
}

// TestDTMFSendLongFrames: with 60 ms packets the end and the next start may
// share a slot; end packets still come three times and events never interleave.
func TestDTMFSendLongFrames(t *testing.T) {
	d := dtmfSender{tone: 800, gap: 400, queue: []uint8{1, 2}}
	var out [dtmfMaxSlot]dtmfPacket
	var got []dtmfPacket
	for ts := uint32(0); d.pending(); ts += 480 {
		n := d.step(ts, 480, &out)
		got = append(got, out[:n]...)
	}
	var codes []uint8
	ends := map[uint8]int{}
	for _, p := range got {
		if len(codes) == 0 || codes[len(codes)-1] != p.code {
			codes = append(codes, p.code)
		}
		if p.end {
			ends[p.code]++
			if p.dur != 800 {
				t.Errorf("end packet duration %d, want 800", p.dur)
			}
		}
	}
	if len(codes) != 2 || ends[1] != 3 || ends[2] != 3 {
		t.Errorf("events %v, end packets %v; packets %+v", codes, ends, got)
	}
	if gap := got[len(got)-1].ts - (got[0].ts + 800); gap < 400 {
		t.Errorf("gap between digits %d ticks, want at least 400", gap)
	}
}

func TestSendDTMFErrors(t *testing.T) {
	pool := newTestPool(t, 45300)
	peer := udpPeer(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT, Remote: addrOf(peer)})
	for _, bad := range []string{"12x", "a", "5 ", "E", "１"} {
		if err := s.SendDTMF(bad); !errors.Is(err, ErrDTMFDigit) {
			t.Errorf("SendDTMF(%q) = %v, want ErrDTMFDigit", bad, err)
		}
	}
	s.tx.mu.Lock()
	queued := len(s.tx.dtmf.queue)
	s.tx.mu.Unlock()
	if queued != 0 {
		t.Errorf("%d digits queued from rejected strings", queued)
	}
	if err := s.SendDTMF("0123456789*#ABCD"); err != nil {
		t.Errorf("valid digits: %v", err)
	}
	long := make([]byte, dtmfMaxQueued)
	for i := range long {
		long[i] = '1'
	}
	if err := s.SendDTMF(string(long)); !errors.Is(err, ErrDTMFBusy) {
		t.Errorf("overfull queue: %v, want ErrDTMFBusy", err)
	}
	none := openStream(t, pool, StreamConfig{Codec: PCMU, Remote: addrOf(peer)})
	if err := none.SendDTMF("1"); !errors.Is(err, ErrNoDTMF) {
		t.Errorf("without telephone-event: %v, want ErrNoDTMF", err)
	}
	s.Close()
	if err := s.SendDTMF("1"); !errors.Is(err, ErrStreamClosed) {
		t.Errorf("after Close: %v, want ErrStreamClosed", err)
	}
}

func TestDTMFZeroAllocs(t *testing.T) {
	pool := newTestPool(t, 45360)
	peer := udpPeer(t)
	s := openStream(t, pool, StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT, Remote: addrOf(peer)})
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	var pkts []ev
	for i := range 64 {
		pkts = append(pkts, press(uint16(i*10), uint32(i*2000), uint8(i%16), 6, i%2 == 0)...)
	}
	raw := make([][]byte, len(pkts))
	for i, e := range pkts {
		raw[i] = e.packet(t)
	}
	deliver(s, raw[0], from, time.Now())
	i := 1
	now := time.Now()
	if a := testing.AllocsPerRun(len(raw)-2, func() {
		deliver(s, raw[i], from, now)
		i++
		if i%40 == 0 { // the bridge drains digits as they come
			for len(s.DTMF()) > 0 {
				<-s.DTMF()
			}
		}
	}); a != 0 {
		t.Errorf("receive: %v allocations per telephone-event packet", a)
	}
	frame := make([]int16, 160)
	if err := s.SendDTMF("123"); err != nil {
		t.Fatal(err)
	}
	if a := testing.AllocsPerRun(20, func() {
		if err := s.WriteFrame(frame, false); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("send: %v allocations per slot while digits play", a)
	}
}

func BenchmarkDTMFReceive(b *testing.B) {
	pool, err := NewPortPool(loopback, 45420, 45429)
	if err != nil {
		b.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	pkt := ev{seq: 0, ts: 0, code: 5, dur: 160}.packet(b)
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	now := time.Now()
	b.ReportAllocs()
	var seq uint16
	for i := 0; b.Loop(); i++ {
		seq++
		binary.BigEndian.PutUint16(pkt[2:], seq)
		if i%8 == 0 { // a new key press every 8 packets
			binary.BigEndian.PutUint32(pkt[4:], uint32(i)*160)
		}
		deliver(s, pkt, from, now)
		if i%8 == 0 {
			<-s.DTMF()
		}
	}
}

// BenchmarkDTMFSend is one WriteFrame slot while digits play: event packets
// marshalled and sent to a loopback socket nobody reads.
func BenchmarkDTMFSend(b *testing.B) {
	pool, err := NewPortPool(loopback, 45440, 45449)
	if err != nil {
		b.Fatal(err)
	}
	sink, err := pool.Open(StreamConfig{Codec: PCMU})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	s, err := pool.Open(StreamConfig{Codec: PCMU, DTMFPayloadType: testDTMFPT, Remote: sink.LocalAddr()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	frame := make([]int16, 160)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%64 == 0 {
			if err := s.SendDTMF("12345678"); err != nil { // 8 digits: 64 slots
				b.Fatal(err)
			}
		}
		if err := s.WriteFrame(frame, false); err != nil {
			b.Fatal(err)
		}
	}
}
