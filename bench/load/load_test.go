package main

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/zaf/g711"
)

// The marker and the noise come back unchanged from a gateway that decodes
// µ-law to PCM and encodes it again, and the marker is found at any offset.
func TestMarkerSurvivesG711(t *testing.T) {
	m := newMediaCall(netip.AddrPort{}, 100)
	for _, k := range []uint32{0, 1, 0xabcdef, 1<<24 - 1} {
		putMarker(m.pkt[12:], k)
		frame := m.pkt[12:]
		round := g711.EncodeUlaw(g711.DecodeUlaw(frame))
		for i := range frame {
			if round[i] != frame[i] {
				t.Fatalf("byte %d: %#x came back as %#x", i, frame[i], round[i])
			}
		}
		for _, off := range []int{0, 1, 37, frameBytes - markerBytes} {
			shifted := append(append([]byte(nil), frame[frameBytes-off:]...), frame[:frameBytes-off]...)
			got, at, ok := findMarker(shifted)
			if !ok || got != k || at != off {
				t.Fatalf("marker %#x at %d: found %#x at %d (%v)", k, off, got, at, ok)
			}
		}
	}
}

func TestHistQuantile(t *testing.T) {
	var h hist
	for i := range 100 {
		h.add(time.Duration(i+1) * time.Millisecond) // 1..100 ms
	}
	h.add(-3 * time.Second) // a deviation counts by its size
	if got := h.quantile(0.5); got < 50 || got > 51.1 {
		t.Fatalf("p50 = %v ms, want about 51", got)
	}
	if got := h.quantile(1); got < 3000 || got > 3010 {
		t.Fatalf("p100 = %v ms, want 3000-3010 (a 10 ms bucket of the coarse range)", got)
	}
}

// gatewayPeer stands in for the gateway's RTP port of one call: it returns
// what it receives to where it came from.
type gatewayPeer struct {
	conn *net.UDPConn
	buf  []byte
}

func newPeers(t testing.TB, n int) []*gatewayPeer {
	t.Helper()
	peers := make([]*gatewayPeer, n)
	for i := range peers {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		peers[i] = &gatewayPeer{conn: c, buf: make([]byte, 1500)}
	}
	return peers
}

func (p *gatewayPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// echo returns one packet; it fails the test if none comes within a second.
func (p *gatewayPeer) echo(t testing.TB) {
	_ = p.conn.SetReadDeadline(time.Now().Add(time.Second))
	n, from, err := p.conn.ReadFromUDPAddrPort(p.buf)
	if err != nil {
		t.Fatalf("peer %v: %v", p.addr(), err)
	}
	_, _ = p.conn.WriteToUDPAddrPort(p.buf[:n], from)
}

// setupCalls makes one shared socket and a call per peer, all in one wheel slot.
func setupCalls(t testing.TB, peers []*gatewayPeer, maxPackets int) (*rtpSocket, *sender, []*mediaCall) {
	t.Helper()
	sock, err := newRTPSocket()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sock.close)
	snd := &sender{sock: sock}
	calls := make([]*mediaCall, len(peers))
	for i, p := range peers {
		calls[i] = newMediaCall(p.addr(), maxPackets)
		sock.add(p.addr(), calls[i])
	}
	return sock, snd, calls
}

// readN reads until n datagrams have come in.
func readN(t testing.TB, sock *rtpSocket, n int) {
	for got := 0; got < n; {
		k := sock.readBatch()
		if k < 0 {
			t.Fatal("socket closed")
		}
		got += k
	}
}

// Every call's packets go out in one sendmmsg to its own gateway port, and
// what each port returns is counted for its call only, with a kernel arrival
// time; a packet from an address no call was answered from is foreign.
func TestSharedSocketDemux(t *testing.T) {
	peers := newPeers(t, 3)
	sock, snd, calls := setupCalls(t, peers, 100)
	if !sock.kernel {
		t.Log("no SO_TIMESTAMPNS: arrival times are the reader's")
	}
	for range 5 {
		snd.sendSlot(calls, time.Now())
		for _, p := range peers {
			p.echo(t)
		}
		readN(t, sock, len(peers))
	}
	// Only the second gateway port answers this round.
	snd.sendSlot(calls, time.Now())
	for i, p := range peers {
		_ = p.conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := p.conn.ReadFromUDPAddrPort(p.buf); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			_, _ = p.conn.WriteToUDPAddrPort(p.buf[:12+frameBytes], netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sock.port)))
		}
	}
	readN(t, sock, 1)
	stranger := newPeers(t, 1)[0]
	_, _ = stranger.conn.WriteToUDPAddrPort(make([]byte, 172), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sock.port)))
	readN(t, sock, 1)

	for i, m := range calls {
		want := uint32(5)
		if i == 1 {
			want = 6
		}
		if m.sent.Load() != 6 || m.received != want || m.matched != want || m.dup != 0 || m.unmarked != 0 || m.seqGaps != 0 {
			t.Errorf("call %d: sent %d received %d matched %d dup %d unmarked %d gaps %d; want 6 sent, %d back",
				i, m.sent.Load(), m.received, m.matched, m.dup, m.unmarked, m.seqGaps, want)
		}
		if m.rtt.count() != uint64(want) || m.rtt.max <= 0 || m.rtt.max > time.Second {
			t.Errorf("call %d: %d round trips, max %v", i, m.rtt.count(), m.rtt.max)
		}
	}
	if sock.foreign != 1 {
		t.Errorf("foreign = %d, want 1", sock.foreign)
	}
}

