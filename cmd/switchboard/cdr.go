package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/switchboard-voip/switchboard/bridge/cdr"
	"github.com/switchboard-voip/switchboard/cmd/switchboard/config"
)

const cdrUsage = `usage: switchboard cdr [-c FILE] list [--limit N] [--since T]
       switchboard cdr [-c FILE] export [--format csv|json] [--limit N] [--since T]

  list     the latest calls as a table, newest first (default --limit 50)
  export   every matching call, oldest first, as CSV (default) or JSON on stdout
  --since  RFC 3339 time, a date (2026-03-01), or a duration back from now (24h)
`

// runCDR reads the call records of the store the config names.
func runCDR(args []string) error {
	fs := flag.NewFlagSet("cdr", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(os.Stderr, cdrUsage) }
	path := fs.String("c", "configs/switchboard.yaml", "config file")
	limit := fs.Int("limit", -1, "at most N records (list: 50; export: all)")
	since := fs.String("since", "", "only calls started at or after T")
	format := fs.String("format", "csv", "export format: csv or json")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitError(2)
	}
	if len(pos) != 1 || (pos[0] != "list" && pos[0] != "export") {
		fmt.Fprint(os.Stderr, cdrUsage)
		return exitError(2)
	}
	var f cdr.Filter
	if *since != "" {
		if f.Since, err = parseSince(*since, time.Now()); err != nil {
			return err
		}
	}
	f.Limit = *limit
	if pos[0] == "list" && *limit < 0 {
		f.Limit = 50
	}
	if f.Limit < 0 {
		f.Limit = 0
	}
	if pos[0] == "export" && *format != "csv" && *format != "json" {
		return fmt.Errorf("--format %q: want csv or json", *format)
	}

	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	recs, err := listRecords(cfg.CDR, f, pos[0] == "export")
	if err != nil {
		return err
	}
	w := io.Writer(os.Stdout)
	switch {
	case pos[0] == "list":
		if err := cdr.WriteTable(w, recs, time.Local); err != nil {
			return err
		}
		fmt.Fprintf(w, "%d records (%s)\n", len(recs), describeStore(cfg.CDR))
		return nil
	case *format == "json":
		return cdr.WriteJSON(w, recs)
	default:
		return cdr.WriteCSV(w, recs)
	}
}

func listRecords(c config.CDR, f cdr.Filter, oldest bool) ([]cdr.Record, error) {
	if c.Driver == cdr.DriverSQLite {
		if _, err := os.Stat(c.DSN); errors.Is(err, os.ErrNotExist) {
			return nil, nil // no call yet; reading must not create the database
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	store, err := cdr.Open(ctx, c.Driver, c.DSN)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	f.Oldest = oldest
	return store.List(ctx, f)
}

func describeStore(c config.CDR) string {
	if c.Driver == cdr.DriverSQLite {
		return c.DSN
	}
	return c.Driver
}

// parseSince reads --since: a time, a date, or a duration back from now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q: want an RFC 3339 time, a date like 2026-03-01, or a duration like 24h", s)
}

// openRecords opens the config's record store, closes the records a crashed
// run of this node left open, and starts the writer. The returned func flushes
// the writer and closes the store.
func openRecords(c config.CDR, log *slog.Logger) (*cdr.Writer, func(), error) {
	node := c.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	store, err := cdr.Open(ctx, c.Driver, c.DSN)
	if err != nil {
		return nil, nil, err
	}
	swept, err := store.Sweep(ctx, node, cdr.CauseCrashed)
	if err != nil {
		store.Close()
		return nil, nil, fmt.Errorf("cdr: closing records left open: %w", err)
	}
	for _, r := range swept {
		log.Warn("call record left open by a previous run; ended as crashed", "cdr_id", r.ID, "call_id", r.CallID,
			"started", r.Start, "last_seen", r.End)
	}
	log.Info("call records", "driver", c.Driver, "store", describeStore(c), "node", node, "closed_after_crash", len(swept))
	w := cdr.NewWriter(store, cdr.WriterOptions{Node: node, Logger: log})
	return w, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			log.Error("call records not all written", "err", err)
		}
		if n := w.Dropped() + w.Failed(); n > 0 {
			log.Error("call records lost", "dropped", w.Dropped(), "failed", w.Failed())
		}
		store.Close()
	}, nil
}
