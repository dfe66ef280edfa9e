package bridge

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-voip/switchboard/media/pcm"
)

// recordQueue is how many 20 ms stereo frames may wait for the disk: 1 s.
const recordQueue = 50

// recorder writes one call to a stereo WAV: the caller left, what we send
// right, one frame of each per tick of the call's clock. The media path hands
// frames over through a bounded channel of pooled buffers and never waits: when
// the writer falls behind, ticks are dropped, counted, and written as silence
// once it catches up, so the two channels and the timeline stay aligned.
type recorder struct {
	path string
	n    int // samples per channel per frame
	log  *slog.Logger

	free chan []int16    // pooled interleaved frames, 2n samples each
	full chan recorded   // frames for the writer
	cur  []int16         // the frame being filled this tick; nil if none was free
	left bool            // cur has this tick's caller audio
	gap  int             // ticks dropped since the last frame queued
	done chan struct{}   // closed when the writer has finished
	err  error           // the writer's, read after done
	out  io.WriteSeeker  // the file
	cls  func() error    // closes out
	fr   atomic.Uint64   // frames written (silence for drops included)
	drop atomic.Uint64   // ticks dropped because the writer was behind
	slow chan<- struct{} // tests: the writer waits on this before each frame; nil normally
}

// recorded is one tick for the writer: gap ticks of silence, then frame.
type recorded struct {
	frame []int16
	gap   int
}

// recordingPath names a call's recording after its start time and Call-ID.
func recordingPath(dir, callID string, start time.Time) string {
	safe := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.', r == '@':
			return r
		}
		return '_'
	}, callID)
	if len(safe) > 128 {
		safe = safe[:128]
	}
	return filepath.Join(dir, start.UTC().Format("20060102T150405Z")+"-"+safe+".wav")
}

// startRecording creates the call's WAV in dir and starts its writer.
func startRecording(dir, callID string, rate int, log *slog.Logger) (*recorder, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	path := recordingPath(dir, callID, time.Now())
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return nil, err
	}
	r, err := newRecorder(f, f.Close, rate, log)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	r.path = path
	return r, nil
}

func newRecorder(out io.WriteSeeker, closeOut func() error, rate int, log *slog.Logger) (*recorder, error) {
	w, err := pcm.NewWAVWriter(out, rate, 2)
	if err != nil {
		return nil, err
	}
	n := pcm.FrameSamples(rate)
	r := &recorder{
		n:    n,
		log:  log,
		free: make(chan []int16, recordQueue),
		full: make(chan recorded, recordQueue),
		done: make(chan struct{}),
		out:  out,
		cls:  closeOut,
	}
	for range recordQueue {
		r.free <- make([]int16, 2*n)
	}
	go r.write(w)
	return r, nil
}

// write is the writer goroutine: frames to the file until the queue closes.
func (r *recorder) write(w *pcm.WAVWriter) {
	defer close(r.done)
	silence := make([]int16, 2*r.n)
	var errs []error
	for rec := range r.full {
		if r.slow != nil {
			r.slow <- struct{}{}
		}
		for range rec.gap {
			if err := w.Write(silence); err != nil && len(errs) == 0 {
				errs = append(errs, err)
			}
			r.fr.Add(1)
		}
		if err := w.Write(rec.frame); err != nil && len(errs) == 0 {
			errs = append(errs, err)
		}
		r.fr.Add(1)
		r.free <- rec.frame
	}
	errs = append(errs, w.Close(), r.cls())
	r.err = errors.Join(errs...)
}

// frame returns this tick's buffer, taking one from the pool if needed; nil
// when the pool is empty (the writer is behind).
func (r *recorder) frame() []int16 {
	if r.cur == nil {
		select {
		case r.cur = <-r.free:
			clear(r.cur)
		default:
		}
	}
	return r.cur
}

// caller records this tick's caller audio (left).
func (r *recorder) caller(samples []int16) {
	if r.left {
		r.flush() // two reads without a write: the tick sent nothing
	}
	if f := r.frame(); f != nil {
		for i := range min(len(samples), r.n) {
			f[2*i] = samples[i]
		}
	}
	r.left = true
}

// sent records what this tick sent toward the caller (right) and ends the tick.
func (r *recorder) sent(samples []int16) {
	if f := r.frame(); f != nil {
		for i := range min(len(samples), r.n) {
			f[2*i+1] = samples[i]
		}
	}
	r.flush()
}

// flush queues this tick's frame, or counts it dropped.
func (r *recorder) flush() {
	r.left = false
	if r.cur == nil {
		r.gap++
		r.drop.Add(1)
		return
	}
	select {
	case r.full <- recorded{frame: r.cur, gap: r.gap}:
		r.gap = 0
	default: // cannot happen while buffers come from free, but never block
		r.free <- r.cur
		r.gap++
		r.drop.Add(1)
	}
	r.cur = nil
}

// close ends the recording after the call: it queues the last frame, waits
// for the writer and reports what was written. Called once, after the last tick.
func (r *recorder) close() (frames, dropped uint64, err error) {
	if r.left {
		r.flush()
	}
	if r.gap > 0 { // drops at the very end still take their place in the timeline
		select {
		case f := <-r.free:
			clear(f)
			r.full <- recorded{frame: f, gap: r.gap - 1}
		case <-r.done:
		}
	}
	close(r.full)
	<-r.done
	if r.err != nil {
		err = fmt.Errorf("recording %s: %w", r.path, r.err)
	}
	return r.fr.Load(), r.drop.Load(), err
}

// recordingStream taps an AudioStream for a recorder: each tick's ReadFrame
// is the caller's channel, its WriteFrame ours.
type recordingStream struct {
	AudioStream
	rec *recorder
}

func (s *recordingStream) ReadFrame(dst []int16) bool {
	ok := s.AudioStream.ReadFrame(dst)
	if s.rec != nil {
		s.rec.caller(dst)
	}
	return ok
}

func (s *recordingStream) WriteFrame(src []int16, marker bool) error {
	err := s.AudioStream.WriteFrame(src, marker)
	if s.rec != nil {
		s.rec.sent(src)
	}
	return err
}

// startRecording starts tap's recorder; a failure is logged and the call goes
// on unrecorded. It runs before the call's clock starts, on the same goroutine.
func (g *Gateway) startRecording(tap *recordingStream, callID string, rate int, log *slog.Logger) {
	if tap == nil {
		return
	}
	if g.recordings == "" {
		log.Warn("route asks for recording but no recordings directory is configured")
		return
	}
	rec, err := startRecording(g.recordings, callID, rate, log)
	if err != nil {
		log.Warn("recording not started", "err", err)
		return
	}
	tap.rec = rec
}

// stopRecording finishes tap's recording after the call and describes it for
// the final log line.
func stopRecording(tap *recordingStream, log *slog.Logger) slog.Attr {
	if tap == nil || tap.rec == nil {
		return slog.Attr{}
	}
	frames, dropped, err := tap.rec.close()
	if err != nil {
		log.Warn("recording", "err", err)
	}
	return slog.Group("recording", slog.String("path", tap.rec.path),
		slog.Duration("length", time.Duration(frames)*pcm.FrameDuration), slog.Uint64("dropped_frames", dropped))
}
