package agent

import "github.com/switchboard-voip/switchboard/media/warm"

// A Session may also say which memory its Audio touches, for the frame clock
// to warm ahead of the frame (media/warm):
//
//	Hot(dst []warm.Span) []warm.Span
//
// It is called on the call's clock, between frames. Echo and the Twilio
// protocol have it: they are what a thousand calls at once run.

// Hot appends the echo's state and the controls it plays into.
func (s *echoSession) Hot(dst []warm.Span) []warm.Span {
	return append(dst, warm.Of(s), warm.Data(s.ctl, 64))
}

// Hot appends the session, its connection, and the buffers a media message is
// built, read and decoded in.
func (s *twilioSession) Hot(dst []warm.Span) []warm.Span {
	w := s.w
	dst = append(dst, warm.Of(s), warm.Data(s.ctl, 64), warm.Of(w), warm.Slice(s.ulaw, 512))
	if w.raw != nil {
		dst = append(dst, warm.Of(w.raw), warm.Data(w.raw.Conn, 64), warm.Data(w.raw.rc, 64))
	}
	w.mu.Lock()
	if n := len(w.spare); n > 0 {
		dst = append(dst, warm.Slice(w.spare[n-1], 512))
	}
	w.mu.Unlock()
	if w.direct && w.rd.mu.TryLock() { // handle decodes into ulawIn and played under it
		dst = append(dst, warm.Slice(w.rd.buf, 1024), warm.Slice(s.ulawIn, 512), warm.Slice(s.played, 1024))
		w.rd.mu.Unlock()
	}
	return dst
}
