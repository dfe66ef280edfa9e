package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// RFC 4733 telephone-event: DTMF digits as RTP packets on the audio stream's
// SSRC, sequence numbers and clock, in a payload type negotiated in SDP.

// DTMF errors; callers test them with errors.Is.
var (
	// ErrDTMFDigit means SendDTMF was given something other than 0-9 * # A-D.
	ErrDTMFDigit = errors.New("media: not a DTMF digit")
	// ErrNoDTMF means telephone-event was not negotiated for this stream.
	ErrNoDTMF = errors.New("media: telephone-event not negotiated")
	// ErrDTMFBusy means too many digits are already waiting to be sent.
	ErrDTMFBusy = errors.New("media: too many DTMF digits queued")
)

const (
	// DTMFTone and DTMFGap are how long each digit we send lasts and the silence
	// between digits of a string (ITU-T Q.24 asks for at least 40 ms of each).
	DTMFTone = 100 * time.Millisecond
	DTMFGap  = 50 * time.Millisecond

	dtmfPayloadSize = 4
	dtmfVolume      = 10 // -10 dBm0, the level most senders use
	dtmfEndPackets  = 3  // RFC 4733 2.5.1.4: the final packet goes out three times
	dtmfMaxQueued   = 256
	dtmfEvents      = 16 // received digits buffered for the bridge
	// dtmfHistory is how many recent events' timestamps the receiver remembers, so
	// that packets reordered behind later presses are not counted again.
	dtmfHistory = 8
	dtmfMaxSlot = dtmfEndPackets + 1 // packets one WriteFrame may send
)

// DTMFEvent is a digit received as RFC 4733 telephone-event, once per key press.
type DTMFEvent struct {
	Digit rune // 0-9 * # A-D
}

// dtmfDigits maps RFC 4733 event codes 0-15 to digits.
const dtmfDigits = "0123456789*#ABCD"

func dtmfCode(r rune) (uint8, bool) {
	for i := range len(dtmfDigits) {
		if rune(dtmfDigits[i]) == r {
			return uint8(i), true
		}
	}
	return 0, false
}

// serialLess compares RTP timestamps modulo 2^32 (RFC 1982 serial arithmetic).
func serialLess(a, b uint32) bool { return int32(a-b) < 0 }

// dtmfReceiver turns telephone-event packets into one digit per event. An event is
// identified by its RTP timestamp (its start), never by the marker bit, which some
// carriers never set: updates, the repeated end packets and duplicates share the
// timestamp and count once, and so do packets of a recent event that arrive after
// a later one. It is touched only by the reader goroutine.
type dtmfReceiver struct {
	out    chan DTMFEvent
	recent [dtmfHistory]uint32 // timestamps of recent events, recent[last] the latest
	n      int                 // how many of recent are set
	last   int
	code   uint8 // the latest event's
	ended  bool
	dur    uint16 // longest duration seen for the latest event
}

func (d *dtmfReceiver) init() { d.out = make(chan DTMFEvent, dtmfEvents) }

// reset forgets the current event: a new SSRC has its own timestamps.
func (d *dtmfReceiver) reset() { d.n = 0 }

// remember makes ts the latest event's timestamp, keeping the earlier ones.
func (d *dtmfReceiver) remember(ts uint32) {
	if d.n > 0 {
		d.last = (d.last + 1) % dtmfHistory
	}
	d.recent[d.last] = ts
	d.n = min(d.n+1, dtmfHistory)
}

func (d *dtmfReceiver) known(ts uint32) bool {
	for _, r := range d.recent[:d.n] {
		if r == ts {
			return true
		}
	}
	return false
}

// packet takes one telephone-event payload and reports a digit when it starts a
// new key press.
func (d *dtmfReceiver) packet(ts uint32, payload []byte) (rune, bool) {
	if len(payload) < dtmfPayloadSize {
		return 0, false
	}
	code := payload[0]
	end := payload[1]&0x80 != 0
	dur := binary.BigEndian.Uint16(payload[2:4])
	if d.n > 0 {
		latest := d.recent[d.last]
		switch {
		case ts == latest: // an update, an end packet or a duplicate of the latest event
			d.ended = d.ended || end
			d.dur = max(d.dur, dur)
			return 0, false
		case d.known(ts): // reordered behind a later event
			return 0, false
		case code == d.code && !serialLess(ts, latest) && ts-latest <= uint32(d.dur):
			// A new timestamp within the span of the same key's latest event: the
			// next segment of a press longer than the 16-bit duration field (RFC 4733
			// 2.5.1.3), or a sender that wrongly stamps each packet with its own
			// time. A new press cannot start before the last one has ended.
			d.remember(ts)
			d.ended, d.dur = d.ended || end, dur
			return 0, false
		}
	}
	d.remember(ts)
	d.code, d.ended, d.dur = code, end, dur
	if int(code) >= len(dtmfDigits) {
		return 0, false // flash and other events are not digits
	}
	return rune(dtmfDigits[code]), true
}

// receiveDTMF runs on the reader goroutine for each telephone-event packet. A
// bridge that does not keep up loses digits rather than stalling the socket.
func (s *Stream) receiveDTMF(ts uint32, payload []byte) {
	d, ok := s.rx.dtmf.packet(ts, payload)
	if !ok {
		return
	}
	select {
	case s.rx.dtmf.out <- DTMFEvent{Digit: d}:
	default:
		s.log.Warn("dtmf queue full, digit dropped", "digit", string(d))
	}
}

// DTMF delivers the digits the caller sends as RFC 4733 events, each key press once.
func (s *Stream) DTMF() <-chan DTMFEvent { return s.rx.dtmf.out }

