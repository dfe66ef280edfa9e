package pcm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestWAVRoundTripFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.wav")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWAVWriter(f, 16000, 1)
	if err != nil {
		t.Fatal(err)
	}
	want := Tone(440, 16000, 1000, 0.7)
	for i := 0; i < len(want); i += 320 { // streamed in frames
		if err := w.Write(want[i:min(i+320, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	f.Close()

	f, err = os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, rate, err := ReadWAV(f)
	if err != nil {
		t.Fatal(err)
	}
	if rate != 16000 || !slices.Equal(got, want) {
		t.Errorf("read back %d samples at %d Hz, want %d at 16000", len(got), rate, len(want))
	}
	st, _ := os.Stat(path)
	if st.Size() != int64(44+2*len(want)) {
		t.Errorf("file is %d bytes, want %d", st.Size(), 44+2*len(want))
	}
}

// seekBuffer is an in-memory io.WriteSeeker.
type seekBuffer struct {
	b   []byte
	pos int
}

func (s *seekBuffer) Write(p []byte) (int, error) {
	if need := s.pos + len(p); need > len(s.b) {
		s.b = append(s.b, make([]byte, need-len(s.b))...)
	}
	copy(s.b[s.pos:], p)
	s.pos += len(p)
	return len(p), nil
}

func (s *seekBuffer) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		s.pos = int(off)
	case io.SeekCurrent:
		s.pos += int(off)
	case io.SeekEnd:
		s.pos = len(s.b) + int(off)
	}
	return int64(s.pos), nil
}

func TestWAVStereoIsAveraged(t *testing.T) {
	var buf seekBuffer
	w, err := NewWAVWriter(&buf, 8000, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]int16{100, 300, -1000, -2000, 32767, 32767}); err != nil {
		t.Fatal(err)
	}
	if err := w.Write([]int16{1}); err == nil {
		t.Error("odd sample count on a stereo writer: no error")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	got, rate, err := ReadWAV(bytes.NewReader(buf.b))
	if err != nil {
		t.Fatal(err)
	}
	if want := []int16{200, -1500, 32767}; rate != 8000 || !slices.Equal(got, want) {
		t.Errorf("got %v at %d Hz, want %v at 8000", got, rate, want)
	}
}

func TestNewWAVWriterRejects(t *testing.T) {
	for _, tc := range []struct{ rate, channels int }{{8000, 0}, {8000, 3}, {0, 1}} {
		if _, err := NewWAVWriter(&seekBuffer{}, tc.rate, tc.channels); !errors.Is(err, ErrBadArgument) {
			t.Errorf("NewWAVWriter(%d, %d): err = %v, want ErrBadArgument", tc.rate, tc.channels, err)
		}
	}
}

// wavBytes builds a WAV file by hand: the fmt fields, then extra chunks before data.
func wavBytes(format, channels uint16, rate uint32, bits uint16, extra []byte, data []byte) []byte {
	var b bytes.Buffer
	le := func(v any) { binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(0)) // readers must not trust it
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(format)
	le(channels)
	le(rate)
	le(rate * uint32(channels) * uint32(bits) / 8)
	le(channels * bits / 8)
	le(bits)
	b.Write(extra)
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestReadWAV(t *testing.T) {
	pcm := []byte{1, 0, 2, 0, 0xff, 0xff}
	list := append([]byte("LIST\x05\x00\x00\x00INFOx"), 0) // odd size, padded
	tests := []struct {
		name    string
		in      []byte
		want    []int16
		rate    int
		wantErr error
	}{
		{"mono", wavBytes(1, 1, 8000, 16, nil, pcm), []int16{1, 2, -1}, 8000, nil},
		{"LIST chunk skipped", wavBytes(1, 1, 22050, 16, list, pcm), []int16{1, 2, -1}, 22050, nil},
		{"data size past EOF", append(wavBytes(1, 1, 8000, 16, nil, pcm)[:40], 0xff, 0xff, 0xff, 0xff, 5, 0), []int16{5}, 8000, nil},
		{"empty", nil, nil, 0, ErrNotWAV},
		{"garbage", []byte("hello, this is not a wave file at all"), nil, 0, ErrNotWAV},
		{"float", wavBytes(3, 1, 8000, 32, nil, pcm), nil, 0, ErrUnsupportedFormat},
		{"8-bit", wavBytes(1, 1, 8000, 8, nil, pcm), nil, 0, ErrUnsupportedFormat},
		{"no channels", wavBytes(1, 0, 8000, 16, nil, pcm), nil, 0, ErrUnsupportedFormat},
		{"no data", wavBytes(1, 1, 8000, 16, nil, pcm)[:36], nil, 0, ErrMissingChunk},
		{"truncated chunk", append(wavBytes(1, 1, 8000, 16, nil, nil)[:36], "LIST\xff\x00\x00\x00ab"...), nil, 0, ErrTruncated},
		{"data before fmt", []byte("RIFF\x00\x00\x00\x00WAVEdata\x02\x00\x00\x00\x01\x00"), nil, 0, ErrMissingChunk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, rate, err := ReadWAV(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (rate != tc.rate || !slices.Equal(got, tc.want)) {
				t.Errorf("got %v at %d Hz, want %v at %d", got, rate, tc.want, tc.rate)
			}
		})
	}
}

func TestReadWAVGarbageNeverPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	valid := wavBytes(1, 2, 8000, 16, nil, make([]byte, 64))
	for range 5000 {
		b := slices.Clone(valid)
		for range 1 + rng.IntN(8) { // corrupt a few bytes of a valid file
			b[rng.IntN(len(b))] = byte(rng.Uint32())
		}
		b = b[:rng.IntN(len(b)+1)]
		ReadWAV(bytes.NewReader(b))
		junk := make([]byte, rng.IntN(100))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		if _, _, err := ReadWAV(bytes.NewReader(junk)); err == nil {
			t.Fatalf("random bytes %x read as a WAV file", junk)
		}
	}
}

func FuzzReadWAV(f *testing.F) {
	f.Add(wavBytes(1, 1, 8000, 16, nil, []byte{1, 2, 3, 4}))
	f.Add(wavBytes(0xFFFE, 2, 48000, 16, nil, []byte{1, 2, 3, 4}))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVE"))
	f.Fuzz(func(t *testing.T, b []byte) {
		samples, rate, err := ReadWAV(bytes.NewReader(b))
		if err == nil && rate <= 0 {
			t.Errorf("no error but rate %d (%d samples)", rate, len(samples))
		}
	})
}
