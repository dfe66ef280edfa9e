package cdr

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// The call path's cost of a record: Begin, Route, Answered and End queue
// snapshots; the SQLite commit happens on the writer's goroutine (this loop
// outruns it, so most snapshots are dropped: it measures the caller's side).
func BenchmarkCallRecordPath(b *testing.B) {
	s, err := Open(context.Background(), DriverSQLite, filepath.Join(b.TempDir(), "cdr.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := NewWriter(s, WriterOptions{Node: "bench", Queue: 1 << 16, Logger: quiet})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		c := w.Begin("call-id", "alice", "echo")
		c.Route("echo", "echo", "")
		c.Answered()
		c.End(ByCaller, "bye", 0, Quality{PacketsIn: 50, PacketsOut: 50})
	}
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
}

// Commit throughput of SQLite in batches the writer forms under load.
func BenchmarkSQLiteSave(b *testing.B) {
	s, err := Open(context.Background(), DriverSQLite, filepath.Join(b.TempDir(), "cdr.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	batch := make([]Record, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for j := range batch {
			batch[j] = full()
			batch[j].ID = newID()
		}
		if err := s.Save(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(batch)), "µs/record")
}

// Records landed per second through the Writer into SQLite, as calls produce
// them: Begin, Route, Answered and End per call, fed only as fast as the
// writer keeps up (nothing dropped).
func BenchmarkWriterSQLite(b *testing.B) {
	s, err := Open(context.Background(), DriverSQLite, filepath.Join(b.TempDir(), "cdr.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	w := NewWriter(s, WriterOptions{Node: "bench", Queue: 4096, Logger: quiet})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for len(w.q) > cap(w.q)-8 {
			time.Sleep(100 * time.Microsecond)
		}
		c := w.Begin("call-id", "alice", "echo")
		c.Route("echo", "echo", "")
		c.Answered()
		c.End(ByCaller, "bye", 0, Quality{PacketsIn: 50, PacketsOut: 50})
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := w.Close(ctx); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if w.Dropped() != 0 || w.Failed() != 0 {
		b.Fatalf("dropped %d, failed %d", w.Dropped(), w.Failed())
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/call")
}

// The process CPU a call's records cost at 1,000 calls/s into SQLite, the
// rate of the setup-rate run: one call's Begin, Route and Answered per ms,
// its End a second later (as a 1 s call). "none" (records disabled) is the
// loop's own cost, to subtract.
func BenchmarkWriterSQLitePaced(b *testing.B) {
	b.Run("none", func(b *testing.B) { pacedCalls(b, nil) })
	b.Run("sqlite", func(b *testing.B) {
		s, err := Open(context.Background(), DriverSQLite, filepath.Join(b.TempDir(), "cdr.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		pacedCalls(b, NewWriter(s, WriterOptions{Node: "bench", Logger: quiet}))
	})
}

func pacedCalls(b *testing.B, w *Writer) {
	live := make([]*Call, 0, 1000)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := range b.N {
		<-tick.C
		if len(live) == cap(live) {
			live[i%cap(live)].End(ByCaller, "bye", 0, Quality{PacketsIn: 50, PacketsOut: 50})
		} else {
			live = live[:len(live)+1]
		}
		c := w.Begin("call-id", "alice", "echo")
		c.Route("echo", "echo", "")
		c.Answered()
		live[i%cap(live)] = c
	}
	b.StopTimer()
	cpu := cpuTime() - cpu0
	if w != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			b.Fatal(err)
		}
		if w.Dropped() != 0 || w.Failed() != 0 {
			b.Fatalf("dropped %d, failed %d", w.Dropped(), w.Failed())
		}
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/call")
}

// cpuTime is the process's user+system CPU so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
