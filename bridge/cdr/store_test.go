package cdr

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voip/switchboard/bridge/cdr/pgtest"
)

// stores runs f on SQLite and on a real PostgreSQL server.
func stores(t *testing.T, f func(t *testing.T, open func() Store)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sub", "cdr.db") // the directory is created
		f(t, func() Store { return mustOpen(t, DriverSQLite, path) })
	})
	t.Run("postgres", func(t *testing.T) {
		dsn := pgDatabase(t)
		f(t, func() Store { return mustOpen(t, DriverPostgres, dsn) })
	})
}

// One PostgreSQL server for the package, a fresh database per test.
var pg struct {
	once sync.Once
	srv  *pgtest.Server
	err  error
}

func pgDatabase(t *testing.T) string {
	pg.once.Do(func() { pg.srv, pg.err = pgtest.New() })
	if errors.Is(pg.err, pgtest.ErrNotInstalled) {
		t.Skip(pg.err)
	}
	must(t, pg.err)
	return pg.srv.Database(t)
}

func TestMain(m *testing.M) {
	code := m.Run()
	if pg.srv != nil {
		pg.srv.Close()
	}
	os.Exit(code)
}

func mustOpen(t *testing.T, driver, dsn string) Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := Open(ctx, driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func full() Record {
	return Record{
		ID: "a1", CallID: "call-1@host", Node: "n1", Trunk: "twilio", From: "+15550100", To: "echo",
		Route: "echo", TargetType: "agent", Target: "ws://bot:9000/x",
		Start: t0, Answer: t0.Add(300 * time.Millisecond), End: t0.Add(5300 * time.Millisecond),
		LastSeen: t0.Add(5 * time.Second), Duration: 5 * time.Second,
		EndedBy: ByCaller, Cause: "bye", Status: 200,
		Quality:   Quality{PacketsIn: 250, PacketsOut: 251, Lost: 3, Late: 1, JitterMs: 2.5, MOS: 4.31},
		Recording: "/var/rec/a1.wav",
	}
}

// Every field survives the round trip, and a later snapshot replaces the row.
func TestStoreRoundTrip(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		ctx := ctxT(t)
		start := Record{ID: "a1", CallID: "call-1@host", Node: "n1", From: "+15550100", To: "echo", Start: t0, LastSeen: t0}
		must(t, s.Save(ctx, []Record{start}))
		got := list(t, s, Filter{})
		if len(got) != 1 || !reflect.DeepEqual(got[0], start) || !got[0].Open() {
			t.Fatalf("after start: %+v\nwant %+v", got, start)
		}
		want := full()
		must(t, s.Save(ctx, []Record{want}))
		got = list(t, s, Filter{})
		if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
			t.Fatalf("after end:\n%+v\nwant\n%+v", got, want)
		}
		// The schema is migrated once; opening again keeps the data.
		s2 := open()
		if got := list(t, s2, Filter{}); len(got) != 1 {
			t.Fatalf("reopened store has %d records", len(got))
		}
	})
}

// List orders newest first (or oldest first), limits and filters by start.
func TestStoreList(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		var recs []Record
		for i := range 5 {
			recs = append(recs, Record{ID: string(rune('a' + i)), Node: "n", Start: t0.Add(time.Duration(i) * time.Minute)})
		}
		must(t, s.Save(ctxT(t), recs))
		ids := func(rs []Record) string {
			var b strings.Builder
			for _, r := range rs {
				b.WriteString(r.ID)
			}
			return b.String()
		}
		for _, c := range []struct {
			f    Filter
			want string
		}{
			{Filter{}, "edcba"},
			{Filter{Oldest: true}, "abcde"},
			{Filter{Limit: 2}, "ed"},
			{Filter{Since: t0.Add(2 * time.Minute)}, "edc"},
			{Filter{Since: t0.Add(90 * time.Second), Limit: 1, Oldest: true}, "c"},
		} {
			if got := ids(list(t, s, c.f)); got != c.want {
				t.Errorf("List(%+v) = %s, want %s", c.f, got, c.want)
			}
		}
	})
}

