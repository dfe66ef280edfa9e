package media

import (
	"sync/atomic"
	"time"
)

const (
	jbSlots = 64 // ring size, a power of two: 1.28 s of 20 ms packets
	// resyncGap is a sequence jump taken as a restarted stream rather than loss:
	// at once when ahead, after resyncRun packets in a row when behind (a single
	// stray old packet is just late).
	resyncGap = 200
	resyncRun = 3

	// The target delay is the 95th percentile of packets' delay relative to the
	// least-delayed packet of the last second (NetEq's relative-delay estimate),
	// from a histogram whose memory is about 330 packets.
	jbQuantile  = 0.95
	jbForget    = 0.997
	jbBucket    = int64(4 * time.Millisecond)
	jbBuckets   = 256
	jbWindow    = int64(time.Second)
	jbWindowCap = 128 // arrivals kept for the base-delay minimum; more per second is thinned
	jbWindowMin = 16  // the queue's first size: jitter rarely queues more
	jbSeed      = 20  // weight of the initial target, as many packets: gone in ~1 s
	// jbHyst keeps the playout delay from see-sawing around the target.
	jbHyst = int64(5 * time.Millisecond)
	// jbRestart is a change of relative delay no network explains: the sender restarted its clock.
	jbRestart = int64(10 * time.Second)
	// jbConcealMax is how long the buffer conceals with nothing buffered before it takes
	// the talkspurt as over (concealment is silent by then anyway).
	jbConcealMax = 60 * time.Millisecond
	// quietPower is the mean square of a frame below -45 dBFS: a pause, where the
	// delay may change without cutting a word.
	quietPower = 184 * 184
)

// DefaultJitterMin and DefaultJitterMax bound the adaptive playout delay when
// StreamConfig leaves them zero.
const (
	DefaultJitterMin = 20 * time.Millisecond
	DefaultJitterMax = 200 * time.Millisecond
)

// slot holds one packet; its payload is in bufs[buf], which it owns while filled.
type slot struct {
	timestamp uint32
	seq       uint16
	filled    bool
	buf       uint8
}

type arrival struct{ at, d int64 }

