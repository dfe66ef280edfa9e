package cdr

import (
	"context"
	"database/sql"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sqlStore is the Store over database/sql; a dialect holds what differs
// between SQLite and PostgreSQL.
type sqlStore struct {
	db *sql.DB
	d  dialect

	mu     sync.Mutex
	upsert [upsertSizes]*sql.Stmt // upsert[k] writes 1<<k rows; prepared on first use
}

// With a server (PostgreSQL) a batch is written by multi-row upserts of
// power-of-two sizes, so a few prepared statements serve every batch size in
// at most log2(maxRows)+1 round trips. SQLite, in process, runs the one-row
// upsert per record: a multi-row statement costs it a statement journal.
const (
	upsertSizes = 9
	maxRows     = 1 << (upsertSizes - 1) // 256 rows × 25 columns: within SQLite's and PostgreSQL's parameter limits
)

type dialect struct {
	name       string
	dollar     bool                // $1 placeholders instead of ?
	timeArg    func(time.Time) any // how a time is stored; a zero time is NULL
	migrations [][]string          // schema versions 1..n, statements each
	lock       string              // run first in the migration transaction, if any
	multiRow   bool                // a batch goes in multi-row upserts (saves round trips to a server)
	// local: the database is a file in the process. Its statements run without
	// the caller's deadline: the driver would start a goroutine per statement to
	// watch it, one per call record, and the busy timeout bounds the only wait.
	local bool
}

// columns is the order of every SELECT and upsert.
var columns = []string{
	"id", "call_id", "node", "trunk", "from_user", "to_user",
	"route", "target_type", "target",
	"start_time", "answer_time", "end_time", "last_seen", "duration_ms",
	"ended_by", "cause", "sip_status", "abnormal",
	"packets_in", "packets_out", "packets_lost", "packets_late", "jitter_ms", "mos",
	"recording",
}

var selectCols = strings.Join(columns, ", ")

// upsertSQL inserts rows records, replacing a stored record of the same id.
func upsertSQL(rows int) string {
	set := make([]string, 0, len(columns)-1)
	for _, c := range columns[1:] {
		set = append(set, c+" = excluded."+c)
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(columns)), ", ") + ")"
	return "INSERT INTO cdr (" + selectCols + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(row+", ", rows), ", ") +
		" ON CONFLICT (id) DO UPDATE SET " + strings.Join(set, ", ")
}

// q rewrites ? placeholders for the dialect.
func (s *sqlStore) q(query string) string {
	if !s.d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (s *sqlStore) tm(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return s.d.timeArg(t.UTC())
}

func (s *sqlStore) appendArgs(args []any, r *Record) []any {
	return append(args,
		r.ID, r.CallID, r.Node, r.Trunk, r.From, r.To,
		r.Route, r.TargetType, r.Target,
		s.tm(r.Start), s.tm(r.Answer), s.tm(r.End), s.tm(r.LastSeen), r.Duration.Milliseconds(),
		r.EndedBy, r.Cause, r.Status, r.Abnormal,
		int64(r.Quality.PacketsIn), int64(r.Quality.PacketsOut), int64(r.Quality.Lost), int64(r.Quality.Late),
		r.Quality.JitterMs, r.Quality.MOS,
		r.Recording,
	)
}

func (s *sqlStore) migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS cdr_schema (version INTEGER NOT NULL)"); err != nil {
		return err
	}
	var have int
	if err := tx.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM cdr_schema").Scan(&have); err != nil {
		return err
	}
	if have > len(s.d.migrations) {
		return fmt.Errorf("cdr: database schema is version %d, newer than this switchboard knows (%d)", have, len(s.d.migrations))
	}
	for v := have; v < len(s.d.migrations); v++ {
		for _, stmt := range s.d.migrations[v] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("cdr: migration %d: %w", v+1, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q("INSERT INTO cdr_schema (version) VALUES (?)"), v+1); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// Save implements Store.
func (s *sqlStore) Save(ctx context.Context, recs []Record) error {
	if len(recs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.save(ctx, tx, recs); err != nil {
		return err
	}
	return tx.Commit()
}

func (s *sqlStore) save(ctx context.Context, tx *sql.Tx, recs []Record) error {
	if s.d.local {
		ctx = context.WithoutCancel(ctx) // the transaction keeps the deadline (dialect.local)
	}
	recs = unique(recs)
	args := make([]any, 0, len(columns)*min(len(recs), maxRows))
	for len(recs) > 0 {
		k := 0
		if s.d.multiRow {
			k = min(bits.Len(uint(len(recs))), upsertSizes) - 1 // the largest size that fits
		}
		n := 1 << k
		stmt, err := s.upsertStmt(ctx, k)
		if err != nil {
			return err
		}
		args = args[:0]
		for i := range recs[:n] {
			args = s.appendArgs(args, &recs[i])
		}
		if _, err := tx.StmtContext(ctx, stmt).ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("cdr: save %d records (%s…): %w", n, recs[0].ID, err)
		}
		recs = recs[n:]
	}
	return nil
}

// upsertStmt is the prepared upsert of 1<<k rows.
func (s *sqlStore) upsertStmt(ctx context.Context, k int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.upsert[k] == nil {
		stmt, err := s.db.PrepareContext(ctx, s.q(upsertSQL(1<<k)))
		if err != nil {
			return nil, err
		}
		s.upsert[k] = stmt
	}
	return s.upsert[k], nil
}

// unique keeps the last snapshot of each record: one upsert statement may not
// touch a row twice (PostgreSQL refuses). recs is copied only when it must change.
func unique(recs []Record) []Record {
	if len(recs) < 2 {
		return recs
	}
	seen := make(map[string]struct{}, len(recs))
	for i := range recs {
		if _, dup := seen[recs[i].ID]; dup {
			return coalesce(append([]Record(nil), recs...))
		}
		seen[recs[i].ID] = struct{}{}
	}
	return recs
}

// Touch implements Store.
func (s *sqlStore) Touch(ctx context.Context, node string, at time.Time) error {
	_, err := s.db.ExecContext(ctx, s.q("UPDATE cdr SET last_seen = ? WHERE node = ? AND end_time IS NULL"), s.tm(at), node)
	return err
}

// Sweep implements Store.
func (s *sqlStore) Sweep(ctx context.Context, node, cause string) ([]Record, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, s.q("SELECT "+selectCols+" FROM cdr WHERE node = ? AND end_time IS NULL"), node)
	if err != nil {
		return nil, err
	}
	recs, err := scanAll(rows)
	if err != nil {
		return nil, err
	}
	for i := range recs {
		sweep(&recs[i], cause)
	}
	if err := s.save(ctx, tx, recs); err != nil {
		return nil, err
	}
	return recs, tx.Commit()
}

