package media

import "github.com/switchboard-voip/switchboard/media/warm"

// Hot appends the memory a frame of this stream touches: its own state, the
// jitter buffer's and the concealment's, the socket's, and the buffers they
// hold. The frame clock warms it ahead of the frame (media/warm).
func (s *Stream) Hot(dst []warm.Span) []warm.Span {
	dst = append(dst, warm.Of(s), warm.Of(s.conn), warm.Of(s.remote.Load()))
	s.mu.Lock()
	if jb := s.jb; jb != nil {
		dst = append(dst, warm.Of(jb), warm.Slice(jb.carry, 640))
		if jb.plc != nil {
			dst = append(dst, warm.Of(jb.plc), warm.Slice(jb.plc.hist, 1024))
		}
		for _, b := range jb.bufs[:min(len(jb.bufs), 4)] { // a steady call uses two or three
			dst = append(dst, warm.Slice(b, 256))
		}
	}
	s.mu.Unlock()
	s.tx.mu.Lock()
	dst = append(dst, warm.Slice(s.tx.buf, 512))
	s.tx.mu.Unlock()
	return dst
}