// The crash sweep ends this node's open records at their last sign of life,
// abnormally; finished records and other nodes' calls are left alone.
func TestStoreTouchAndSweep(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		ctx := ctxT(t)
		answered := Record{ID: "up", Node: "n1", Start: t0, Answer: t0.Add(time.Second), Status: 200, LastSeen: t0.Add(time.Second)}
		ringing := Record{ID: "ring", Node: "n1", Start: t0, LastSeen: t0}
		other := Record{ID: "other", Node: "n2", Start: t0, LastSeen: t0}
		done := full()
		must(t, s.Save(ctx, []Record{answered, ringing, other, done}))
		seen := t0.Add(11 * time.Second)
		must(t, s.Touch(ctx, "n1", seen))

		swept, err := s.Sweep(ctx, "n1", CauseCrashed)
		must(t, err)
		if len(swept) != 2 {
			t.Fatalf("swept %d records, want 2", len(swept))
		}
		byID := map[string]Record{}
		for _, r := range list(t, s, Filter{}) {
			byID[r.ID] = r
		}
		up := byID["up"]
		if !up.Abnormal || up.Cause != CauseCrashed || up.EndedBy != ByGateway || !up.End.Equal(seen) ||
			up.Duration != 10*time.Second || up.Status != 200 {
			t.Errorf("answered call after sweep: %+v", up)
		}
		ring := byID["ring"]
		if !ring.Abnormal || !ring.End.Equal(seen) || ring.Duration != 0 || ring.Status != 0 {
			t.Errorf("ringing call after sweep: %+v", ring)
		}
		if o := byID["other"]; !o.Open() || !o.LastSeen.Equal(t0) {
			t.Errorf("another node's call was touched: %+v", o)
		}
		if d := byID["a1"]; !reflect.DeepEqual(d, done) {
			t.Errorf("a finished call changed: %+v", d)
		}
		if again, _ := s.Sweep(ctx, "n1", CauseCrashed); len(again) != 0 {
			t.Errorf("second sweep closed %d records", len(again))
		}
	})
}

// The writer's call lifecycle lands in the store, the start within a commit.
func TestWriterLifecycle(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		w := NewWriter(s, WriterOptions{Node: "n1", Heartbeat: 50 * time.Millisecond})
		c := w.Begin("cid-1", "alice", "echo")
		// Durable shortly after the INVITE, with no End and no Close.
		waitRecords(t, s, func(rs []Record) bool { return len(rs) == 1 && rs[0].CallID == "cid-1" && rs[0].Open() })
		c.Route("echo", "echo", "")
		c.Answered()
		time.Sleep(120 * time.Millisecond) // a heartbeat or two
		c.End(ByCaller, "bye", 0, Quality{PacketsIn: 7, PacketsOut: 8})
		c.End(ByGateway, "late second end", 500, Quality{}) // ignored

		r := w.Begin("cid-2", "bob", "nobody")
		r.Reject(404, "no route")
		must(t, w.Close(ctxT(t)))
		w.Save(Record{ID: "late"}) // after Close: dropped, no panic
		if w.Dropped() != 1 || w.Failed() != 0 {
			t.Fatalf("dropped %d, failed %d; want 1, 0", w.Dropped(), w.Failed())
		}

		rs := list(t, s, Filter{Oldest: true})
		if len(rs) != 2 {
			t.Fatalf("%d records, want 2", len(rs))
		}
		a, b := rs[0], rs[1]
		if a.Route != "echo" || a.TargetType != "echo" || a.Status != 200 || a.EndedBy != ByCaller || a.Cause != "bye" ||
			a.Answer.IsZero() || a.End.IsZero() || a.Duration < 100*time.Millisecond || a.Quality.PacketsOut != 8 || a.Node != "n1" {
			t.Errorf("answered call: %+v", a)
		}
		if b.Status != 404 || b.Cause != "no route" || b.EndedBy != ByGateway || !b.Answer.IsZero() || b.End.IsZero() {
			t.Errorf("rejected call: %+v", b)
		}
	})
}

// One Save of a large batch that names some records twice (start, then end)
// stores each record once, as its last snapshot.
func TestStoreSaveLargeBatch(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		var recs []Record
		for i := range 300 {
			recs = append(recs, Record{ID: fmt.Sprintf("r%03d", i), Node: "n", Start: t0})
		}
		for i := 0; i < 300; i += 7 { // ended later in the same batch
			r := recs[i]
			r.End, r.Cause = t0.Add(time.Second), "bye"
			recs = append(recs, r)
		}
		must(t, s.Save(ctxT(t), recs))
		got := list(t, s, Filter{Oldest: true})
		if len(got) != 300 {
			t.Fatalf("%d records stored, want 300", len(got))
		}
		for _, r := range got {
			var i int
			fmt.Sscanf(r.ID, "r%d", &i)
			if ended := r.Cause == "bye" && !r.Open(); ended != (i%7 == 0) {
				t.Fatalf("record %s: ended %v, cause %q", r.ID, ended, r.Cause)
			}
		}
	})
}

