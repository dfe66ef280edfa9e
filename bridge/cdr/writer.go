package cdr

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Writer saves records off the call path: Save queues a snapshot and returns
// at once; one goroutine commits what has queued in a transaction, so a
// call's start is durable within one commit of its INVITE. Commits are at
// least gatherWindow apart: under load one commit carries many calls, and a
// call's snapshots taken close together coalesce into one row write. A full
// queue drops the snapshot (counted) rather than hold up a call.
type Writer struct {
	store     Store
	node      string
	log       *slog.Logger
	heartbeat time.Duration

	q    chan Record
	mu   sync.RWMutex // Save holds it shared; Close exclusively, to close q once
	shut bool
	done chan struct{}

	dropped atomic.Uint64
	failed  atomic.Uint64
}

// WriterOptions tune a Writer; zero values take the defaults.
type WriterOptions struct {
	Node      string        // stamped on every record; the crash sweep matches it
	Queue     int           // snapshots waiting for a commit; default 4096
	Heartbeat time.Duration // how often open records' LastSeen is refreshed; default 5s
	Logger    *slog.Logger
}

// batchMax bounds one transaction.
const batchMax = maxRows

// gatherWindow is the least time between commits: an idle writer commits a
// snapshot at once, a busy one gathers for up to this long (≤ 100 commits/s).
const gatherWindow = 10 * time.Millisecond

// NewWriter starts the writer goroutine; Close stops it.
func NewWriter(store Store, o WriterOptions) *Writer {
	if o.Queue <= 0 {
		o.Queue = 4096
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &Writer{
		store: store, node: o.Node, log: o.Logger, heartbeat: o.Heartbeat,
		q:    make(chan Record, o.Queue),
		done: make(chan struct{}),
	}
	go w.run()
	return w
}

// Save queues a snapshot of r; it never blocks.
func (w *Writer) Save(r Record) {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.shut {
		w.drop(r, "writer closed")
		return
	}
	select {
	case w.q <- r:
	default:
		w.drop(r, "queue full")
	}
}

// drop counts a lost snapshot; the log thins out (1st, 2nd, 4th, 8th…) so an
// overloaded database does not also flood the log.
func (w *Writer) drop(r Record, why string) {
	if n := w.dropped.Add(1); n&(n-1) == 0 {
		w.log.Error("call record dropped", "why", why, "cdr_id", r.ID, "call_id", r.CallID, "dropped_total", n)
	}
}

// Dropped counts snapshots never queued; Failed counts those whose commit failed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }
func (w *Writer) Failed() uint64  { return w.failed.Load() }

// Close commits everything queued and stops; ctx bounds the wait.
func (w *Writer) Close(ctx context.Context) error {
	w.mu.Lock()
	if !w.shut {
		w.shut = true
		close(w.q)
	}
	w.mu.Unlock()
	select {
	case <-w.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Writer) run() {
	defer close(w.done)
	tick := time.NewTicker(w.heartbeat)
	defer tick.Stop()
	gather := time.NewTimer(time.Hour)
	gather.Stop()
	batch := make([]Record, 0, batchMax)
	var last time.Time // end of the previous commit
	for {
		select {
		case r, ok := <-w.q:
			if !ok {
				return
			}
			batch = append(batch[:0], r)
			open := w.drain(&batch)
			if wait := gatherWindow - time.Since(last); open && wait > 0 && len(batch) < batchMax {
				gather.Reset(wait)
				w.gather(&batch, gather.C)
				gather.Stop()
			}
			w.commit(coalesce(batch))
			last = time.Now()
		case <-tick.C:
			ctx, cancel := context.WithTimeout(context.Background(), w.heartbeat)
			if err := w.store.Touch(ctx, w.node, time.Now()); err != nil {
				w.log.Warn("call records heartbeat", "err", err)
			}
			cancel()
		}
	}
}

// drain appends what is queued without waiting; false once the queue is closed.
func (w *Writer) drain(batch *[]Record) bool {
	for len(*batch) < batchMax {
		select {
		case r, ok := <-w.q:
			if !ok {
				return false
			}
			*batch = append(*batch, r)
		default:
			return true
		}
	}
	return true
}

// gather appends snapshots as they arrive until the batch is full, the queue
// closes (Close commits at once) or until fires.
func (w *Writer) gather(batch *[]Record, until <-chan time.Time) {
	for len(*batch) < batchMax {
		select {
		case r, ok := <-w.q:
			if !ok {
				return
			}
			*batch = append(*batch, r)
		case <-until:
			return
		}
	}
}

// commit saves a batch, retrying a little: a database restart should not cost records.
func (w *Writer) commit(batch []Record) {
	now := time.Now()
	for i := range batch {
		if batch[i].Open() {
			batch[i].LastSeen = now
		}
	}
	var err error
	backoff := 50 * time.Millisecond // then 200 ms, 800 ms
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			time.Sleep(backoff)
			backoff *= 4
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = w.store.Save(ctx, batch)
		cancel()
		if err == nil {
			return
		}
		w.log.Warn("call records commit", "records", len(batch), "attempt", attempt+1, "err", err)
	}
	w.failed.Add(uint64(len(batch)))
	w.log.Error("call records lost", "records", len(batch), "err", err)
}

// coalesce keeps the last snapshot of each record, in first-seen order.
func coalesce(batch []Record) []Record {
	if len(batch) < 2 {
		return batch
	}
	at := make(map[string]int, len(batch))
	out := batch[:0]
	for _, r := range batch {
		if i, ok := at[r.ID]; ok {
			out[i] = r
			continue
		}
		at[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// newID is a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
