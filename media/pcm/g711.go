package pcm

import (
	"slices"

	"github.com/zaf/g711"
)

// G.711 (µ-law and A-law, one byte per 8 kHz sample) by table lookup, appended
// to caller buffers. The tables come from zaf/g711, whose own helpers compute
// each sample (and its slice helpers allocate): µ-law encoding looks only at a
// sample's top 14 bits and A-law at its top 12, so encoding is one lookup too.
var (
	ulawDecode, alawDecode [256]int16
	ulawEncode             [1 << 14]uint8
	alawEncode             [1 << 12]uint8
)

func init() {
	for i := range 256 {
		ulawDecode[i], alawDecode[i] = g711.DecodeUlawFrame(uint8(i)), g711.DecodeAlawFrame(uint8(i))
	}
	for i := range ulawEncode {
		ulawEncode[i] = g711.EncodeUlawFrame(int16(i << 2))
	}
	for i := range alawEncode {
		alawEncode[i] = g711.EncodeAlawFrame(int16(i << 4))
	}
}

// AppendUlaw appends src, µ-law encoded, to dst.
func AppendUlaw(dst []byte, src []int16) []byte {
	dst, out := grow(dst, len(src))
	for i, s := range src {
		out[i] = ulawEncode[uint16(s)>>2]
	}
	return dst
}

// AppendAlaw appends src, A-law encoded, to dst.
func AppendAlaw(dst []byte, src []int16) []byte {
	dst, out := grow(dst, len(src))
	for i, s := range src {
		out[i] = alawEncode[uint16(s)>>4]
	}
	return dst
}

// AppendFromUlaw appends the samples of the µ-law codes in src to dst.
func AppendFromUlaw(dst []int16, src []byte) []int16 {
	dst, out := grow(dst, len(src))
	for i, c := range src {
		out[i] = ulawDecode[c]
	}
	return dst
}

// AppendFromAlaw appends the samples of the A-law codes in src to dst.
func AppendFromAlaw(dst []int16, src []byte) []int16 {
	dst, out := grow(dst, len(src))
	for i, c := range src {
		out[i] = alawDecode[c]
	}
	return dst
}

// grow extends dst by n elements and returns it and the new part.
func grow[E any](dst []E, n int) ([]E, []E) {
	l := len(dst)
	dst = slices.Grow(dst, n)[:l+n]
	return dst, dst[l:]
}
