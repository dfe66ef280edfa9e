package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/rtp"
)

const (
	ptime       = 20 * time.Millisecond
	frameBytes  = 160 // 20 ms of 8 kHz µ-law
	syncA       = 0x01
	syncB       = 0x02
	markerBytes = 8 // syncA, syncB, then the 24-bit packet index as six nibbles 0x20+n
	histStep    = 100 * time.Microsecond
	histFine    = 2000 // 0 .. 200 ms in histStep buckets
	histCoarse  = 10 * time.Millisecond
	histBuckets = histFine + 1000 // then 200 ms .. 10.2 s in histCoarse buckets; the last holds everything above
)

// Each packet's audio is a marker (a sync pair and the packet's index, in
// µ-law codes that survive decoding to PCM and re-encoding) followed by the
// call's own pseudo-random µ-law noise that never contains the sync pair. When
// the marker comes back, its offset in the returned frame and the send time of
// that index give the audio round trip, whatever the gateway's framing.

// noiseCode maps a random byte to a µ-law code in 0x40-0x6F or 0xC0-0xEF: no
// sync or marker digit codes, and away from ±0 (0x7F/0xFF), which do not round-trip.
func noiseCode(r byte) byte {
	v := 0x40 + r%0x30
	if r&0x80 != 0 {
		v |= 0x80
	}
	return v
}

func putMarker(p []byte, k uint32) {
	p[0], p[1] = syncA, syncB
	for i := range 6 {
		p[2+i] = 0x20 + byte(k>>(20-4*i))&0x0f
	}
}

// findMarker returns the packet index marked in p and the marker's offset.
func findMarker(p []byte) (k uint32, off int, ok bool) {
	for j := 0; j+markerBytes <= len(p); j++ {
		if p[j] != syncA || p[j+1] != syncB {
			continue
		}
		k = 0
		for i := range 6 {
			d := p[j+2+i]
			if d < 0x20 || d > 0x2f {
				return 0, 0, false
			}
			k = k<<4 | uint32(d-0x20)
		}
		return k, j, true
	}
	return 0, 0, false
}

// hist counts durations in histStep buckets.
type hist struct {
	n   [histBuckets]uint32
	max time.Duration
}

func (h *hist) add(d time.Duration) {
	if d < 0 {
		d = -d
	}
	i := int(d / histStep)
	if i >= histFine {
		i = min(histFine+int((d-histFine*histStep)/histCoarse), histBuckets-1)
	}
	h.n[i]++
	h.max = max(h.max, d)
}

func (h *hist) merge(o *hist) {
	for i, v := range o.n {
		h.n[i] += v
	}
	h.max = max(h.max, o.max)
}

func (h *hist) count() (c uint64) {
	for _, v := range h.n {
		c += uint64(v)
	}
	return c
}

// quantile returns the upper edge of the bucket holding quantile q, in ms.
func (h *hist) quantile(q float64) float64 {
	total := h.count()
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	want = max(want, 1)
	var c uint64
	for i, v := range h.n {
		c += uint64(v)
		if c >= want {
			switch {
			case i == histBuckets-1:
				return ms(h.max)
			case i >= histFine:
				return ms(histFine*histStep + time.Duration(i-histFine+1)*histCoarse)
			}
			return ms(time.Duration(i+1) * histStep)
		}
	}
	return ms(h.max)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// mediaCall is one call's RTP: sent by the shared sender, read by its own goroutine.
type mediaCall struct {
	conn   *net.UDPConn
	remote netip.AddrPort
	ssrc   uint32
	noise  *rand.ChaCha8
	pkt    []byte
	sent   atomic.Uint32  // packets sent so far
	sentAt []atomic.Int64 // send time of each index, ns since base
	base   time.Time
	stop   atomic.Bool // stop sending
	quiet  atomic.Bool // stop measuring (set once the last packets had time to return)

	// Receive side, owned by the reader goroutine until done is closed.
	done                   chan struct{}
	received, matched, dup uint32
	unmarked, seqGaps      uint32
	jitterMaxAt            uint32 // the returned packet count at the largest interval deviation
	seen                   []uint64
	jitter, rtt            hist
}

func newMediaCall(conn *net.UDPConn, remote netip.AddrPort, maxPackets int, base time.Time) *mediaCall {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	m := &mediaCall{conn: conn, remote: remote, ssrc: rand.Uint32(), noise: rand.NewChaCha8(seed),
		pkt: make([]byte, 12+frameBytes), sentAt: make([]atomic.Int64, maxPackets), base: base,
		done: make(chan struct{}), seen: make([]uint64, (maxPackets+63)/64)}
	var r [frameBytes]byte
	m.noise.Read(r[:])
	for i := 12 + markerBytes; i < len(m.pkt); i++ {
		m.pkt[i] = noiseCode(r[i-12])
	}
	return m
}

// send writes packet k (called only by the sender goroutine).
func (m *mediaCall) send(now time.Time) {
	k := m.sent.Load()
	if int(k) >= len(m.sentAt) || m.stop.Load() {
		return
	}
	h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(k), Timestamp: k * frameBytes, SSRC: m.ssrc}
	if _, err := h.MarshalTo(m.pkt); err != nil {
		return
	}
	// The noise after the marker is written once (newMediaCall): only the marker changes.
	putMarker(m.pkt[12:], k)
	m.sentAt[k].Store(now.UnixNano())
	m.sent.Store(k + 1)
	_, _ = m.conn.WriteToUDPAddrPort(m.pkt, m.remote)
}

