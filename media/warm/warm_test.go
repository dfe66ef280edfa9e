package warm

import (
	"testing"
	"unsafe"
)

type pair struct{ a, b int64 }

func TestSpans(t *testing.T) {
	p := &pair{1, 2}
	if s := Of(p); s.P != unsafe.Pointer(p) || s.N != 16 {
		t.Errorf("Of: %+v, want %p and 16 bytes", s, p)
	}
	if s := Of[pair](nil); s.P != nil {
		t.Errorf("Of(nil): %+v", s)
	}
	buf := make([]int16, 10, 160)
	if s := Slice(buf, 1<<20); s.P != unsafe.Pointer(&buf[0]) || s.N != 320 {
		t.Errorf("Slice: %+v, want %p and 320 bytes (the capacity)", s, &buf[0])
	}
	if s := Slice(buf, 64); s.N != 64 {
		t.Errorf("Slice capped: %d bytes, want 64", s.N)
	}
	if s := Slice(buf[:0], 64); s.P != unsafe.Pointer(&buf[0]) {
		t.Error("Slice of an empty slice with room: want its backing array")
	}
	if s := Slice([]byte(nil), 64); s.P != nil {
		t.Errorf("Slice(nil): %+v", s)
	}
	var iface interface{ get() int64 } = p
	if s := Data(iface, 64); s.P != unsafe.Pointer(p) {
		t.Errorf("Data of a pointer: %p, want %p", s.P, p)
	}
	if s := Data(nil, 64); s.P != nil {
		t.Errorf("Data(nil): %+v", s)
	}
}

func (p *pair) get() int64 { return p.a }

// Warming must never fault or read past what it is given: odd lengths and
// alignments, zero lengths, and nil (an unmapped page).
func TestRangeNeverFaults(t *testing.T) {
	buf := make([]byte, 4096)
	for off := range 70 {
		for _, n := range []uintptr{0, 1, 63, 64, 65, 1000} {
			Range(unsafe.Pointer(&buf[off]), n)
		}
	}
	Spans([]Span{{}, {P: unsafe.Pointer(&buf[0])}, Of(&buf), Slice(buf, 4096)})
	Range(nil, 4096)
}

func BenchmarkSpans(b *testing.B) {
	bufs := make([][]byte, 20)
	spans := make([]Span, len(bufs))
	for i := range bufs {
		bufs[i] = make([]byte, 256)
		spans[i] = Slice(bufs[i], 256)
	}
	b.ReportAllocs()
	for b.Loop() {
		Spans(spans)
	}
}

func TestCovers(t *testing.T) {
	buf := make([]byte, 100)
	spans := []Span{Slice(buf[:10], 10), {P: unsafe.Pointer(&buf[50]), N: 20}}
	for i, want := range map[int]bool{0: true, 9: true, 10: false, 49: false, 50: true, 69: true, 70: false} {
		if got := Covers(spans, unsafe.Pointer(&buf[i])); got != want {
			t.Errorf("byte %d: covered %v, want %v", i, got, want)
		}
	}
}