// drainN drains until n datagrams have come in (loopback delivers within the
// peer's write, so one drain is usually enough).
func drainN(t testing.TB, sock *rtpSocket, n int) {
	deadline := time.Now().Add(time.Second)
	for got := 0; got < n; got += sock.drain() {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d datagrams after a second", got, n)
		}
	}
}

// The steady state sends, receives (both ways of reading) and measures
// without allocating.
func TestNoAllocationsPerPacket(t *testing.T) {
	peers := newPeers(t, 20)
	sock, snd, calls := setupCalls(t, peers, 1000)
	polled := true
	round := func() {
		snd.sendSlot(calls, time.Now())
		for _, p := range peers {
			p.echo(t)
		}
		if polled {
			drainN(t, sock, len(peers))
		} else {
			readN(t, sock, len(peers))
		}
	}
	round() // the send batch grows to the slot's size once
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Fatalf("drained: %v allocations per round of %d packets each way", n, len(peers))
	}
	polled = false
	if n := testing.AllocsPerRun(200, round); n != 0 {
		t.Fatalf("read: %v allocations per round of %d packets each way", n, len(peers))
	}
	if m := calls[0]; m.matched != m.sent.Load() {
		t.Fatalf("matched %d of %d", m.matched, m.sent.Load())
	}
}

// BenchmarkRTPRound is one wheel slot of 50 calls: sendmmsg, the gateway's
// echo, the drain with recvmmsg and the measurements; ns/op over 50 is the tool's cost per
// packet each way (the stand-in gateway's own reads and writes included).
func BenchmarkRTPRound(b *testing.B) {
	peers := newPeers(b, 50)
	_, snd, calls := setupCalls(b, peers, b.N+10)
	sock := snd.sock
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		snd.sendSlot(calls, time.Now())
		for _, p := range peers {
			p.echo(b)
		}
		drainN(b, sock, len(peers))
	}
}

// The bot echoes a media message as the gateway writes it, payload unchanged
// and tagged with the stream's sid, and ends at stop.
func TestBotStream(t *testing.T) {
	var s botStream
	if r, stop := s.handle([]byte(`{"event":"connected","protocol":"Call","version":"1.0.0"}`)); r != nil || stop {
		t.Fatalf("connected: %q %v", r, stop)
	}
	if r, _ := s.handle([]byte(`{"event":"media","media":{"payload":"AAAA"}}`)); r != nil {
		t.Fatalf("media before start echoed: %q", r)
	}
	s.handle([]byte(`{"event":"start","sequenceNumber":"1","start":{"streamSid":"MZ1","tracks":["inbound"]},"streamSid":"MZ1"}`))
	payload := "/+7t7Ozr6+rq6eno6Ofn5ubl5eTk4+Pi4uHh4ODf397e3d3c3Nvb2trZ2djY19fW1tXV1NTT09LS0dHQ0M/Pzs7NzczMy8vKysnJyMjHx8bGxcXExMPDwsLBwcDAv7+/vr6+vb29vLy8u7u7"
	in := []byte(`{"event":"media","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"` + payload + `"},"streamSid":"MZ1"}`)
	want := `{"event":"media","streamSid":"MZ1","media":{"payload":"` + payload + `"}}`
	if r, _ := s.handle(in); string(r) != want {
		t.Fatalf("echo %s\nwant %s", r, want)
	}
	// Another key order goes through encoding/json and gives the same echo.
	if r, _ := s.handle([]byte(`{"streamSid":"MZ1","media":{"payload":"` + payload + `"},"event":"media"}`)); string(r) != want {
		t.Fatalf("echo %s\nwant %s", r, want)
	}
	if r, stop := s.handle([]byte(`{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}`)); r != nil || stop || !s.mark {
		t.Fatalf("mark: %q %v %v", r, stop, s.mark)
	}
	if n := testing.AllocsPerRun(100, func() { s.handle(in) }); n != 0 {
		t.Fatalf("%v allocations per media message", n)
	}
	if _, stop := s.handle([]byte(`{"event":"stop","sequenceNumber":"9","streamSid":"MZ1","stop":{}}`)); !stop {
		t.Fatal("stop did not end the stream")
	}
}

func TestProcUDPDrops(t *testing.T) {
	table := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  105: 0100007F:4E20 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 81234 2 0000000000000000 17
  106: 0100007F:4E21 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 81235 2 0000000000000000 9000
`
	if v, ok := procUDPDrops(table, 20000); !ok || v != 17 {
		t.Fatalf("drops on port 20000 = %d, %v; want 17", v, ok)
	}
	if _, ok := procUDPDrops(table, 20002); ok {
		t.Fatal("a port with no socket was found")
	}
	// A real socket of this machine's: one datagram too many for its buffer is one drop.
	sock, err := newRTPSocket()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.close()
	before, ok := udpDrops(sock.port + 1) // the RTCP socket, never read, 4 KB buffer
	if !ok {
		t.Fatalf("no socket on port %d in /proc/net/udp", sock.port+1)
	}
	c, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", sock.port+1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range 200 {
		c.Write(make([]byte, 1000))
	}
	if after, _ := udpDrops(sock.port + 1); after <= before {
		t.Fatalf("drops %d before 200 KB into a 4 KB buffer, %d after", before, after)
	}
}