// kernelTimestamps asks for each datagram's arrival time (SO_TIMESTAMPNS), so
// the figures leave out this process's own scheduling delay.
func kernelTimestamps(c *net.UDPConn) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	}); err != nil || serr != nil {
		return false
	}
	return true
}

// arrival reads the SCM_TIMESTAMPNS control message (Linux, 64-bit layout).
func arrival(oob []byte) (time.Time, bool) {
	for len(oob) >= 16 {
		l := int(binary.NativeEndian.Uint64(oob))
		level, typ := int32(binary.NativeEndian.Uint32(oob[8:])), int32(binary.NativeEndian.Uint32(oob[12:]))
		if l < 16 || l > len(oob) {
			return time.Time{}, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= 32 {
			sec, nsec := int64(binary.NativeEndian.Uint64(oob[16:])), int64(binary.NativeEndian.Uint64(oob[24:]))
			return time.Unix(sec, nsec), true
		}
		oob = oob[(l+7)&^7:]
	}
	return time.Time{}, false
}

// receive reads returned packets until the socket closes.
func (m *mediaCall) receive() {
	defer close(m.done)
	kernel := kernelTimestamps(m.conn)
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	var h rtp.Header
	var prevSeq uint16
	var prevAt time.Time
	first := true
	for {
		n, oobn, _, _, err := m.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			return
		}
		now := time.Now()
		if kernel {
			if t, ok := arrival(oob[:oobn]); ok {
				now = t
			}
		}
		if m.quiet.Load() {
			continue
		}
		hl, err := h.Unmarshal(buf[:n])
		if err != nil || h.PayloadType != 0 {
			continue
		}
		m.received++
		if !first {
			d := h.SequenceNumber - prevSeq
			switch {
			case d == 1:
				dev := now.Sub(prevAt) - ptime
				if dev.Abs() > m.jitter.max {
					m.jitterMaxAt = m.received
				}
				m.jitter.add(dev)
			case d > 1 && d < 1000:
				m.seqGaps += uint32(d - 1)
			}
		}
		first, prevSeq, prevAt = false, h.SequenceNumber, now
		k, off, ok := findMarker(buf[hl:n])
		if !ok {
			m.unmarked++
			continue
		}
		if k >= m.sent.Load() {
			m.unmarked++ // not an index we sent: a marker mangled by concealment
			continue
		}
		if m.seen[k/64]&(1<<(k%64)) != 0 {
			m.dup++
			continue
		}
		m.seen[k/64] |= 1 << (k % 64)
		m.matched++
		sentAt := time.Unix(0, m.sentAt[k].Load()-int64(off)*int64(125*time.Microsecond))
		m.rtt.add(now.Sub(sentAt))
	}
}

// sender sends every active call's packets on a 1 ms wheel of 20 slots, so
// the calls' packets are spread over each 20 ms instead of sent in one burst.
type sender struct {
	mu    sync.Mutex
	slots [20][]*mediaCall
	next  atomic.Uint32
	late  hist // how late each slot's packets went out (this process's own jitter)
}

// add puts m in the next slot; its first packet goes out at that slot's next turn.
func (s *sender) add(m *mediaCall) {
	i := s.next.Add(1) % 20
	s.mu.Lock()
	s.slots[i] = append(s.slots[i], m)
	s.mu.Unlock()
}

// run ticks until stop is closed.
func (s *sender) run(stop <-chan struct{}) {
	start := time.Now()
	tick := 0
	var batch []*mediaCall
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := start.Add(time.Duration(tick+1) * time.Millisecond)
		if d := time.Until(next); d > 0 {
			timer.Reset(d)
			select {
			case <-stop:
				return
			case <-timer.C:
			}
		}
		// Catch up on every slot due, at most one full round.
		now := time.Now()
		due := int(now.Sub(start) / time.Millisecond)
		if due-tick > 20 {
			tick = due - 20
		}
		for ; tick < due; tick++ {
			s.mu.Lock()
			batch = append(batch[:0], s.slots[tick%20]...)
			s.mu.Unlock()
			if len(batch) > 0 {
				s.mu.Lock()
				s.late.add(now.Sub(start.Add(time.Duration(tick) * time.Millisecond)))
				s.mu.Unlock()
			}
			for _, m := range batch {
				m.send(now)
			}
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}
