package media

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"
)

// Arbitrary compound RTCP from the peer: no panic, and the stream still reports stats.
func FuzzRTCP(f *testing.F) {
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})                // SR, no blocks
	f.Add([]byte{0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 2, 0x10, 0, 0, 5, 0, 0, 1, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0}) // RR, one block
	f.Add([]byte{0x81, 203, 0, 1, 0, 0, 0, 1})                                                                            // BYE
	f.Add([]byte{0x80, 201, 0xff, 0xff})                                                                                  // length past the end
	pool, err := NewPortPool(loopback, 47920, 47930)
	if err != nil {
		f.Fatal(err)
	}
	s, err := pool.Open(StreamConfig{Codec: PCMU, Remote: netip.MustParseAddrPort("127.0.0.1:9")})
	if err != nil {
		f.Fatal(err)
	}
	defer s.Close()
	from := netip.MustParseAddrPort("127.0.0.1:10")
	f.Fuzz(func(t *testing.T, b []byte) {
		s.receiveRTCP(b, from, time.Now())
		_ = s.Stats()
	})
}

// Sequences of telephone-event payloads (8 bytes each: timestamp, then the RFC 4733
// payload): no panic, and a reported digit is always one of 0-9 * # A-D.
func FuzzDTMF(f *testing.F) {
	f.Add([]byte{0, 0, 0, 160, 5, 10, 0, 160, 0, 0, 0, 160, 5, 0x8a, 1, 64})
	f.Add([]byte{0, 0, 0, 1, 16, 0, 0, 0})                                               // flash
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 11, 0x80, 0xff, 0xff, 0, 0, 0, 0, 11, 0, 0, 1}) // timestamp wrap
	f.Fuzz(func(t *testing.T, b []byte) {
		var d dtmfReceiver
		d.init()
		for len(b) >= 4 {
			ts := binary.BigEndian.Uint32(b)
			b = b[4:]
			payload := b[:min(4, len(b))]
			b = b[len(payload):]
			if r, ok := d.packet(ts, payload); ok && !isDigit(r) {
				t.Fatalf("digit %q from payload %x", r, payload)
			}
		}
	})
}

func isDigit(r rune) bool {
	return r >= '0' && r <= '9' || r == '*' || r == '#' || r >= 'A' && r <= 'D'
}

// Any arrival pattern into the jitter buffer (6 bytes a packet: sequence delta, timestamp
// delta in frames, arrival gap in ms, payload length), read on a 20 ms clock: no panic,
// and every read fills exactly one frame.
func FuzzJitter(f *testing.F) {
	f.Add([]byte{1, 1, 20, 160, 1, 1, 20, 160, 1, 1, 20, 160})
	f.Add([]byte{2, 2, 40, 160, 0xff, 0xff, 0, 160, 1, 1, 200, 160}) // loss, late, burst
	f.Add([]byte{0x80, 0x7f, 0, 0, 1, 1, 255, 200})                  // sequence jump, empty payload
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := newCodec(PCMU)
		if err != nil {
			t.Skip(err)
		}
		jb := newJitterBuffer(c, 8000, 0, 0)
		now := time.Unix(1000, 0)
		next := now
		seq, ts := uint16(100), uint32(16000)
		payload := make([]byte, 256)
		dst := make([]int16, 160)
		for len(b) >= 4 {
			seq += uint16(int8(b[0]))
			ts += uint32(int8(b[1])) * 160
			now = now.Add(time.Duration(b[2]) * time.Millisecond)
			jb.push(now, seq, ts, payload[:b[3]])
			b = b[4:]
			for !next.After(now) {
				dst = dst[:160]
				jb.read(dst, next)
				if len(dst) != 160 {
					t.Fatalf("read changed the frame to %d samples", len(dst))
				}
				next = next.Add(20 * time.Millisecond)
			}
		}
	})
}
