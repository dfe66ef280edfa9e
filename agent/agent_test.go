package agent

import (
	"context"
	"slices"
	"testing"
	"time"
)

// recorder is a Controls that keeps what a session asked for.
type recorder struct {
	played  []int16
	marks   []string
	cleared int
	hangup  string
}

func (r *recorder) Play(s []int16, _ int) { r.played = append(r.played, s...) }
func (r *recorder) Mark(name string)      { r.marks = append(r.marks, name) }
func (r *recorder) Clear()                { r.cleared++ }
func (r *recorder) Queued() time.Duration { return 0 }
func (r *recorder) Hangup(reason string)  { r.hangup = reason }
func (r *recorder) SendDTMF(string)       {}
func (r *recorder) Transfer(string)       {}

func TestEchoPlaysCallerAudioBack(t *testing.T) {
	ctl := &recorder{}
	s, err := Echo{}.Start(context.Background(), Call{}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	frame := []int16{1, -2, 3, -4}
	s.Audio(frame, 8000)
	s.Audio(frame, 8000)
	if want := append(slices.Clone(frame), frame...); !slices.Equal(ctl.played, want) {
		t.Fatalf("played %v, want %v", ctl.played, want)
	}
}

func TestPromptThenNextAgent(t *testing.T) {
	ctl := &recorder{}
	greeting := []int16{7, 7, 7}
	s, err := Prompt{Samples: greeting, Rate: 8000, Then: Echo{}}.Start(context.Background(), Call{}, ctl)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ctl.played, greeting) || !slices.Equal(ctl.marks, []string{promptDone}) {
		t.Fatalf("start: played %v marks %v", ctl.played, ctl.marks)
	}
	s.Audio([]int16{1, 2}, 8000) // still greeting: caller audio is not echoed
	s.Event(Event{Kind: MarkPlayed, Name: "other"})
	s.Audio([]int16{1, 2}, 8000)
	if len(ctl.played) != len(greeting) {
		t.Fatalf("echoed before the greeting ended: %v", ctl.played)
	}
	s.Event(Event{Kind: MarkPlayed, Name: promptDone})
	s.Audio([]int16{5, 6}, 8000)
	if want := []int16{7, 7, 7, 5, 6}; !slices.Equal(ctl.played, want) {
		t.Fatalf("played %v, want %v", ctl.played, want)
	}
	if ctl.hangup != "" {
		t.Fatalf("hung up: %q", ctl.hangup)
	}
}

func TestPromptAloneHangsUpWhenPlayed(t *testing.T) {
	ctl := &recorder{}
	s, _ := Prompt{Samples: []int16{1}, Rate: 8000}.Start(context.Background(), Call{}, ctl)
	s.Event(Event{Kind: MarkPlayed, Name: promptDone})
	if ctl.hangup == "" {
		t.Fatal("prompt without a next agent did not hang up")
	}
}
