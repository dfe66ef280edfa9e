package cdr

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", pure Go
)

// sqliteParams: WAL lets `switchboard cdr list` read while the gateway writes,
// and a commit in WAL survives a killed process; write transactions take the
// lock up front so they wait on busy_timeout instead of failing midway.
const sqliteParams = "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"

var sqliteDialect = dialect{
	name:    DriverSQLite,
	local:   true,
	timeArg: func(t time.Time) any { return t.UnixMicro() },
	migrations: [][]string{{
		`CREATE TABLE cdr (
			id           TEXT PRIMARY KEY,
			call_id      TEXT NOT NULL,
			node         TEXT NOT NULL,
			trunk        TEXT NOT NULL DEFAULT '',
			from_user    TEXT NOT NULL DEFAULT '',
			to_user      TEXT NOT NULL DEFAULT '',
			route        TEXT NOT NULL DEFAULT '',
			target_type  TEXT NOT NULL DEFAULT '',
			target       TEXT NOT NULL DEFAULT '',
			start_time   INTEGER NOT NULL, -- unix microseconds, UTC
			answer_time  INTEGER,
			end_time     INTEGER,
			last_seen    INTEGER,
			duration_ms  INTEGER NOT NULL DEFAULT 0,
			ended_by     TEXT NOT NULL DEFAULT '',
			cause        TEXT NOT NULL DEFAULT '',
			sip_status   INTEGER NOT NULL DEFAULT 0,
			abnormal     INTEGER NOT NULL DEFAULT 0,
			packets_in   INTEGER NOT NULL DEFAULT 0,
			packets_out  INTEGER NOT NULL DEFAULT 0,
			packets_lost INTEGER NOT NULL DEFAULT 0,
			packets_late INTEGER NOT NULL DEFAULT 0,
			jitter_ms    REAL NOT NULL DEFAULT 0,
			mos          REAL NOT NULL DEFAULT 0,
			recording    TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX cdr_start ON cdr (start_time)`,
		`CREATE INDEX cdr_call_id ON cdr (call_id)`,
		`CREATE INDEX cdr_open ON cdr (node) WHERE end_time IS NULL`,
	}},
}

func openSQLite(ctx context.Context, path string) (Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("cdr: sqlite path %q: want a file path without ? or #", path)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cdr: %w", err)
		}
	}
	db, err := sql.Open("sqlite", path+sqliteParams)
	if err != nil {
		return nil, fmt.Errorf("cdr: %w", err)
	}
	// One connection: SQLite has one writer anyway, and a second one would stay
	// open idle (two more descriptors for the database and its WAL).
	db.SetMaxOpenConns(1)
	s := &sqlStore{db: db, d: sqliteDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cdr: %s: %w", path, err)
	}
	// Prepared now, not inside Save's transaction, which holds the only connection.
	if _, err := s.upsertStmt(ctx, 0); err != nil {
		db.Close()
		return nil, fmt.Errorf("cdr: %s: %w", path, err)
	}
	return s, nil
}
