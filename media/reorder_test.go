package media

import "testing"

// Ops for the reorder buffer tests: a push of a sequence number, or a pop and what
// it should yield.
const (
	wantEmpty = -1
	wantLost  = -2
)

type op struct {
	push bool
	seq  uint16 // for push
	want int    // for pop: a sequence number, wantEmpty or wantLost
}

func push(seqs ...uint16) []op {
	var ops []op
	for _, s := range seqs {
		ops = append(ops, op{push: true, seq: s})
	}
	return ops
}

func pop(wants ...int) []op {
	var ops []op
	for _, w := range wants {
		ops = append(ops, op{want: w})
	}
	return ops
}

func seq(from, to int) []uint16 { // inclusive
	var s []uint16
	for i := from; i <= to; i++ {
		s = append(s, uint16(i))
	}
	return s
}

func ints(from, to int) []int {
	var s []int
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func cat(parts ...[]op) []op {
	var ops []op
	for _, p := range parts {
		ops = append(ops, p...)
	}
	return ops
}

func TestReorderBuffer(t *testing.T) {
	tests := []struct {
		name                                      string
		ops                                       []op
		lost, late, duplicate, dropped, underruns uint64
	}{
		{name: "in order", ops: cat(push(10, 11, 12), pop(10, 11, 12, wantEmpty)), underruns: 1},
		{name: "prebuffers depth packets", ops: cat(push(10, 11), pop(wantEmpty), push(12), pop(10))},
		{name: "reordered within depth", ops: cat(push(10, 12, 11, 13), pop(10, 11, 12, 13))},
		{name: "duplicates", ops: cat(push(10, 11, 11, 12, 10), pop(10, 11, 12)), duplicate: 2},
		{name: "late", ops: cat(push(10, 11, 12), pop(10), push(10), pop(11, 12)), late: 1},
		{name: "loss", ops: cat(push(10, 12, 13), pop(10, wantLost, 12, 13), push(11)), lost: 1, late: 1},
		{name: "burst loss", ops: cat(push(10, 14), pop(10, wantLost, wantLost, wantLost, 14)), lost: 3},
		{name: "sequence wrap", ops: cat(push(65534, 65535, 0, 1), pop(65534, 65535, 0, 1))},
		{name: "reordered across wrap", ops: cat(push(65535, 1, 0, 2), pop(65535, 0, 1, 2))},
		{name: "late across wrap", ops: cat(push(65535, 0, 1), pop(65535, 0), push(65535, 0), pop(1)), late: 2},
		{name: "loss across wrap", ops: cat(push(65534, 0, 1), pop(65534, wantLost, 0, 1)), lost: 1},
		{
			name:      "underrun re-prebuffers",
			ops:       cat(push(10, 11, 12), pop(10, 11, 12, wantEmpty), push(13), pop(wantEmpty), push(14, 15), pop(13, 14, 15)),
			underruns: 1,
		},
		{name: "jump ahead restarts", ops: cat(push(10, 11, 12), pop(10), push(5000, 5001), pop(wantEmpty), push(5002), pop(5000, 5001, 5002))},
		{
			name:    "overflow drops oldest",
			ops:     cat(push(seq(10, 49)...), pop(ints(18, 49)...), pop(wantEmpty)),
			dropped: 8, underruns: 1,
		},
		{name: "one stray old packet is late", ops: cat(push(1000, 1001, 1002, 5), pop(1000)), late: 1},
		{
			name: "a run of old packets restarts",
			ops:  cat(push(1000, 1001, 1002, 5, 6, 7, 8, 9), pop(7, 8, 9)),
			late: 2,
		},
		{name: "loss at the head after wrap of the ring", ops: cat(push(seq(0, 40)...), pop(ints(9, 40)...)), dropped: 9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newReorderBuffer(reorderDepth)
			for i, o := range tc.ops {
				if o.push {
					b.push(o.seq, uint32(o.seq)*160, false, []byte{byte(o.seq)})
					continue
				}
				s, res := b.pop()
				got := wantEmpty
				switch res {
				case popLost:
					got = wantLost
				case popPacket:
					got = int(s.seq)
					if s.payload[0] != byte(s.seq) || s.timestamp != uint32(s.seq)*160 {
						t.Errorf("op %d: slot for %d holds payload %d, timestamp %d", i, s.seq, s.payload[0], s.timestamp)
					}
				}
				if got != o.want {
					t.Fatalf("op %d: pop = %d, want %d", i, got, o.want)
				}
			}
			counts := [5]uint64{b.lost.Load(), b.late.Load(), b.duplicate.Load(), b.dropped.Load(), b.underruns.Load()}
			want := [5]uint64{tc.lost, tc.late, tc.duplicate, tc.dropped, tc.underruns}
			if counts != want {
				t.Errorf("lost, late, duplicate, dropped, underruns = %v, want %v", counts, want)
			}
		})
	}
}

// A long in-order run through many wraps of the ring and of the 16-bit sequence.
func TestReorderBufferLongRun(t *testing.T) {
	b := newReorderBuffer(reorderDepth)
	s := uint16(65000)
	for range reorderDepth - 1 {
		b.push(s, 0, false, []byte{1})
		s++
	}
	for i := range 140000 {
		b.push(s, 0, false, []byte{1})
		s++
		slot, res := b.pop()
		if res != popPacket || slot.seq != uint16(65000+i) {
			t.Fatalf("pop %d: result %v, seq %v", i, res, slot)
		}
	}
	if b.lost.Load()+b.late.Load()+b.dropped.Load() != 0 {
		t.Errorf("lost %d late %d dropped %d", b.lost.Load(), b.late.Load(), b.dropped.Load())
	}
}
