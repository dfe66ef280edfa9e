// Package pcm is the common currency of Switchboard's audio: 16-bit mono PCM in
// 20 ms frames, plus G.711 companding, WAV files, resampling and tone tools. It
// is a leaf that any package may import; it knows nothing of RTP, SIP or agents.
package pcm