// A batch into SQLite, under a deadline as the writer gives it, starts no
// goroutine per record: the driver starts one per statement to watch a
// context that can end, which at 1,000 calls/s was ~2,000 goroutines a
// second queued beside the SIP handlers. The deadline still bounds the
// transaction (its start and commit).
func TestSQLiteSaveStartsNoGoroutinePerRecord(t *testing.T) {
	s := mustOpen(t, DriverSQLite, filepath.Join(t.TempDir(), "cdr.db"))
	recs := make([]Record, 100)
	for i := range recs {
		recs[i] = Record{ID: fmt.Sprintf("g%03d", i), Node: "n", Start: t0}
	}
	must(t, s.Save(ctxT(t), recs[:1])) // statements prepared, connection open
	created := func() uint64 {
		m := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
		metrics.Read(m)
		return m[0].Value.Uint64()
	}
	before := created()
	must(t, s.Save(ctxT(t), recs))
	if n := created() - before; n > 10 {
		t.Fatalf("saving %d records started %d goroutines", len(recs), n)
	}
	if got := list(t, s, Filter{Oldest: true}); len(got) != len(recs) {
		t.Fatalf("%d records stored, want %d", len(got), len(recs))
	}
}

// Calls recorded from many goroutines at once all land, each complete.
func TestWriterConcurrentCalls(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		w := NewWriter(s, WriterOptions{Node: "n1", Logger: quiet})
		const workers, calls = 8, 100
		var wg sync.WaitGroup
		for g := range workers {
			wg.Go(func() {
				for i := range calls {
					c := w.Begin(fmt.Sprintf("cid-%d-%d", g, i), "alice", "echo")
					c.Route("echo", "echo", "")
					c.Answered()
					c.End(ByCaller, "bye", 0, Quality{PacketsIn: uint64(i)})
				}
			})
		}
		wg.Wait()
		must(t, w.Close(ctxT(t)))
		if w.Dropped() != 0 || w.Failed() != 0 {
			t.Fatalf("dropped %d, failed %d", w.Dropped(), w.Failed())
		}
		rs := list(t, s, Filter{})
		seen := map[string]bool{}
		for _, r := range rs {
			if r.Open() || r.Route != "echo" || r.Status != 200 || r.Cause != "bye" {
				t.Fatalf("incomplete record: %+v", r)
			}
			seen[r.CallID] = true
		}
		if len(rs) != workers*calls || len(seen) != workers*calls {
			t.Fatalf("%d records for %d calls, want %d", len(rs), len(seen), workers*calls)
		}
	})
}

// Close commits what is queued, also while the writer is gathering a batch.
func TestWriterCloseFlushes(t *testing.T) {
	stores(t, func(t *testing.T, open func() Store) {
		s := open()
		w := NewWriter(s, WriterOptions{Node: "n1", Logger: quiet})
		w.Begin("first", "a", "b")
		waitRecords(t, s, func(rs []Record) bool { return len(rs) == 1 })
		// Right after a commit the next snapshots wait to be gathered; Close must not lose them.
		for i := range 5 {
			w.Begin(fmt.Sprintf("queued-%d", i), "a", "b").End(ByCaller, "bye", 0, Quality{})
		}
		must(t, w.Close(ctxT(t)))
		if rs := list(t, s, Filter{}); len(rs) != 6 {
			t.Fatalf("%d records after Close, want 6", len(rs))
		}
	})
}

// A stuck database never blocks Save: the queue fills, then snapshots drop.
func TestWriterNeverBlocks(t *testing.T) {
	st := &stuckStore{release: make(chan struct{})}
	w := NewWriter(st, WriterOptions{Queue: 8, Logger: quiet})
	start := time.Now()
	for range 100 {
		w.Begin("x", "a", "b")
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("100 Begins took %v with a stuck store", d)
	}
	// At most a queue's worth waits besides what the stuck commit took.
	for deadline := time.Now().Add(2 * time.Second); st.held.Load() == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if held := int(st.held.Load()); int(w.Dropped()) < 100-8-held {
		t.Fatalf("dropped %d, want at least %d (%d held by the stuck commit)", w.Dropped(), 100-8-held, held)
	}
	close(st.release)
	must(t, w.Close(ctxT(t)))
	// Every Begin is either dropped or, once the store recovered, saved.
	if n := st.saved(); n < 8 || n+int(w.Dropped()) != 100 {
		t.Fatalf("%d saved after the store recovered and %d dropped, want at least 8 saved and 100 in all", n, w.Dropped())
	}
}

// A failing commit is retried, so a database blip loses nothing.
func TestWriterRetries(t *testing.T) {
	st := &stuckStore{release: make(chan struct{}), fail: 2}
	close(st.release)
	w := NewWriter(st, WriterOptions{Logger: quiet})
	w.Begin("x", "a", "b").Reject(486, "busy")
	must(t, w.Close(ctxT(t)))
	if st.saved() != 1 || w.Failed() != 0 {
		t.Fatalf("saved %d, failed %d; want 1, 0", st.saved(), w.Failed())
	}
}

