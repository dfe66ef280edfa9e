package cdr

import (
	"context"
	"path/filepath"
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
