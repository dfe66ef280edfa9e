package main

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
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

// mediaCall is one call's RTP: sent by the shared sender, received through
// the shared rtpSocket.
type mediaCall struct {
	remote netip.AddrPort
	dst    unix.RawSockaddrInet4 // remote, for sendmmsg
	pkt    []byte
	sent   atomic.Uint32  // packets sent so far
	sentAt []atomic.Int64 // send time of each index, ns since the epoch
	stop   atomic.Bool    // stop sending
	quiet  atomic.Bool    // stop measuring (set once the last packets had time to return)

	// Receive side, owned by the rtpSocket's reader until it has stopped.
	received, matched, dup uint32
	unmarked, seqGaps      uint32
	jitterMaxAt            uint32 // the returned packet count at the largest interval deviation
	seen                   []uint64
	jitter, rtt            hist
	prevSeq                uint16
	prevAt                 time.Time
	first                  bool
}

func newMediaCall(remote netip.AddrPort, maxPackets int) *mediaCall {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(rand.Uint32())
	}
	m := &mediaCall{remote: remote, pkt: make([]byte, 12+frameBytes), sentAt: make([]atomic.Int64, maxPackets),
		seen: make([]uint64, (maxPackets+63)/64), first: true}
	if remote.Addr().Is4() {
		m.dst = sockaddr4(remote)
	}
	// RTP version 2, PCMU and the call's SSRC; sequence number and timestamp change per packet.
	m.pkt[0], m.pkt[1] = 0x80, 0
	binary.BigEndian.PutUint32(m.pkt[8:], rand.Uint32())
	var r [frameBytes]byte
	rand.NewChaCha8(seed).Read(r[:])
	for i := 12 + markerBytes; i < len(m.pkt); i++ {
		m.pkt[i] = noiseCode(r[i-12])
	}
	return m
}

// next writes packet k into m.pkt and records its send time; false when the
// call sends no more (called only by the sender goroutine).
func (m *mediaCall) next(now time.Time) bool {
	k := m.sent.Load()
	if int(k) >= len(m.sentAt) || m.stop.Load() {
		return false
	}
	binary.BigEndian.PutUint16(m.pkt[2:], uint16(k))
	binary.BigEndian.PutUint32(m.pkt[4:], k*frameBytes)
	// The noise after the marker is written once (newMediaCall): only the marker changes.
	putMarker(m.pkt[12:], k)
	m.sentAt[k].Store(now.UnixNano())
	m.sent.Store(k + 1)
	return true
}

// rtpPCMU returns the payload and sequence number of a PCMU RTP packet.
func rtpPCMU(p []byte) (payload []byte, seq uint16, ok bool) {
	if len(p) < 12 || p[0]>>6 != 2 || p[1]&0x7f != 0 {
		return nil, 0, false
	}
	hl := 12 + 4*int(p[0]&0x0f)
	if p[0]&0x10 != 0 { // a header extension: 4 bytes, then its length in words
		if len(p) < hl+4 {
			return nil, 0, false
		}
		hl += 4 + 4*int(binary.BigEndian.Uint16(p[hl+2:]))
	}
	if hl > len(p) {
		return nil, 0, false
	}
	return p[hl:], binary.BigEndian.Uint16(p[2:]), true
}

// receive measures one returned packet that arrived at now (the reader goroutine).
func (m *mediaCall) receive(p []byte, now time.Time) {
	if m.quiet.Load() {
		return
	}
	payload, seq, ok := rtpPCMU(p)
	if !ok {
		return
	}
	m.received++
	if !m.first {
		d := seq - m.prevSeq
		switch {
		case d == 1:
			dev := now.Sub(m.prevAt) - ptime
			if dev.Abs() > m.jitter.max {
				m.jitterMaxAt = m.received
			}
			m.jitter.add(dev)
		case d > 1 && d < 1000:
			m.seqGaps += uint32(d - 1)
		}
	}
	m.first, m.prevSeq, m.prevAt = false, seq, now
	k, off, ok := findMarker(payload)
	if !ok {
		m.unmarked++
		return
	}
	if k >= m.sent.Load() {
		m.unmarked++ // not an index we sent: a marker mangled by concealment
		return
	}
	if m.seen[k/64]&(1<<(k%64)) != 0 {
		m.dup++
		return
	}
	m.seen[k/64] |= 1 << (k % 64)
	m.matched++
	sentAt := time.Unix(0, m.sentAt[k].Load()-int64(off)*int64(125*time.Microsecond))
	m.rtt.add(now.Sub(sentAt))
}

// sender sends every active call's packets on a 1 ms wheel of 20 slots, so
// the calls' packets are spread over each 20 ms instead of sent in one burst;
// a slot's packets leave in one sendmmsg. On each tick it also drains the
// returned packets (rtpSocket).
type sender struct {
	sock  *rtpSocket
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
			if len(batch) > 0 {
				s.late.add(now.Sub(start.Add(time.Duration(tick) * time.Millisecond)))
			}
			s.mu.Unlock()
			s.sendSlot(batch, now)
		}
		if s.sock.kernel {
			s.sock.drain()
		}
		select {
		case <-stop:
			return
		default:
		}
	}
}

// sendSlot sends the next packet of each call in batch.
func (s *sender) sendSlot(batch []*mediaCall, now time.Time) {
	for _, m := range batch {
		if m.next(now) {
			s.sock.queue(m.pkt, &m.dst)
		}
	}
	s.sock.flush()
}
