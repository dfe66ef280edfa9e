// Package media is the RTP endpoint of a call: a UDP port from a pool, symmetric RTP
// latching, an adaptive jitter buffer with loss concealment played out on the
// caller's 20 ms clock, G.711 and G.722 codecs (Opus in media/opus), RFC 4733 DTMF,
// RTCP with per-call quality (E-model MOS) and a media timeout. It speaks 20 ms frames of 16-bit mono PCM
// (see media/pcm) upward and knows nothing of SIP or agents.
//
// Nothing on the packet path allocates in steady state: datagrams are read into one
// reused buffer, parsed into one reused rtp.Header, held in ring slots whose buffers
// are reused, decoded into the caller's frame, and sent from one reused buffer.
package media
