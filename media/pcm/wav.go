package pcm

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Errors returned by ReadWAV and the WAVWriter; callers test them with errors.Is.
var (
	ErrNotWAV            = errors.New("pcm: not a RIFF/WAVE file")
	ErrUnsupportedFormat = errors.New("pcm: unsupported WAV format")
	ErrMissingChunk      = errors.New("pcm: WAV file lacks a fmt or data chunk")
	ErrTruncated         = errors.New("pcm: WAV file is truncated")
	ErrBadArgument       = errors.New("pcm: bad argument")
)

const (
	wavFormatPCM        = 1
	wavFormatExtensible = 0xFFFE
	wavHeaderSize       = 44
	maxWAVChannels      = 8
)

// ReadWAV reads a RIFF WAVE file of 16-bit PCM at any rate. Multichannel audio is
// averaged down to mono. Chunks other than fmt and data (LIST, fact, ...) are skipped.
// A data chunk whose size runs past the end of the file (as left by a writer that
// never fixed up its header) is read to EOF.
func ReadWAV(r io.Reader) (samples []int16, rate int, err error) {
	var riff [12]byte
	if _, err := io.ReadFull(r, riff[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrNotWAV, err)
	}
	if string(riff[0:4]) != "RIFF" || string(riff[8:12]) != "WAVE" {
		return nil, 0, ErrNotWAV
	}
	var (
		haveFmt  bool
		channels int
	)
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, 0, ErrMissingChunk
			}
			return nil, 0, fmt.Errorf("%w: chunk header: %v", ErrTruncated, err)
		}
		id := string(hdr[0:4])
		size := int64(binary.LittleEndian.Uint32(hdr[4:8]))
		switch id {
		case "fmt ":
			if size < 16 || size > 1024 {
				return nil, 0, fmt.Errorf("%w: fmt chunk of %d bytes", ErrUnsupportedFormat, size)
			}
			buf := make([]byte, size+size&1)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, 0, fmt.Errorf("%w: fmt chunk: %v", ErrTruncated, err)
			}
			format := binary.LittleEndian.Uint16(buf[0:2])
			channels = int(binary.LittleEndian.Uint16(buf[2:4]))
			rate = int(binary.LittleEndian.Uint32(buf[4:8]))
			bits := binary.LittleEndian.Uint16(buf[14:16])
			if format == wavFormatExtensible && size >= 40 {
				format = binary.LittleEndian.Uint16(buf[24:26]) // first two bytes of the SubFormat GUID
			}
			switch {
			case format != wavFormatPCM:
				return nil, 0, fmt.Errorf("%w: format tag %#x, want PCM", ErrUnsupportedFormat, format)
			case bits != 16:
				return nil, 0, fmt.Errorf("%w: %d bits per sample, want 16", ErrUnsupportedFormat, bits)
			case channels < 1 || channels > maxWAVChannels:
				return nil, 0, fmt.Errorf("%w: %d channels", ErrUnsupportedFormat, channels)
			case rate < 1000 || rate > 384000:
				return nil, 0, fmt.Errorf("%w: sample rate %d", ErrUnsupportedFormat, rate)
			}
			haveFmt = true
		case "data":
			if !haveFmt {
				return nil, 0, fmt.Errorf("%w: data before fmt", ErrMissingChunk)
			}
			data, err := io.ReadAll(io.LimitReader(r, size))
			if err != nil {
				return nil, 0, fmt.Errorf("%w: data chunk: %v", ErrTruncated, err)
			}
			return interleavedToMono(data, channels), rate, nil
		default:
			if _, err := io.CopyN(io.Discard, r, size+size&1); err != nil {
				return nil, 0, fmt.Errorf("%w: %q chunk: %v", ErrTruncated, id, err)
			}
		}
	}
}

// interleavedToMono averages little-endian 16-bit frames; a trailing partial frame is dropped.
func interleavedToMono(data []byte, channels int) []int16 {
	frame := 2 * channels
	out := make([]int16, len(data)/frame)
	for i := range out {
		var sum int
		for c := range channels {
			sum += int(int16(binary.LittleEndian.Uint16(data[i*frame+2*c:])))
		}
		out[i] = int16(sum / channels)
	}
	return out
}

// WAVWriter streams 16-bit PCM to a WAV file. The RIFF and data sizes are written as
// zero first and fixed up by Close, so a crashed recording is still readable by
// ReadWAV (which reads such a data chunk to EOF).
type WAVWriter struct {
	w        io.WriteSeeker
	channels int
	data     int64 // bytes of sample data written
	buf      []byte
	closed   bool
}

// NewWAVWriter writes the header and returns a writer for rate Hz and 1 or 2 channels.
func NewWAVWriter(w io.WriteSeeker, rate, channels int) (*WAVWriter, error) {
	if channels != 1 && channels != 2 {
		return nil, fmt.Errorf("%w: %d channels, want 1 or 2", ErrBadArgument, channels)
	}
	if rate <= 0 {
		return nil, fmt.Errorf("%w: rate %d", ErrBadArgument, rate)
	}
	var h [wavHeaderSize]byte
	copy(h[0:4], "RIFF")
	copy(h[8:16], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(h[22:], uint16(channels))
	binary.LittleEndian.PutUint32(h[24:], uint32(rate))
	binary.LittleEndian.PutUint32(h[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(h[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:40], "data")
	if _, err := w.Write(h[:]); err != nil {
		return nil, err
	}
	return &WAVWriter{w: w, channels: channels}, nil
}

// Write appends samples, interleaved (left, right, ...) when the writer has 2 channels.
func (w *WAVWriter) Write(samples []int16) error {
	if w.closed {
		return fmt.Errorf("%w: write after Close", ErrBadArgument)
	}
	if len(samples)%w.channels != 0 {
		return fmt.Errorf("%w: %d samples is not a whole number of %d-channel frames", ErrBadArgument, len(samples), w.channels)
	}
	if need := 2 * len(samples); cap(w.buf) < need {
		w.buf = make([]byte, need)
	}
	b := w.buf[:2*len(samples)]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(s))
	}
	n, err := w.w.Write(b)
	w.data += int64(n)
	return err
}

// Close fixes up the header sizes and leaves the underlying writer positioned at the
// end of the file. It does not close the underlying writer. It is idempotent.
func (w *WAVWriter) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	riffSize := min(w.data+wavHeaderSize-8, 0xFFFFFFFF)
	dataSize := min(w.data, 0xFFFFFFFF)
	var b [4]byte
	if _, err := w.w.Seek(4, io.SeekStart); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:], uint32(riffSize))
	if _, err := w.w.Write(b[:]); err != nil {
		return err
	}
	if _, err := w.w.Seek(40, io.SeekStart); err != nil {
		return err
	}
	binary.LittleEndian.PutUint32(b[:], uint32(dataSize))
	if _, err := w.w.Write(b[:]); err != nil {
		return err
	}
	_, err := w.w.Seek(0, io.SeekEnd)
	return err
}