// List implements Store.
func (s *sqlStore) List(ctx context.Context, f Filter) ([]Record, error) {
	query := "SELECT " + selectCols + " FROM cdr"
	var args []any
	if !f.Since.IsZero() {
		query += " WHERE start_time >= ?"
		args = append(args, s.tm(f.Since))
	}
	if f.Oldest {
		query += " ORDER BY start_time, id"
	} else {
		query += " ORDER BY start_time DESC, id DESC"
	}
	if f.Limit > 0 {
		query += " LIMIT " + strconv.Itoa(f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, s.q(query), args...)
	if err != nil {
		return nil, err
	}
	return scanAll(rows)
}

// Close implements Store.
func (s *sqlStore) Close() error {
	s.mu.Lock()
	for i, stmt := range s.upsert {
		if stmt != nil {
			stmt.Close()
			s.upsert[i] = nil
		}
	}
	s.mu.Unlock()
	return s.db.Close()
}

func scanAll(rows *sql.Rows) ([]Record, error) {
	defer rows.Close()
	var out []Record
	for rows.Next() {
		var (
			r                        Record
			start, answer, end, seen any
			durMs                    int64
			in, outp, lost, late     int64
		)
		err := rows.Scan(&r.ID, &r.CallID, &r.Node, &r.Trunk, &r.From, &r.To,
			&r.Route, &r.TargetType, &r.Target,
			&start, &answer, &end, &seen, &durMs,
			&r.EndedBy, &r.Cause, &r.Status, &r.Abnormal,
			&in, &outp, &lost, &late, &r.Quality.JitterMs, &r.Quality.MOS,
			&r.Recording)
		if err != nil {
			return nil, err
		}
		for _, t := range []struct {
			dst *time.Time
			v   any
		}{{&r.Start, start}, {&r.Answer, answer}, {&r.End, end}, {&r.LastSeen, seen}} {
			if *t.dst, err = timeValue(t.v); err != nil {
				return nil, fmt.Errorf("cdr: record %s: %w", r.ID, err)
			}
		}
		r.Duration = time.Duration(durMs) * time.Millisecond
		r.Quality.PacketsIn, r.Quality.PacketsOut = uint64(in), uint64(outp)
		r.Quality.Lost, r.Quality.Late = uint64(lost), uint64(late)
		out = append(out, r)
	}
	return out, rows.Err()
}

// timeValue reads a stored time: unix microseconds (SQLite) or a timestamp (PostgreSQL).
func timeValue(v any) (time.Time, error) {
	switch v := v.(type) {
	case nil:
		return time.Time{}, nil
	case int64:
		return time.UnixMicro(v).UTC(), nil
	case time.Time:
		return v.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("time column holds %T", v)
}