// jitterBuffer turns packets that arrive late, early, twice or never into one
// stream of PCM, pulled by the call's 20 ms clock. Packets wait in a ring indexed by
// sequence number (int16 arithmetic makes the 16-bit wrap free; int32 does it for
// timestamps). Playout runs along the sender's timeline: a missing packet is
// concealed when its turn comes, a packet that comes after its turn is late. The
// playout delay follows a target from the measured jitter: it is set afresh at each
// talkspurt (after a timestamp gap, as with silence suppression), and otherwise
// changed only in quiet frames, by dropping or stretching one. Time is passed in
// (now), so a simulation can drive it. Not safe for concurrent use; Stream locks
// around it.
type jitterBuffer struct {
	codec     PayloadCodec
	concealer Concealer // the codec's own concealment (Opus), else nil
	plc       *plc
	clock     int64 // RTP clock, Hz
	rate      int64 // PCM rate, Hz
	min, max  int64 // target bounds, ns
	// silenceFill replaces concealment by silence: the baseline the impairment test beats.
	silenceFill bool
	// trace, when set, sees every frame produced: ts is the sender's timeline position
	// it stands for, kind what made it. Tests only.
	trace func(kind traceKind, ts uint32, delay int64, samples []int16)

	slots [jbSlots]slot
	// Payload buffers are reused for the life of the stream; there are only as many as
	// packets were ever buffered at once, not one per slot.
	bufs       [][]byte
	free       []uint8 // indexes into bufs of buffers no slot holds
	count      int     // filled slots
	started    bool    // nextSeq is meaningful
	playing    bool    // inside a talkspurt; else waiting to start one on the target delay
	everPlayed bool    // a packet earlier than the first may still join the start
	nextSeq    uint16  // next packet to play
	nextTS     uint32  // its timestamp, if no gap precedes it
	end        uint16  // one past the highest sequence number received
	behind     int     // packets in a row more than resyncGap behind
	expanded   uint32  // timestamp units concealed while waiting for nextSeq
	lastDur    uint32  // timestamp units of the last packet
	lastN      int     // its decoded samples
	concealRun int     // samples concealed in a row with nothing to play
	lastQuiet  bool
	dry        bool  // the buffer ran dry in this talkspurt: one underrun
	lastRead   int64 // when the clock last pulled, ns

	carry []int16 // decoded samples not yet handed out (packets need not be 20 ms)
	fresh int     // where in carry the packet decoded last starts

	// Delay estimate: d is a packet's arrival minus when its timestamp says it was
	// due by the anchor (arrRef, tsRef); the minimum of d over the window is the
	// path's base delay.
	epoch    time.Time
	anchored bool
	arrRef   int64
	tsRef    uint32
	// win is a monotonic queue (increasing d) for the window minimum: a ring whose length,
	// a power of two, grows to jbWindowCap only if that many arrivals are ever queued.
	win     []arrival
	winHead int
	winLen  int
	// hist ends with the bucket holding max: every relative delay past it gives the
	// same target (max), so those share it.
	hist      []float64
	histW     float64 // weight of the next sample: grows instead of decaying the rest
	histTotal float64
	// The quantile is kept as it changes rather than scanned for: q is the highest
	// bucket with more than 1-jbQuantile of the weight at or above it (-1 if none),
	// above the weight of the buckets above q.
	q      int
	above  float64
	target int64

	lost, late, duplicate, dropped, underruns atomic.Uint64
	concealed                                 atomic.Uint64 // samples
	delaySum, delayN                          atomic.Uint64 // playout delay of played packets, ns
	targetNow                                 atomic.Int64
}

type traceKind int

const (
	tracePacket  traceKind = iota // a packet decoded
	traceConceal                  // concealment for a missing packet
	traceStretch                  // a quiet frame repeated to raise the delay
	traceDrop                     // a quiet packet dropped to lower the delay (no output)
)

func newJitterBuffer(codec PayloadCodec, clock uint32, minDelay, maxDelay time.Duration) *jitterBuffer {
	if minDelay <= 0 {
		minDelay = DefaultJitterMin
	}
	if maxDelay <= 0 {
		maxDelay = DefaultJitterMax
	}
	maxDelay = max(maxDelay, minDelay)
	rate := codec.Rate()
	if clock == 0 {
		clock = uint32(rate)
	}
	b := &jitterBuffer{
		codec: codec,
		clock: int64(clock),
		rate:  int64(rate),
		min:   int64(minDelay),
		max:   int64(maxDelay),
		carry: make([]int16, 0, 2*rate/50), // 20 ms packets; longer ones grow it once
		hist:  make([]float64, min((int64(maxDelay)+jbBucket-1)/jbBucket, jbBuckets)),
		bufs:  make([][]byte, 0, 8),
		free:  make([]uint8, 0, jbSlots),
		win:   make([]arrival, jbWindowMin),
	}
	if c, ok := codec.(Concealer); ok {
		b.concealer = c
	} else {
		b.plc = newPLC(rate)
	}
	b.reset()
	return b
}

// reset forgets everything, as for a new SSRC.
func (b *jitterBuffer) reset() {
	b.restart(0)
	b.started, b.everPlayed, b.anchored = false, false, false
	b.winLen, b.winHead = 0, 0
	clear(b.hist)
	b.histW, b.histTotal = 1, jbSeed
	b.hist[min((b.min-1)/jbBucket, int64(len(b.hist)-1))] = jbSeed // start at the floor until measured
	b.rescan()
	b.updateTarget()
	b.lastDur, b.lastN = uint32(b.clock/50), int(b.rate/50)
	b.carry = b.carry[:0]
	b.lastQuiet = false
	b.lastRead = -1 << 62
	if b.plc != nil {
		b.plc.reset()
	}
}

