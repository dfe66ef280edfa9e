package bridge

import (
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readStereo reads a 16-bit stereo WAV as written by pcm.WAVWriter.
func readStereo(t *testing.T, path string) (rate int, left, right []int16) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[36:40]) != "data" {
		t.Fatalf("%s is not a WAV as we write them", path)
	}
	if ch := binary.LittleEndian.Uint16(b[22:]); ch != 2 {
		t.Fatalf("%d channels, want 2", ch)
	}
	if size := binary.LittleEndian.Uint32(b[40:]); int(size) != len(b)-44 {
		t.Fatalf("data size %d in the header, %d in the file: header not fixed up", size, len(b)-44)
	}
	rate = int(binary.LittleEndian.Uint32(b[24:]))
	data := b[44:]
	for i := 0; i+4 <= len(data); i += 4 {
		left = append(left, int16(binary.LittleEndian.Uint16(data[i:])))
		right = append(right, int16(binary.LittleEndian.Uint16(data[i+2:])))
	}
	return rate, left, right
}

func constFrame(n int, v int16) []int16 {
	f := make([]int16, n)
	for i := range f {
		f[i] = v
	}
	return f
}

// Each tick's caller frame lands left and our frame right, at the same place.
func TestRecorderStereoAligned(t *testing.T) {
	dir := t.TempDir()
	rec, err := startRecording(dir, "abc/../x@host", 8000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(rec.path) != dir || !strings.HasSuffix(rec.path, "-abc_.._x@host.wav") {
		t.Fatalf("recording path %q: want the call id, made safe, in %s", rec.path, dir)
	}
	const ticks = 120
	for k := range ticks {
		waitFree(rec) // ticks come every 20 ms in a call; here, as fast as the disk
		rec.caller(constFrame(160, int16(k+1)))
		rec.sent(constFrame(160, -int16(k+1)))
	}
	frames, dropped, err := rec.close()
	if err != nil || frames != ticks || dropped != 0 {
		t.Fatalf("close: %d frames, %d dropped, %v; want %d, 0, nil", frames, dropped, err, ticks)
	}
	rate, l, r := readStereo(t, rec.path)
	if rate != 8000 || len(l) != ticks*160 {
		t.Fatalf("rate %d, %d samples per channel; want 8000, %d", rate, len(l), ticks*160)
	}
	for i := range l {
		if k := int16(i/160 + 1); l[i] != k || r[i] != -k {
			t.Fatalf("sample %d: left %d right %d, want %d and %d", i, l[i], r[i], k, -k)
		}
	}
}

// waitFree waits until the writer has a buffer back, as 20 ms between ticks would.
func waitFree(r *recorder) {
	for len(r.free) == 0 {
		time.Sleep(100 * time.Microsecond)
	}
}

// A tick that sends nothing, and one whose read is missing, keep their place.
func TestRecorderUnpairedTicks(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "r.wav"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := newRecorder(f, f.Close, 8000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	rec.path = f.Name()
	rec.caller(constFrame(160, 1)) // tick 0: read only
	rec.caller(constFrame(160, 2)) // tick 1: read and write
	rec.sent(constFrame(160, 3))
	rec.sent(constFrame(160, 4)) // tick 2: write only
	rec.caller(constFrame(160, 5))
	if frames, _, err := rec.close(); frames != 4 || err != nil { // tick 3 flushed at close
		t.Fatalf("%d frames, %v; want 4", frames, err)
	}
	_, l, r := readStereo(t, f.Name())
	want := [][2]int16{{1, 0}, {2, 3}, {0, 4}, {5, 0}}
	for k, w := range want {
		if l[k*160] != w[0] || r[k*160] != w[1] {
			t.Fatalf("tick %d: %d/%d, want %d/%d", k, l[k*160], r[k*160], w[0], w[1])
		}
	}
}

// A writer that falls behind never blocks the clock: ticks are dropped and
// counted, and the file still has one frame per tick, dropped ones silent.
func TestRecorderDropsWhenBehind(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "r.wav"))
	if err != nil {
		t.Fatal(err)
	}
	slow := make(chan struct{})
	rec, err := newRecorder(f, f.Close, 8000, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	// The writer is stuck on its first frame until we let it go.
	rec.slow = slow
	const ticks = 300
	fed := make(chan struct{})
	go func() {
		defer close(fed)
		for k := range ticks {
			rec.caller(constFrame(160, int16(k+1)))
			rec.sent(constFrame(160, int16(k+1)))
		}
	}()
	select {
	case <-fed:
	case <-time.After(10 * time.Second):
		t.Fatal("the media path blocked on a stuck recording writer")
	}
	dropped := rec.drop.Load()
	if dropped < ticks-recordQueue-1 || dropped > ticks-recordQueue+1 {
		t.Fatalf("%d ticks dropped with the writer stuck, want about %d", dropped, ticks-recordQueue)
	}
	go func() {
		for range slow {
		}
	}()
	frames, d2, err := rec.close()
	close(slow)
	if err != nil || frames != ticks || d2 != dropped {
		t.Fatalf("close: %d frames, %d dropped, %v; want %d frames, %d dropped", frames, d2, err, ticks, dropped)
	}
	_, l, r := readStereo(t, f.Name())
	if len(l) != ticks*160 {
		t.Fatalf("%d samples per channel, want %d: the timeline lost its place", len(l), ticks*160)
	}
	kept := 0
	for k := range ticks {
		switch v := l[k*160]; v {
		case int16(k + 1):
			kept++
		case 0:
		default:
			t.Fatalf("tick %d holds tick %d's audio: frames moved", k, v-1)
		}
		if r[k*160] != l[k*160] {
			t.Fatalf("tick %d: channels differ %d/%d", k, l[k*160], r[k*160])
		}
	}
	if kept != ticks-int(dropped) {
		t.Fatalf("%d ticks kept, want %d", kept, ticks-int(dropped))
	}
	t.Logf("writer stuck: %d of %d ticks dropped, all %d frames in place", dropped, ticks, frames)
}

// fakeStream is an AudioStream whose frames are counters.
type fakeStream struct {
	next int16
	sent []int16
	done chan struct{}
}

func (f *fakeStream) Rate() int { return 8000 }
func (f *fakeStream) ReadFrame(dst []int16) bool {
	f.next++
	for i := range dst {
		dst[i] = f.next
	}
	return true
}
func (f *fakeStream) WriteFrame(src []int16, _ bool) error {
	f.sent = append(f.sent, src[0])
	return nil
}
func (f *fakeStream) Done() <-chan struct{} { return f.done }
func (f *fakeStream) Err() error            { return nil }

// The tap passes audio through unchanged and records nothing until started.
func TestRecordingStreamTap(t *testing.T) {
	fs := &fakeStream{done: make(chan struct{})}
	tap := &recordingStream{AudioStream: fs}
	in := make([]int16, 160)
	tap.ReadFrame(in) // before answer: not recorded
	tap.WriteFrame(in, false)
	g := &Gateway{recordings: t.TempDir()}
	log := slog.New(slog.DiscardHandler)
	g.startRecording(tap, "call-1", 8000, log)
	for range 10 {
		tap.ReadFrame(in)
		tap.WriteFrame(constFrame(160, 100+in[0]), false)
	}
	a := stopRecording(tap, log)
	if len(fs.sent) != 11 || fs.sent[10] != 111 {
		t.Fatalf("stream saw %v", fs.sent)
	}
	_, l, r := readStereo(t, tap.rec.path)
	if len(l) != 10*160 || l[0] != 2 || r[0] != 102 || l[9*160] != 11 || r[9*160] != 111 {
		t.Fatalf("recording: %d samples, first %d/%d, last %d/%d", len(l), l[0], r[0], l[len(l)-1], r[len(r)-1])
	}
	if s := a.String(); !strings.Contains(s, tap.rec.path) || !strings.Contains(s, "length=200ms") {
		t.Fatalf("log attr %s: want the path and length", s)
	}
}

// discard is a WriteSeeker that keeps nothing.
type discard struct{}

func (discard) Write(p []byte) (int, error)    { return len(p), nil }
func (discard) Seek(int64, int) (int64, error) { return 0, nil }

// The media path's cost of recording one tick: no allocation. The writer is
// given time to catch up (timer stopped) so that no tick is dropped.
func BenchmarkRecorderTick(b *testing.B) {
	rec, err := newRecorder(discard{}, func() error { return nil }, 8000, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	frame := constFrame(160, 1000)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i++; len(rec.free) == 0 {
			b.StopTimer()
			waitFree(rec)
			b.StartTimer()
		}
		rec.caller(frame)
		rec.sent(frame)
	}
	b.StopTimer()
	if _, dropped, _ := rec.close(); dropped != 0 {
		b.Fatalf("%d ticks dropped", dropped)
	}
}
