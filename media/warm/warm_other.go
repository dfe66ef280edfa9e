//go:build !amd64

package warm

import "unsafe"

// Range prefetches the cache lines of [p, p+n) where the CPU can be asked to;
// here it does nothing.
func Range(p unsafe.Pointer, n uintptr) {}