// restart empties the ring and expects seq next, to start on the target delay.
func (b *jitterBuffer) restart(seq uint16) {
	for i := range b.slots {
		if s := &b.slots[i]; s.filled {
			b.release(s)
		}
	}
	b.started, b.playing = true, false
	b.nextSeq, b.end, b.count, b.behind, b.expanded = seq, seq, 0, 0, 0
	b.concealRun, b.dry = 0, false
}

// push stores a packet that arrived at now; payload is copied. Duplicates, packets
// whose turn has passed, and packets too far ahead for the ring are handled here.
func (b *jitterBuffer) push(now time.Time, seq uint16, ts uint32, payload []byte) {
	if !b.started {
		b.restart(seq)
		b.nextTS = ts
	}
	if !b.anchored {
		b.epoch = now
	}
	at := int64(now.Sub(b.epoch))
	d := int(int16(seq - b.nextSeq))
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
	case d < 0 && !b.everPlayed && int(int16(b.end-seq)) < jbSlots:
		b.nextSeq, b.nextTS = seq, ts // reordered before playout began: it still leads
	case d < 0:
		b.late.Add(1)
		b.observe(at, ts) // its delay is what the target must learn
		return
	case d >= jbSlots:
		// Ahead of what the ring holds: give up the oldest packets and start again
		// on the target delay from what is left.
		for int(int16(seq-b.nextSeq)) >= jbSlots {
			if s := &b.slots[b.nextSeq%jbSlots]; s.filled && s.seq == b.nextSeq {
				b.release(s)
				b.dropped.Add(1)
			} else {
				b.lost.Add(1)
			}
			b.nextSeq++
		}
		b.playing, b.expanded, b.concealRun = false, 0, 0
	}
	s := &b.slots[seq%jbSlots]
	if s.filled {
		if s.seq == seq {
			b.duplicate.Add(1)
			return
		}
		b.release(s) // cannot happen while slots hold only [nextSeq, nextSeq+jbSlots); overwrite to be safe
	}
	if n := len(b.free); n > 0 {
		s.buf, b.free = b.free[n-1], b.free[:n-1]
	} else {
		s.buf = uint8(len(b.bufs))
		b.bufs = append(b.bufs, nil)
	}
	b.bufs[s.buf] = append(b.bufs[s.buf][:0], payload...)
	s.filled, s.seq, s.timestamp = true, seq, ts
	b.count++
	if int16(seq-b.end) >= 0 {
		b.end = seq + 1
	}
	b.observe(at, ts)
}

// release empties a filled slot and frees its buffer.
func (b *jitterBuffer) release(s *slot) {
	s.filled = false
	b.free = append(b.free, s.buf)
	b.count--
}

// payload is a filled slot's packet payload.
func (b *jitterBuffer) payload(s *slot) []byte { return b.bufs[s.buf] }

// due is when a packet with timestamp ts would arrive over the fastest path seen, ns.
func (b *jitterBuffer) due(ts uint32) int64 {
	return b.arrRef + int64(int32(ts-b.tsRef))*int64(time.Second)/b.clock + b.win[b.winHead].d
}

// span is how much audio is buffered from s on, ns, by sequence numbers: a burst
// that already covers the target need not wait for the clock.
func (b *jitterBuffer) span(s *slot) int64 {
	return int64(uint16(b.end-s.seq-1)) * b.ns(b.lastDur)
}

// ns converts timestamp units to nanoseconds.
func (b *jitterBuffer) ns(ts uint32) int64 { return int64(ts) * int64(time.Second) / b.clock }

// margin is how long before now a packet with timestamp ts was due: the playout
// delay the buffer adds if that packet plays now.
func (b *jitterBuffer) margin(ts uint32, now int64) int64 { return now - b.due(ts) }

