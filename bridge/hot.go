package bridge

import (
	"unsafe"

	"github.com/switchboard-voip/switchboard/media/warm"
)

// hotter is a stream or an agent session that can say which memory its part
// of a frame touches (media.Stream, the echo and Twilio sessions, and the
// wrappers here); the frame clock warms it ahead of the frame (clock.go).
type hotter interface {
	Hot(dst []warm.Span) []warm.Span
}

// hotSpans is the memory the session's frame touches: its own, the stream's
// and the agent's. On the clock goroutine, between frames.
func (s *session) hotSpans(dst []warm.Span) []warm.Span {
	dst = append(dst, warm.Of(s), warm.Slice(s.in, 640), warm.Slice(s.out, 640), warm.Of(s.queue),
		warm.Of(s.firstAudio), chanSpan(s.switchTo), chanSpan(s.dtmfRTP), chanSpan(s.dtmfInfo),
		chanSpan(s.mediaChanges))
	s.queue.mu.Lock()
	dst = append(dst, warm.Slice(s.queue.buf, 1280))
	s.queue.mu.Unlock()
	return hotOf(hotOf(dst, s.stream), s.as)
}

// hotOf appends what x says its frame touches, if it can say.
func hotOf(dst []warm.Span, x any) []warm.Span {
	if h, ok := x.(hotter); ok {
		return h.Hot(dst)
	}
	return dst
}

// chanSpan is a channel's own structure, which len reads (takeEvents).
func chanSpan[T any](c <-chan T) warm.Span {
	return warm.Span{P: *(*unsafe.Pointer)(unsafe.Pointer(&c)), N: 96}
}

// Hot implements hotter.
func (f *firstRTP) Hot(dst []warm.Span) []warm.Span {
	return hotOf(append(dst, warm.Of(f)), f.AudioStream)
}

// Hot implements hotter.
func (s *recordingStream) Hot(dst []warm.Span) []warm.Span {
	return hotOf(append(dst, warm.Of(s)), s.AudioStream)
}

// Hot implements hotter: the chain and the step that runs.
func (cs *chainSession) Hot(dst []warm.Span) []warm.Span {
	dst = append(dst, warm.Of(cs))
	if p := cs.cur.Load(); p != nil {
		dst = hotOf(append(dst, warm.Of(p)), p.s)
	}
	return dst
}
