package agent

import "sync/atomic"

// frameQueue carries caller frames from the call's clock to a session's writer
// goroutine without blocking the clock: a fixed set of reused buffers, and a
// frame is dropped (counted) when the writer has fallen that far behind.
type frameQueue struct {
	free    chan []int16
	full    chan []int16
	dropped atomic.Int64
}

func newFrameQueue(depth, frameSamples int) *frameQueue {
	q := &frameQueue{free: make(chan []int16, depth), full: make(chan []int16, depth)}
	for range depth {
		q.free <- make([]int16, 0, frameSamples)
	}
	return q
}

// put copies frame into the queue; false when it was dropped.
func (q *frameQueue) put(frame []int16) bool {
	select {
	case b := <-q.free:
		q.full <- append(b[:0], frame...)
		return true
	default:
		q.dropped.Add(1)
		return false
	}
}

// release hands a buffer taken from full back for reuse.
func (q *frameQueue) release(b []int16) { q.free <- b }