// observe feeds one arrival to the delay estimate.
func (b *jitterBuffer) observe(at int64, ts uint32) {
	if !b.anchored {
		b.anchored, b.arrRef, b.tsRef = true, at, ts
	}
	dt := int32(ts - b.tsRef)
	if dt > 1<<29 { // keep timestamp differences far from int32 overflow
		const shift = 1 << 28
		b.tsRef += shift
		b.arrRef += shift * int64(time.Second) / b.clock
		dt -= shift
	}
	d := at - (b.arrRef + int64(dt)*int64(time.Second)/b.clock)
	if b.winLen > 0 {
		if diff := d - b.win[b.winHead].d; diff > jbRestart || diff < -jbRestart {
			b.arrRef, b.tsRef, d = at, ts, 0
			b.winLen = 0
		}
	}
	// Monotonic queue: drop newer entries no smaller than d, then stale ones at the
	// front (the newest always stays, so a silence keeps the last base delay).
	mask := len(b.win) - 1
	for b.winLen > 0 && b.win[(b.winHead+b.winLen-1)&mask].d >= d {
		b.winLen--
	}
	if b.winLen == len(b.win) {
		if len(b.win) < jbWindowCap {
			w := make([]arrival, 2*len(b.win))
			for i := range b.winLen {
				w[i] = b.win[(b.winHead+i)&mask]
			}
			b.win, b.winHead, mask = w, 0, len(w)-1
		} else {
			b.winHead, b.winLen = (b.winHead+1)&mask, b.winLen-1
		}
	}
	b.win[(b.winHead+b.winLen)&mask] = arrival{at, d}
	b.winLen++
	for b.winLen > 1 && b.win[b.winHead].at < at-jbWindow {
		b.winHead, b.winLen = (b.winHead+1)&mask, b.winLen-1
	}
	r := d - b.win[b.winHead].d
	b.histW /= jbForget
	renorm := b.histW > 1e12
	if renorm {
		for i := range b.hist {
			b.hist[i] /= b.histW
		}
		b.histTotal /= b.histW
		b.histW = 1
	}
	i := int(min(r/jbBucket, int64(len(b.hist)-1)))
	b.hist[i] += b.histW
	b.histTotal += b.histW
	if renorm {
		b.rescan() // a fresh sum, so rounding in above cannot build up
		return
	}
	if i > b.q {
		b.above += b.histW
	}
	// The new weight moves the quantile by a bucket or so: walk q there.
	limit := (1 - jbQuantile) * b.histTotal
	for b.q < len(b.hist)-1 && b.above > limit {
		b.q++
		b.above -= b.hist[b.q]
	}
	for b.q >= 0 && b.above+b.hist[b.q] <= limit {
		b.above += b.hist[b.q]
		b.q--
	}
}

// rescan finds q and above by summing the histogram from the top.
func (b *jitterBuffer) rescan() {
	limit := (1 - jbQuantile) * b.histTotal
	var acc float64
	for i := len(b.hist) - 1; i >= 0; i-- {
		if acc+b.hist[i] > limit {
			b.q, b.above = i, acc
			return
		}
		acc += b.hist[i]
	}
	b.q, b.above = -1, acc
}

// updateTarget sets the target delay to the histogram's 95th percentile, within bounds.
func (b *jitterBuffer) updateTarget() {
	t := int64(b.q+1) * jbBucket
	b.target = min(max(t, b.min), b.max)
	b.targetNow.Store(b.target)
}

// read fills dst with the next frame. It returns false, dst zeroed, when nothing is
// due: before a talkspurt starts, in a silence, or when the reader runs ahead of the
// sender (draining a burst faster than real time).
func (b *jitterBuffer) read(dst []int16, now time.Time) bool {
	if !b.started || !b.anchored {
		clear(dst)
		return false
	}
	at := int64(now.Sub(b.epoch))
	b.updateTarget()
	onClock := at-b.lastRead >= int64(time.Second)*int64(b.lastDur)/b.clock/2
	b.lastRead = at
	for len(b.carry) < len(dst) {
		if !b.step(at, onClock) {
			break
		}
	}
	if len(b.carry) < len(dst) {
		clear(dst)
		return false
	}
	copy(dst, b.carry)
	b.carry = b.carry[:copy(b.carry, b.carry[len(dst):])]
	return true
}