// dtmfPacket is one telephone-event packet to send.
type dtmfPacket struct {
	ts     uint32 // the event's start
	code   uint8
	end    bool
	marker bool
	dur    uint16
}

// dtmfSender schedules the digits queued by SendDTMF onto WriteFrame's packet
// slots. Times are in RTP clock units; the RTP timestamp keeps advancing with
// the audio, so an event starts at an exact timestamp even inside a slot.
type dtmfSender struct {
	pt        uint8
	tone, gap uint32
	queue     []uint8 // event codes waiting; queue[head:] are still to play
	head      int
	active    bool   // an event is playing
	first     bool   // its next packet is its first
	code      uint8  // the event playing or last played
	start     uint32 // its timestamp
	ends      int    // end packets of the last event still to repeat
	spaced    bool   // the gap after the last event runs until next
	next      uint32
}

func (d *dtmfSender) pending() bool {
	return d.active || d.ends > 0 || d.spaced || d.head < len(d.queue)
}

// step fills out with the packets of the slot [ts, ts+frame) and returns how
// many; 0 leaves the slot to audio.
func (d *dtmfSender) step(ts, frame uint32, out *[dtmfMaxSlot]dtmfPacket) int {
	n := 0
	slotEnd := ts + frame
	if d.ends > 0 {
		out[n] = dtmfPacket{ts: d.start, code: d.code, end: true, dur: uint16(d.tone)}
		n++
		d.ends--
	}
	if !d.active && d.head < len(d.queue) {
		start := ts
		if d.spaced && serialLess(start, d.next) {
			start = d.next
		}
		if serialLess(start, slotEnd) {
			for ; d.ends > 0; d.ends-- { // never interleave two events
				out[n] = dtmfPacket{ts: d.start, code: d.code, end: true, dur: uint16(d.tone)}
				n++
			}
			d.code, d.start, d.active, d.first, d.spaced = d.queue[d.head], start, true, true, false
			if d.head++; d.head == len(d.queue) {
				d.queue, d.head = d.queue[:0], 0
			}
		}
	}
	if d.active {
		dur := slotEnd - d.start
		end := dur >= d.tone
		if end {
			dur = d.tone
		}
		out[n] = dtmfPacket{ts: d.start, code: d.code, end: end, marker: d.first, dur: uint16(dur)}
		n++
		d.first = false
		if end {
			d.active = false
			d.ends = dtmfEndPackets - 1
			d.spaced, d.next = true, d.start+d.tone+d.gap
		}
	}
	if d.spaced && !d.active && !serialLess(slotEnd, d.next) {
		d.spaced = false // the gap is over; a digit queued later starts at once
	}
	return n
}

// SendDTMF queues digits (0-9 * # A-D) to send as RFC 4733 events: each plays
// DTMFTone, with DTMFGap between digits, in place of the audio WriteFrame is
// given meanwhile. It returns at once; the digits go out on the WriteFrame clock.
func (s *Stream) SendDTMF(digits string) error {
	if s.cfg.DTMFPayloadType == 0 {
		return ErrNoDTMF
	}
	for _, r := range digits {
		if _, ok := dtmfCode(r); !ok {
			return fmt.Errorf("%w: %q (want 0-9 * # A-D)", ErrDTMFDigit, r)
		}
	}
	t := &s.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return ErrStreamClosed
	}
	d := &t.dtmf
	if len(d.queue)-d.head+len(digits) > dtmfMaxQueued {
		return ErrDTMFBusy
	}
	if d.tone == 0 {
		d.pt = s.cfg.DTMFPayloadType
		d.tone = uint32(int64(t.clock) * int64(DTMFTone) / int64(time.Second))
		d.gap = uint32(int64(t.clock) * int64(DTMFGap) / int64(time.Second))
	}
	for _, r := range digits {
		c, _ := dtmfCode(r)
		d.queue = append(d.queue, c)
	}
	return nil
}

// writeDTMF sends this slot's telephone-event packets in place of the audio when
// digits are playing; sent false leaves the slot to audio. Callers hold t.mu.
func (s *Stream) writeDTMF(remote netip.AddrPort, samples int) (sent bool, err error) {
	t := &s.tx
	if samples <= 0 || samples > maxFrameSamples {
		return false, nil // WriteFrame reports the bad size
	}
	frame := uint32(samples) * t.clock / uint32(s.codec.Rate())
	var pkts [dtmfMaxSlot]dtmfPacket
	n := t.dtmf.step(t.hdr.Timestamp, frame, &pkts)
	if n == 0 {
		return false, nil
	}
	audioPT, audioTS := t.hdr.PayloadType, t.hdr.Timestamp
	defer func() { t.hdr.PayloadType, t.hdr.Timestamp = audioPT, audioTS+frame }()
	t.hdr.PayloadType = t.dtmf.pt
	for _, p := range pkts[:n] {
		t.hdr.Timestamp, t.hdr.Marker = p.ts, p.marker
		t.fit(t.hdr.MarshalSize() + dtmfPayloadSize)
		h, err := t.hdr.MarshalTo(t.buf)
		if err != nil {
			return true, err
		}
		b := t.buf[h : h+dtmfPayloadSize]
		b[0], b[1] = p.code, dtmfVolume
		if p.end {
			b[1] |= 0x80
		}
		binary.BigEndian.PutUint16(b[2:], p.dur)
		t.hdr.SequenceNumber++
		pkt := t.buf[:h+dtmfPayloadSize]
		if err := s.writeRTP(pkt, remote); err != nil {
			return true, err
		}
		s.stats.packetsOut.Add(1)
		s.stats.bytesOut.Add(uint64(len(pkt)))
	}
	return true, nil
}
