package main

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The gateway's GC target when GOGC is not set follows what the heap is
// doing. The media path allocates nothing per packet, so in steady calls the
// heap is call state and a low target (calmGC) keeps RSS near it (1,000 echo
// calls: 38 KB per call at 25 %, 43 KB at 50 %). Garbage comes from call
// set-up and teardown; during a burst of them (allocation above burstRate)
// a low target means a collection several times a second, and set-ups that
// land in one wait (setup p99 8–12 ms at 1,000 calls/s against 4 ms without
// collections), so the target rises to burstGC; when the burst is over, one
// collection returns the heap to the calm target. A GOMEMLIMIT bounds the
// heap either way. See docs/benchmarks.md.
const (
	calmGC    = 25
	burstGC   = 400
	burstRate = 16 << 20 // bytes allocated per second
	gcSample  = 250 * time.Millisecond
)

// gcDefaults starts the adaptive target unless the operator chose with GOGC.
func gcDefaults(log *slog.Logger) {
	if os.Getenv("GOGC") != "" {
		return
	}
	debug.SetGCPercent(calmGC)
	log.Debug("gc target", "calm", calmGC, "burst", burstGC, "gomemlimit", os.Getenv("GOMEMLIMIT"))
	go followAllocations(log)
}

// followAllocations samples the allocation rate for the life of the process.
func followAllocations(log *slog.Logger) {
	s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(s)
	last := s[0].Value.Uint64()
	var g gcPolicy
	for range time.Tick(gcSample) {
		metrics.Read(s)
		now := s[0].Value.Uint64()
		rate := float64(now-last) / gcSample.Seconds()
		last = now
		switch g.next(rate) {
		case toBurst:
			debug.SetGCPercent(burstGC)
			log.Debug("gc target raised for a burst", "alloc_mb_s", int(rate)>>20)
		case toCalm:
			debug.SetGCPercent(calmGC)
			runtime.GC() // the burst's garbage goes now, not at the next set-up
			log.Debug("gc target back to calm")
		}
	}
}

type gcChange int

const (
	stay gcChange = iota
	toBurst
	toCalm
)

// gcPolicy decides on each sample; it leaves a burst only after two calm
// samples in a row, so a pause inside a burst does not bring a collection.
type gcPolicy struct {
	burst bool
	calm  int
}

func (p *gcPolicy) next(rate float64) gcChange {
	switch {
	case rate > burstRate:
		p.calm = 0
		if !p.burst {
			p.burst = true
			return toBurst
		}
	case p.burst:
		if p.calm++; p.calm >= 2 {
			p.burst, p.calm = false, 0
			return toCalm
		}
	}
	return stay
}