// at returns the packet with sequence number seq if it is buffered.
func (b *jitterBuffer) at(seq uint16) *slot {
	if s := &b.slots[seq%jbSlots]; s.filled && s.seq == seq {
		return s
	}
	return nil
}

// first returns the earliest buffered packet from seq on.
func (b *jitterBuffer) first(seq uint16) *slot {
	if b.count == 0 {
		return nil
	}
	for ; int16(seq-b.end) < 0; seq++ {
		if s := b.at(seq); s != nil {
			return s
		}
	}
	return nil
}

// step appends one packet's worth of audio to carry, or returns false if none is due.
func (b *jitterBuffer) step(now int64, onClock bool) bool {
	for range jbSlots + 2 { // each pass either returns or consumes a packet
		if !b.playing {
			s := b.first(b.nextSeq)
			// Start on the tick nearest the target, or at once if a burst covers it.
			if s == nil || b.margin(s.timestamp, now) < b.target-b.ns(b.lastDur)/2 && b.span(s) < b.target {
				return false
			}
			if b.everPlayed {
				b.lost.Add(uint64(uint16(s.seq - b.nextSeq))) // zero after silence suppression
			}
			b.nextSeq, b.nextTS, b.expanded = s.seq, s.timestamp, 0
			b.playing, b.everPlayed = true, true
			return b.play(s, now)
		}
		tol := int32(b.lastDur / 2)
		if s := b.at(b.nextSeq); s != nil {
			if int32(s.timestamp-b.nextTS) > tol {
				b.toIdle() // a timestamp gap: silence suppression, a new talkspurt
				continue
			}
			m := b.margin(s.timestamp, now)
			slack := m - b.target
			switch {
			case m > 3*b.max && b.count > 1:
				b.drop(s, now, true) // far too much delay and no pause to shed it in
				continue
			case slack > b.ns(b.lastDur)/2+jbHyst && b.lastQuiet && b.count > 1:
				if b.decode(s); isQuiet(b.carry[b.fresh:]) {
					b.carry = b.carry[:b.fresh]
					b.drop(s, now, false)
					continue
				}
				return b.emit(s, now)
			case slack < -jbHyst && b.lastQuiet && b.expanded == 0:
				b.synth(nil, traceStretch, now) // buy delay in a pause
				return true
			}
			return b.play(s, now)
		}
		if q := b.first(b.nextSeq + 1); q != nil {
			if int32(q.timestamp-(b.nextTS+b.expanded)) <= tol {
				b.lost.Add(uint64(uint16(q.seq - b.nextSeq))) // its turn came and went
				b.nextSeq, b.nextTS, b.expanded = q.seq, q.timestamp, 0
				continue
			}
			if b.concealRun >= b.concealMax() {
				b.toIdle() // a long gap: start again when q is due
				continue
			}
			var next []byte
			if q.seq == b.nextSeq+1 {
				next = b.payload(q)
			}
			b.synth(next, traceConceal, now)
			return true
		}
		// Nothing buffered: conceal if the packet is overdue on the call's clock.
		if !onClock || b.margin(b.nextTS+b.expanded, now) < b.target-jbHyst {
			return false
		}
		if !b.dry {
			b.dry = true
			b.underruns.Add(1)
		}
		if b.concealRun >= b.concealMax() {
			b.toIdle() // the talkspurt ended, or the sender went away
			return false
		}
		b.synth(nil, traceConceal, now)
		return true
	}
	return false
}

