package main

import (
	"log/slog"
	"os"
	"runtime/debug"
)

// gcPercent is the gateway's GC target when GOGC is not set. The media path
// allocates nothing per packet, so the heap is call state and garbage comes
// only from call set-up and teardown: collecting at 25 % growth instead of
// 100 % costs little CPU and keeps the RSS of many calls near their live
// heap (1,000 echo calls: 36 KB per call at 25, 43 KB at 50; see
// docs/benchmarks.md).
const gcPercent = 25

// gcDefaults applies gcPercent unless the operator chose with GOGC; a
// GOMEMLIMIT in the environment applies as usual.
func gcDefaults(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(gcPercent)
	log.Debug("gc target", "gogc", gcPercent, "gomemlimit", os.Getenv("GOMEMLIMIT"))
}
