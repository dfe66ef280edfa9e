package media

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// receivePath returns one step of the receive side but the syscall: a packet through
// parsing, latching, the jitter buffer and G.711 decoding into the caller's frame.
func receivePath(tb testing.TB, c Codec, minPort int) func() {
	pool, err := NewPortPool(loopback, minPort, minPort+9)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: c})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	impl, _ := newCodec(c)
	pkt := make([]byte, 12+160)
	pkt[0], pkt[1] = 0x80, c.PayloadType
	binary.BigEndian.PutUint32(pkt[8:], 0x1234)
	impl.Encode(pkt[12:], pcm.Tone(1000, 8000, 160, 0.5))
	from := netip.MustParseAddrPort("127.0.0.1:5004")
	frame := make([]int16, 160)
	var seq uint16
	deliver := func() {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		seq++
		s.receive(pkt, from, time.Now())
	}
	for range 2 {
		deliver()
	}
	return func() {
		deliver()
		if !s.ReadFrame(frame) {
			tb.Fatal("no frame")
		}
	}
}

// sendPath returns one step of the send side: a frame encoded and marshalled into an
// RTP packet, and with sendto it also sends it to a loopback socket nobody reads.
func sendPath(tb testing.TB, minPort int, sendto bool) func() {
	pool, err := NewPortPool(loopback, minPort, minPort+9)
	if err != nil {
		tb.Fatal(err)
	}
	sink, err := pool.Open(StreamConfig{Codec: PCMU})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sink.Close() })
	s, err := pool.Open(StreamConfig{Codec: PCMU, Remote: sink.LocalAddr()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	frame := pcm.Tone(1000, 8000, 160, 0.5)
	if sendto {
		return func() {
			if err := s.WriteFrame(frame, false); err != nil {
				tb.Fatal(err)
			}
		}
	}
	return func() {
		s.tx.mu.Lock()
		pkt, err := s.marshal(frame, false)
		s.tx.mu.Unlock()
		if err != nil || len(pkt) != 172 {
			tb.Fatal(len(pkt), err)
		}
	}
}

func BenchmarkReceivePath(b *testing.B) {
	for i, c := range []Codec{PCMU, PCMA} {
		b.Run(c.Name, func(b *testing.B) {
			step := receivePath(b, c, 48500+10*i)
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
		})
	}
}

func BenchmarkSendPath(b *testing.B) {
	step := sendPath(b, 48540, false)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

func BenchmarkWriteFrame(b *testing.B) {
	step := sendPath(b, 48560, true)
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

// loopbackPath returns one frame sent by one Stream and received by another over
// real sockets, the socket poll included; it polls until the packet arrives. It is
// for the allocation check, not for timing: the wait is a polling sleep.
func loopbackPath(tb testing.TB, minPort int) func() {
	pool, err := NewPortPool(loopback, minPort, minPort+9)
	if err != nil {
		tb.Fatal(err)
	}
	rx, err := pool.Open(StreamConfig{Codec: PCMU})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rx.Close() })
	tx, err := pool.Open(StreamConfig{Codec: PCMU, Remote: rx.LocalAddr()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { tx.Close() })
	in := pcm.Tone(1000, 8000, 160, 0.5)
	out := make([]int16, 160)
	send := func() {
		want := rx.stats.packetsIn.Load() + 1
		if err := tx.WriteFrame(in, false); err != nil {
			tb.Fatal(err)
		}
		for deadline := time.Now().Add(time.Second); rx.stats.packetsIn.Load() < want; pollNow(rx) {
			if time.Now().After(deadline) {
				tb.Fatalf("packet lost on loopback: %+v", rx.Stats())
			}
		}
	}
	for range 2 {
		send()
	}
	return func() {
		send()
		if !rx.ReadFrame(out) {
			tb.Fatal("no frame")
		}
	}
}

// TestPacketPathAllocs holds the zero-allocation claim in the ordinary test run.
func TestPacketPathAllocs(t *testing.T) {
	paths := map[string]func(){
		"receive PCMU": receivePath(t, PCMU, 48580),
		"receive PCMA": receivePath(t, PCMA, 48590),
		"send":         sendPath(t, 48600, false),
		"write":        sendPath(t, 48620, true),
		"loopback":     loopbackPath(t, 48660), // the socket poll (recvmmsg) included
	}
	for name, step := range paths {
		for range 100 { // warm up: slot buffers grow once
			step()
		}
		if a := testing.AllocsPerRun(200, step); a != 0 {
			t.Errorf("%s path: %v allocations per packet, want 0", name, a)
		}
	}
}

// jbFeed returns one 20 ms step of a jitter buffer fed PCMU with 0-30 ms of
// pseudo-random network jitter on a simulated clock: the packets due by the tick
// pushed, then one frame read. loseEvery > 0 loses every loseEvery-th packet.
func jbFeed(b *jitterBuffer, payload []byte, loseEvery int) func() {
	epoch := time.Unix(1000, 0)
	frame := make([]int16, 160)
	var seq uint16
	var ts uint32
	var tick time.Duration
	var pending []simPkt // sorted by arrival; cap keeps it allocation-free
	pending = make([]simPkt, 0, 16)
	seed := uint64(1)
	sent := time.Duration(0)
	return func() {
		tick += 20 * time.Millisecond
		for sent <= tick { // the sender's packets up to now, each with its own delay
			seed = seed*6364136223846793005 + 1442695040888963407
			p := simPkt{at: sent + 5*time.Millisecond + time.Duration(seed>>33)%(30*time.Millisecond), seq: seq, ts: ts}
			i := len(pending)
			pending = append(pending, p)
			for ; i > 0 && pending[i].at < pending[i-1].at; i-- {
				pending[i], pending[i-1] = pending[i-1], pending[i]
			}
			seq, ts, sent = seq+1, ts+160, sent+20*time.Millisecond
		}
		n := 0
		for ; n < len(pending) && pending[n].at <= tick; n++ {
			if loseEvery > 0 && int(pending[n].seq)%loseEvery == 0 {
				continue
			}
			b.push(epoch.Add(pending[n].at), pending[n].seq, pending[n].ts, payload)
		}
		pending = pending[:copy(pending, pending[n:])]
		b.read(frame, epoch.Add(tick))
	}
}

// BenchmarkJitterBuffer is one call's 20 ms of receive work in the jitter buffer:
// about one push and one read of a PCMU packet, decode and any concealment included.
func BenchmarkJitterBuffer(b *testing.B) {
	c, _ := newCodec(PCMU)
	payload := make([]byte, 160)
	c.Encode(payload, pcm.Tone(400, 8000, 160, 0.5))
	jb := newJitterBuffer(c, 8000, 0, 0)
	step := jbFeed(jb, payload, 0)
	for range 500 {
		step()
	}
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
}

func BenchmarkG711(b *testing.B) {
	src := pcm.Tone(1000, 8000, 160, 0.5)
	for _, c := range []Codec{PCMU, PCMA} {
		impl, _ := newCodec(c)
		payload := make([]byte, 160)
		impl.Encode(payload, src)
		dst := make([]int16, 0, 160)
		b.Run(c.Name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				impl.Encode(payload, src)
			}
		})
		b.Run(c.Name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				dst = impl.Decode(dst[:0], payload)
			}
		})
	}
}