func (b *jitterBuffer) concealMax() int {
	return int(b.rate * int64(jbConcealMax) / int64(time.Second))
}

// toIdle ends the talkspurt: the next one starts on the target delay.
func (b *jitterBuffer) toIdle() {
	b.playing, b.expanded, b.concealRun, b.dry = false, 0, 0, false
	if b.plc != nil {
		b.plc.reset()
	}
}

// decode appends s decoded to carry, from fresh on: decoded in place, not copied there.
func (b *jitterBuffer) decode(s *slot) {
	b.fresh = len(b.carry)
	b.carry = b.codec.Decode(b.carry, b.payload(s))
}

func (b *jitterBuffer) play(s *slot, now int64) bool {
	b.decode(s)
	return b.emit(s, now)
}

// emit takes the packet just decoded into carry and advances past it.
func (b *jitterBuffer) emit(s *slot, now int64) bool {
	got := b.carry[b.fresh:]
	if len(got) > 0 {
		if b.plc != nil && !b.silenceFill {
			b.plc.good(got) // cross-fade out of concealment, keep history
		}
		b.lastN = len(got)
		b.lastDur = uint32(int64(len(got)) * b.clock / b.rate)
		b.lastQuiet = isQuiet(got)
	}
	m := b.margin(s.timestamp, now)
	b.delaySum.Add(uint64(max(m, 0)))
	b.delayN.Add(1)
	if b.trace != nil {
		b.trace(tracePacket, s.timestamp, m, got)
	}
	b.advance(s)
	return true
}

// drop discards s to lower the delay; forced drops (mid-word) are counted.
func (b *jitterBuffer) drop(s *slot, now int64, forced bool) {
	if forced {
		b.dropped.Add(1)
	}
	if b.trace != nil {
		b.trace(traceDrop, s.timestamp, b.margin(s.timestamp, now), nil)
	}
	b.advance(s)
}

func (b *jitterBuffer) advance(s *slot) {
	b.nextSeq, b.nextTS = s.seq+1, s.timestamp+b.lastDur
	b.expanded, b.concealRun, b.dry = 0, 0, false
	b.release(s)
}

// synth appends one packet's worth of concealment: for a missing packet, or to
// stretch a pause. next is the following packet's payload if buffered (Opus FEC).
func (b *jitterBuffer) synth(next []byte, kind traceKind, now int64) {
	n := len(b.carry)
	switch {
	case b.silenceFill:
		for range b.lastN {
			b.carry = append(b.carry, 0)
		}
	case b.concealer != nil:
		b.carry = b.concealer.Conceal(b.carry, b.lastN, next)
	default:
		b.carry = b.plc.conceal(b.carry, b.lastN)
	}
	out := b.carry[n:]
	b.lastQuiet = isQuiet(out)
	if b.trace != nil {
		b.trace(kind, b.nextTS+b.expanded, b.margin(b.nextTS+b.expanded, now), out)
	}
	if kind == traceConceal {
		b.expanded += b.lastDur
		b.concealRun += len(out)
		b.concealed.Add(uint64(len(out)))
	}
}

func isQuiet(s []int16) bool {
	limit := quietPower * int64(len(s))
	var e int64
	for len(s) >= 32 { // speech is mostly loud: the energy passes the limit early
		for _, v := range s[:32] {
			e += int64(v) * int64(v)
		}
		if e >= limit {
			return false
		}
		s = s[32:]
	}
	for _, v := range s {
		e += int64(v) * int64(v)
	}
	return e < limit
}

// delayStats is what Stats reports: mean playout delay, current target, concealed ms.
func (b *jitterBuffer) delayStats() (mean, target time.Duration, concealedMs uint64) {
	if n := b.delayN.Load(); n > 0 {
		mean = time.Duration(b.delaySum.Load() / n)
	}
	return mean, time.Duration(b.targetNow.Load()), b.concealed.Load() * 1000 / uint64(b.rate)
}
