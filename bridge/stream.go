// Package bridge connects one call's audio to one target and runs it: the
// pumps in both directions on the call's 20 ms clock, the paced playout queue
// toward the caller, and the call's life from route to hang-up.
package bridge

// AudioStream is one call's audio as the bridge needs it; media.Stream
// satisfies it. Frames are 20 ms of 16-bit mono PCM at Rate.
type AudioStream interface {
	Rate() int
	// ReadFrame fills dst with the caller's next frame (concealed or silent
	// when nothing arrived) and reports whether real audio was there.
	ReadFrame(dst []int16) bool
	// WriteFrame sends one frame toward the caller.
	WriteFrame(src []int16, marker bool) error
	// Done is closed when the stream has failed (media timeout) or closed.
	Done() <-chan struct{}
	Err() error
}
