package bridge

import (
	"sync"
	"sync/atomic"
)

// playout is the queue between an agent and the caller: any chunk size in, one
// 20 ms frame out per tick, marks reported when the audio before them has played,
// and clear (barge-in) that empties it at once. Producers are agent goroutines;
// the consumer is the call's clock.
type playout struct {
	mu    sync.Mutex
	buf   []int16 // ring
	head  int     // index of the oldest sample
	n     int     // samples queued
	in    int64   // samples ever queued
	out   int64   // samples ever played or cleared
	marks []mark
	due   []string     // marks reached, handed to the clock goroutine
	dueN  atomic.Int32 // len(due), read without the lock: most frames have no mark
	empty bool         // last frame popped had no audio: the next audio starts a talkspurt
	small int          // the starting capacity, kept while nothing bursts ahead
}

// shrinkAbove is the capacity, in multiples of the starting one, that an
// empty queue gives back.
const shrinkAbove = 16

type mark struct {
	at   int64 // the mark is reached when out >= at
	name string
}

// newPlayout makes a queue for frames of frame samples. It starts small
// (an echo or a bridged leg keeps a frame or two queued) and grows with what
// an agent queues ahead; once drained it shrinks back, so a long prompt does
// not hold its memory for the rest of the call.
func newPlayout(frame int) *playout {
	return &playout{buf: make([]int16, 2*frame), small: 2 * frame, empty: true}
}

// Push queues samples (already at the stream's rate).
func (q *playout) Push(s []int16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n+len(s) > len(q.buf) {
		q.grow(q.n + len(s))
	}
	tail := (q.head + q.n) % len(q.buf)
	c := copy(q.buf[tail:], s)
	copy(q.buf, s[c:])
	q.n += len(s)
	q.in += int64(len(s))
}

func (q *playout) grow(need int) {
	size := max(2*len(q.buf), 1)
	for size < need {
		size *= 2
	}
	nb := make([]int16, size)
	c := copy(nb, q.buf[q.head:min(q.head+q.n, len(q.buf))])
	copy(nb[c:], q.buf[:q.n-c])
	q.buf, q.head = nb, 0
}

// Mark queues a named marker after the audio queued so far.
func (q *playout) Mark(name string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.marks = append(q.marks, mark{at: q.in, name: name})
	q.reached()
}

// Clear drops all queued audio; every pending mark is reached.
func (q *playout) Clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.out += int64(q.n)
	q.head, q.n = 0, 0
	for i := range q.marks {
		q.marks[i].at = q.out
	}
	q.reached()
}

// Pop fills dst with the next frame (zeros where the queue runs short). It
// reports whether dst holds any queued audio and whether that audio starts a
// talkspurt (the first audio after silence).
func (q *playout) Pop(dst []int16) (audio, talkspurt bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(len(dst), q.n)
	c := copy(dst[:k], q.buf[q.head:min(q.head+k, len(q.buf))])
	copy(dst[c:k], q.buf[:k-c])
	clear(dst[k:])
	if q.n -= k; q.n == 0 {
		q.head = 0
		if len(q.buf) > shrinkAbove*q.small {
			q.buf = make([]int16, q.small) // once per burst, not per frame
		}
	} else {
		q.head = (q.head + k) % len(q.buf)
	}
	q.out += int64(k)
	q.reached()
	audio = k > 0
	talkspurt = audio && q.empty
	q.empty = !audio
	return audio, talkspurt
}

// reached moves marks whose audio has played to due. Called with mu held.
func (q *playout) reached() {
	i := 0
	for ; i < len(q.marks) && q.marks[i].at <= q.out; i++ {
		q.due = append(q.due, q.marks[i].name)
	}
	if i > 0 {
		q.marks = append(q.marks[:0], q.marks[i:]...)
		q.dueN.Store(int32(len(q.due)))
	}
}

// Due appends the names of marks reached since the last call to dst.
func (q *playout) Due(dst []string) []string {
	if q.dueN.Load() == 0 {
		return dst
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	dst = append(dst, q.due...)
	q.due = q.due[:0]
	q.dueN.Store(0)
	return dst
}

// Len is the number of samples queued.
func (q *playout) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
