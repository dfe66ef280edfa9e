package bridge

import (
	"slices"
	"testing"
)

func seq(from, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(from + i)
	}
	return s
}

func TestPlayoutChunksInFramesOut(t *testing.T) {
	q := newPlayout(64) // small, so the ring wraps and grows
	var want []int16
	for i, size := range []int{7, 160, 1, 333, 40} {
		chunk := seq(len(want), size)
		q.Push(chunk)
		want = append(want, chunk...)
		if i == 2 {
			q.Mark("m1")
		}
	}
	var got []int16
	frame := make([]int16, 160)
	var marks []string
	for q.Len() > 0 {
		q.Pop(frame)
		got = append(got, frame...)
		marks = q.Due(marks)
		if len(marks) == 1 && len(got) < 168 {
			t.Fatalf("mark reported after %d samples, before its audio played", len(got))
		}
	}
	if !slices.Equal(got[:len(want)], want) {
		t.Fatal("samples out differ from samples in")
	}
	if slices.ContainsFunc(got[len(want):], func(v int16) bool { return v != 0 }) {
		t.Fatal("short frame not padded with silence")
	}
	if !slices.Equal(marks, []string{"m1"}) {
		t.Fatalf("marks %v", marks)
	}
}

func TestPlayoutMarkOnEmptyQueueIsImmediate(t *testing.T) {
	q := newPlayout(160)
	q.Mark("now")
	if got := q.Due(nil); !slices.Equal(got, []string{"now"}) {
		t.Fatalf("due %v", got)
	}
}

func TestPlayoutClearDropsAudioAndReportsMarks(t *testing.T) {
	q := newPlayout(160)
	q.Push(seq(1, 800))
	q.Mark("a")
	q.Push(seq(1, 800))
	q.Mark("b")
	frame := make([]int16, 160)
	q.Pop(frame)
	q.Clear()
	if q.Len() != 0 {
		t.Fatalf("%d samples left after clear", q.Len())
	}
	if got := q.Due(nil); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("due %v", got)
	}
	if audio, _ := q.Pop(frame); audio || slices.ContainsFunc(frame, func(v int16) bool { return v != 0 }) {
		t.Fatal("audio after clear")
	}
	q.Push(seq(5, 10))
	q.Mark("c")
	if got := q.Due(nil); len(got) != 0 {
		t.Fatalf("mark after new audio reported early: %v", got)
	}
}

func TestPlayoutTalkspurt(t *testing.T) {
	q := newPlayout(320)
	frame := make([]int16, 160)
	steps := []struct {
		push            int
		audio, spurtOut bool
	}{
		{0, false, false},
		{200, true, true}, // first audio after silence
		{0, true, false},  // the rest of it
		{0, false, false},
		{160, true, true},
	}
	for i, s := range steps {
		if s.push > 0 {
			q.Push(seq(1, s.push))
		}
		audio, spurt := q.Pop(frame)
		if audio != s.audio || spurt != s.spurtOut {
			t.Fatalf("step %d: audio=%v talkspurt=%v, want %v %v", i, audio, spurt, s.audio, s.spurtOut)
		}
	}
}

func BenchmarkPlayoutPushPop(b *testing.B) {
	q := newPlayout(8000)
	in := seq(0, 160)
	out := make([]int16, 160)
	b.ReportAllocs()
	for b.Loop() {
		q.Push(in)
		q.Pop(out)
	}
}

// A long prompt grows the queue; drained, it gives the memory back.
func TestPlayoutShrinksWhenDrained(t *testing.T) {
	q := newPlayout(160)
	prompt := make([]int16, 8000*10)
	for i := range prompt {
		prompt[i] = int16(i % 1000)
	}
	q.Push(prompt)
	if len(q.buf) < len(prompt) {
		t.Fatalf("capacity %d after a 10 s push", len(q.buf))
	}
	out := make([]int16, 160)
	for i := 0; i < len(prompt)/160; i++ {
		if audio, _ := q.Pop(out); !audio || out[0] != prompt[i*160] {
			t.Fatalf("frame %d: audio %v, first sample %d want %d", i, audio, out[0], prompt[i*160])
		}
	}
	if len(q.buf) != 320 {
		t.Errorf("capacity %d once drained, want 320", len(q.buf))
	}
	q.Push(prompt[:160])
	if audio, _ := q.Pop(out); !audio || out[1] != prompt[1] {
		t.Error("queue unusable after shrinking")
	}
}
