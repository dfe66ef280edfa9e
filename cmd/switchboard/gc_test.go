package main

import "testing"

// The GC target rises on the first busy sample and comes back only after
// two calm ones.
func TestGCPolicy(t *testing.T) {
	var p gcPolicy
	steps := []struct {
		rate float64
		want gcChange
	}{
		{1 << 20, stay},     // calm
		{40 << 20, toBurst}, // 40 MB/s: a burst of set-ups
		{30 << 20, stay},    // still in it
		{2 << 20, stay},     // one quiet sample: a pause inside the burst
		{40 << 20, stay},    // and it goes on
		{2 << 20, stay},     // quiet
		{1 << 20, toCalm},   // quiet again: over, collect once
		{1 << 20, stay},     // calm stays calm
		{burstRate + 1, toBurst},
	}
	for i, s := range steps {
		if got := p.next(s.rate); got != s.want {
			t.Fatalf("step %d (%.0f MB/s): %v, want %v", i, s.rate/(1<<20), got, s.want)
		}
	}
}
