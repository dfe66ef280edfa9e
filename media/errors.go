package media

import "errors"

// Errors returned by this package; callers test them with errors.Is.
var (
	// ErrMediaTimeout is Stream.Err after no valid RTP arrived for StreamConfig.Timeout.
	ErrMediaTimeout = errors.New("media: RTP timeout")
	// ErrStreamClosed is Stream.Err after Close, and what WriteFrame returns after it.
	ErrStreamClosed = errors.New("media: stream closed")
	// ErrNoPorts means every port in the pool is in use or failed to bind.
	ErrNoPorts = errors.New("media: no free RTP port")
	// ErrPortRange means NewPortPool was given no usable even port.
	ErrPortRange = errors.New("media: bad RTP port range")
	// ErrUnsupportedCodec means StreamConfig.Codec names a codec this package lacks.
	ErrUnsupportedCodec = errors.New("media: unsupported codec")
	// ErrNoRemote means WriteFrame has nowhere to send: no address from SDP and no RTP received yet.
	ErrNoRemote = errors.New("media: no remote RTP address")
	// ErrFrameSize means WriteFrame was given an empty frame or one too long for a packet.
	ErrFrameSize = errors.New("media: bad frame size")
)
