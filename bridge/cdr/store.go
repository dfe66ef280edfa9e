package cdr

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Store keeps records. Save is an upsert of whole records, so a batch may carry
// the same call twice (its start, then its end) and later snapshots win.
type Store interface {
	// Save writes records in one transaction.
	Save(ctx context.Context, recs []Record) error
	// Touch sets LastSeen of node's open records: they were alive at at.
	Touch(ctx context.Context, node string, at time.Time) error
	// Sweep ends node's open records, left by a run that died, at their
	// LastSeen, as abnormal with cause; it returns them as closed.
	Sweep(ctx context.Context, node, cause string) ([]Record, error)
	// List returns records by f.
	List(ctx context.Context, f Filter) ([]Record, error)
	Close() error
}

// Drivers.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// ErrDriver is returned by Open for a driver it does not know.
var ErrDriver = errors.New("cdr: unknown driver")

// Open connects to a store and brings its schema up to date. For sqlite, dsn
// is a file path; for postgres, a libpq URL or key=value string.
func Open(ctx context.Context, driver, dsn string) (Store, error) {
	switch driver {
	case DriverSQLite:
		return openSQLite(ctx, dsn)
	case DriverPostgres:
		return openPostgres(ctx, dsn)
	}
	return nil, fmt.Errorf("%w %q (have: sqlite, postgres)", ErrDriver, driver)
}

// sweep closes r as a crashed call: it ended when it was last seen.
func sweep(r *Record, cause string) {
	end := r.LastSeen
	if end.IsZero() || end.Before(r.Start) {
		end = r.Start
	}
	r.End = end
	if !r.Answer.IsZero() && end.After(r.Answer) {
		r.Duration = end.Sub(r.Answer)
	}
	r.EndedBy = ByGateway
	r.Cause = cause
	r.Abnormal = true
}
