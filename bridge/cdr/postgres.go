package cdr

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", pure Go
)

var postgresDialect = dialect{
	name:     DriverPostgres,
	dollar:   true,
	timeArg:  func(t time.Time) any { return t },
	multiRow: true,
	// Nodes sharing one database may start together: one migrates at a time.
	lock: "SELECT pg_advisory_xact_lock(7267373)",
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
			start_time   TIMESTAMPTZ NOT NULL,
			answer_time  TIMESTAMPTZ,
			end_time     TIMESTAMPTZ,
			last_seen    TIMESTAMPTZ,
			duration_ms  BIGINT NOT NULL DEFAULT 0,
			ended_by     TEXT NOT NULL DEFAULT '',
			cause        TEXT NOT NULL DEFAULT '',
			sip_status   INTEGER NOT NULL DEFAULT 0,
			abnormal     BOOLEAN NOT NULL DEFAULT FALSE,
			packets_in   BIGINT NOT NULL DEFAULT 0,
			packets_out  BIGINT NOT NULL DEFAULT 0,
			packets_lost BIGINT NOT NULL DEFAULT 0,
			packets_late BIGINT NOT NULL DEFAULT 0,
			jitter_ms    DOUBLE PRECISION NOT NULL DEFAULT 0,
			mos          DOUBLE PRECISION NOT NULL DEFAULT 0,
			recording    TEXT NOT NULL DEFAULT ''
		)`,
		`CREATE INDEX cdr_start ON cdr (start_time)`,
		`CREATE INDEX cdr_call_id ON cdr (call_id)`,
		`CREATE INDEX cdr_open ON cdr (node) WHERE end_time IS NULL`,
	}},
}

func openPostgres(ctx context.Context, dsn string) (Store, error) {
	if dsn == "" {
		return nil, fmt.Errorf("cdr: postgres needs a dsn, e.g. postgres://user:pass@host:5432/db")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("cdr: %w", err)
	}
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	s := &sqlStore{db: db, d: postgresDialect}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("cdr: postgres: %w", err)
	}
	return s, nil
}
