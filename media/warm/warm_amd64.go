package warm

import "unsafe"

// Range prefetches the cache lines of [p, p+n) into every cache level. The CPU
// goes on at once, and a prefetch never faults.
//
//go:noescape
func Range(p unsafe.Pointer, n uintptr)
