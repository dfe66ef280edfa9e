package media

import "sync/atomic"

const (
	reorderSlots = 32 // ring size, a power of two: 640 ms of 20 ms packets
	reorderDepth = 3  // packets (60 ms) buffered before playout starts
	// resyncGap is a sequence jump taken as a restarted stream rather than loss:
	// at once when ahead, after resyncRun packets in a row when behind (a single
	// stray old packet is just late).
	resyncGap = 200
	resyncRun = 3
)

// slot holds one packet; its payload buffer is reused for the life of the stream.
type slot struct {
	filled    bool
	seq       uint16
	timestamp uint32
	marker    bool
	payload   []byte
}

// reorderBuffer puts packets back in sequence order and releases them one per pop, on
// the consumer's clock. It is a ring indexed by sequence number; sequence arithmetic
// is done in int16 so the 16-bit wrap needs no special case. Playout starts once
// depth packets' worth of sequence space has arrived, and restarts the same way after
// the buffer runs dry. It is the seed of the adaptive jitter buffer, which will vary
// depth and conceal loss. It is not safe for concurrent use; Stream locks around it.
type reorderBuffer struct {
	depth   int
	slots   [reorderSlots]slot
	started bool   // next is meaningful
	playing bool   // prebuffering is done
	next    uint16 // next sequence number to play out
	end     uint16 // one past the highest sequence number received
	count   int    // filled slots
	behind  int    // packets in a row more than resyncGap behind next

	lost, late, duplicate, dropped, underruns atomic.Uint64
}

// popResult says what pop found at the head of the buffer.
type popResult int

const (
	popEmpty  popResult = iota // nothing due: prebuffering or ran dry
	popPacket                  // the next packet, in order
	popLost                    // the next packet is missing and later ones are waiting: it is lost
)

func newReorderBuffer(depth int) *reorderBuffer {
	return &reorderBuffer{depth: depth}
}

// push stores a packet. Duplicates, packets whose turn has passed, and packets so far
// ahead that the ring cannot hold them are handled here; payload is copied.
func (b *reorderBuffer) push(seq uint16, ts uint32, marker bool, payload []byte) {
	if !b.started {
		b.restart(seq)
	}
	d := int(int16(seq - b.next))
	if d >= -resyncGap {
		b.behind = 0
	}
	switch {
	case d >= resyncGap:
		b.restart(seq) // the sender jumped ahead; start over rather than count hundreds lost
	case d < -resyncGap:
		if b.behind++; b.behind < resyncRun {
			b.late.Add(1)
			return
		}
		b.restart(seq)
	case d < 0:
		b.late.Add(1)
		return
	case d >= reorderSlots:
		// Ahead of what the ring holds: the consumer is slower than the sender.
		// Give up the oldest packets (or count them lost) to make room.
		for int(int16(seq-b.next)) >= reorderSlots {
			s := &b.slots[b.next%reorderSlots]
			if s.filled && s.seq == b.next {
				s.filled = false
				b.count--
				b.dropped.Add(1)
			} else {
				b.lost.Add(1)
			}
			b.next++
		}
	}
	s := &b.slots[seq%reorderSlots]
	if s.filled {
		if s.seq == seq {
			b.duplicate.Add(1)
			return
		}
		b.count-- // cannot happen while slots hold only [next, next+len); overwrite to be safe
	}
	s.filled, s.seq, s.timestamp, s.marker = true, seq, ts, marker
	s.payload = append(s.payload[:0], payload...)
	b.count++
	if int16(seq-b.end) >= 0 {
		b.end = seq + 1
	}
}

// restart empties the buffer and expects seq next.
func (b *reorderBuffer) restart(seq uint16) {
	for i := range b.slots {
		b.slots[i].filled = false
	}
	b.started, b.playing = true, false
	b.next, b.end, b.count, b.behind = seq, seq, 0, 0
}

// reset forgets everything, as for a new SSRC.
func (b *reorderBuffer) reset() {
	b.restart(0)
	b.started = false
}

// pop returns the packet due now. The slot stays valid until the next push.
func (b *reorderBuffer) pop() (*slot, popResult) {
	if b.count == 0 {
		if b.playing {
			b.playing = false
			b.underruns.Add(1)
		}
		return nil, popEmpty
	}
	if !b.playing {
		if int(uint16(b.end-b.next)) < b.depth {
			return nil, popEmpty
		}
		b.playing = true
	}
	s := &b.slots[b.next%reorderSlots]
	b.next++
	if s.filled && s.seq == b.next-1 {
		s.filled = false
		b.count--
		return s, popPacket
	}
	b.lost.Add(1)
	return nil, popLost
}
