// Package warm asks the CPU to bring memory into its caches ahead of use.
//
// A thousand calls' state does not stay in the caches between their frames,
// 20 ms apart, so a frame that simply runs waits on its objects one after the
// other. The frame clock instead has the next call's memory fetched while the
// call before it is in its system calls (bridge/clock.go). Warming is only a
// hint: a span that is stale or wrong costs a wasted fetch, never a fault.
package warm

import "unsafe"

// Span is a range of memory to warm.
type Span struct {
	P unsafe.Pointer
	N uintptr
}

// Of is the span of the object p points to; nothing for nil.
func Of[T any](p *T) Span {
	if p == nil {
		return Span{}
	}
	return Span{unsafe.Pointer(p), unsafe.Sizeof(*p)}
}

// Slice is the span of s's backing array up to its capacity, at most max
// bytes of it.
func Slice[T any](s []T, max uintptr) Span {
	if cap(s) == 0 {
		return Span{}
	}
	s = s[:1]
	n := uintptr(cap(s)) * unsafe.Sizeof(s[0])
	return Span{unsafe.Pointer(&s[0]), min(n, max)}
}

// Data is the first n bytes of what an interface value holds: the object a
// pointer in it points to, or the copy a value in it was boxed into. It reads
// the interface's data word, which is how Go lays out every interface value.
func Data(v any, n uintptr) Span {
	if v == nil {
		return Span{}
	}
	return Span{(*[2]unsafe.Pointer)(unsafe.Pointer(&v))[1], n}
}

// Spans warms each span.
func Spans(s []Span) {
	for _, sp := range s {
		if sp.P != nil && sp.N > 0 {
			Range(sp.P, sp.N)
		}
	}
}

// Covers reports whether p lies in one of spans: what a test of a Hot method
// asks.
func Covers(spans []Span, p unsafe.Pointer) bool {
	for _, sp := range spans {
		if uintptr(p) >= uintptr(sp.P) && uintptr(p) < uintptr(sp.P)+sp.N {
			return true
		}
	}
	return false
}