func TestCoalesce(t *testing.T) {
	in := []Record{{ID: "a", Cause: "1"}, {ID: "b"}, {ID: "a", Cause: "2"}, {ID: "c"}, {ID: "b", Cause: "3"}}
	got := coalesce(in)
	want := []Record{{ID: "a", Cause: "2"}, {ID: "b", Cause: "3"}, {ID: "c"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("coalesce = %+v", got)
	}
}

func TestExport(t *testing.T) {
	open := Record{ID: "b2", CallID: "c2", Node: "n", From: "x,y", To: "z\"q", Start: t0}
	recs := []Record{full(), open}
	var b bytes.Buffer
	must(t, WriteCSV(&b, recs))
	rows, err := csv.NewReader(&b).ReadAll()
	must(t, err)
	if len(rows) != 3 || !reflect.DeepEqual(rows[0], Header) {
		t.Fatalf("csv rows: %q", rows)
	}
	col := func(row []string, name string) string {
		for i, h := range Header {
			if h == name {
				return row[i]
			}
		}
		t.Fatalf("no column %s", name)
		return ""
	}
	r := rows[1]
	for name, want := range map[string]string{
		"id": "a1", "start": "2026-03-01T12:00:00.123Z", "answer": "2026-03-01T12:00:00.423Z",
		"duration_ms": "5000", "ended_by": "caller", "sip_status": "200", "packets_lost": "3", "mos": "4.31",
		"target": "ws://bot:9000/x", "recording": "/var/rec/a1.wav", "abnormal": "false",
	} {
		if got := col(r, name); got != want {
			t.Errorf("csv %s = %q, want %q", name, got, want)
		}
	}
	if col(rows[2], "from") != "x,y" || col(rows[2], "to") != "z\"q" || col(rows[2], "end") != "" {
		t.Errorf("csv quoting or empty end: %q", rows[2])
	}

	b.Reset()
	must(t, WriteJSON(&b, recs))
	var objs []map[string]any
	must(t, json.Unmarshal(b.Bytes(), &objs))
	if len(objs) != 2 || objs[0]["cause"] != "bye" || objs[0]["sip_status"] != 200.0 || objs[0]["jitter_ms"] != 2.5 {
		t.Fatalf("json: %s", b.String())
	}
	if _, has := objs[1]["end"]; has {
		t.Errorf("an open record has an end in JSON: %v", objs[1])
	}
	if len(objs[0]) != len(Header) {
		t.Errorf("json has %d keys, csv %d columns", len(objs[0]), len(Header))
	}

	b.Reset()
	must(t, WriteTable(&b, recs, time.UTC))
	out := b.String()
	for _, want := range []string{"START", "2026-03-01 12:00:00", "+15550100", "agent:ws://bot:9000/x", "5s", "(in progress)", "250/251/3"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestOpenUnknownDriver(t *testing.T) {
	if _, err := Open(context.Background(), "mysql", "x"); !errors.Is(err, ErrDriver) {
		t.Fatalf("err = %v", err)
	}
}

var quiet = slog.New(slog.DiscardHandler)

func list(t *testing.T, s Store, f Filter) []Record {
	t.Helper()
	rs, err := s.List(ctxT(t), f)
	must(t, err)
	return rs
}

func waitRecords(t *testing.T, s Store, ok func([]Record) bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		if ok(list(t, s, Filter{})) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("records not as expected after 2 s: %+v", list(t, s, Filter{}))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// stuckStore blocks Save until release is closed, then fails fail times.
type stuckStore struct {
	release chan struct{}
	held    atomic.Int32 // records in the first Save, stuck until release
	mu      sync.Mutex
	fail    int
	n       map[string]bool
}

func (s *stuckStore) Save(ctx context.Context, recs []Record) error {
	s.held.CompareAndSwap(0, int32(len(recs)))
	select {
	case <-s.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("connection refused")
	}
	if s.n == nil {
		s.n = map[string]bool{}
	}
	for _, r := range recs {
		s.n[r.ID] = true
	}
	return nil
}

func (s *stuckStore) saved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.n)
}
func (s *stuckStore) Touch(context.Context, string, time.Time) error { return nil }
func (s *stuckStore) Sweep(context.Context, string, string) ([]Record, error) {
	return nil, nil
}
func (s *stuckStore) List(context.Context, Filter) ([]Record, error) { return nil, nil }
func (s *stuckStore) Close() error                                   { return nil }
