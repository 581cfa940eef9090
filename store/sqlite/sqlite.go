// Package sqlite is jobd's default store driver: one SQLite file in WAL
// mode, through the pure-Go modernc.org/sqlite.
//
// Every connection is configured in its DSN (busy timeout, foreign keys,
// WAL, synchronous=normal), never by a one-off PRAGMA on a pool. Writes go
// through one writer connection (SetMaxOpenConns(1), BEGIN IMMEDIATE), so
// writers queue in Go instead of failing with SQLITE_BUSY; reads use a
// separate pool of query_only connections, which WAL lets run alongside the
// writer. Every method that takes a batch writes it in one transaction with
// prepared statements, since SQLite commits are the expensive part; the
// statements stay prepared on the writer connection across transactions.
//
// Times are stored as INTEGER unix milliseconds, NULL for the zero time, and
// come back in UTC.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/jobd/jobd/store"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Migrations returns the SQLite schema migrations (for tests and tools;
// Open applies them).
func Migrations() fs.FS {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		panic(err) // the embedded directory is always there
	}
	return sub
}

// Store is a store.Store on one SQLite file.
type Store struct {
	path      string
	w         *sql.DB // the one writer connection
	r         *sql.DB // query_only readers
	now       func() time.Time
	closeOnce sync.Once
	closeErr  error
	wr        *writer
	ckpt      *checkpointer

	// stmts are statements prepared on the writer connection, reused by
	// every transaction (preparing is a fifth of a small write's cost).
	stmtMu sync.Mutex
	stmts  map[string]*sql.Stmt
}

// maxCachedStmts bounds the statement cache; RunsTransition builds its
// UPDATE from the fields set, so the set of queries is finite but not tiny.
const maxCachedStmts = 256

var _ store.Store = (*Store)(nil)

// Option configures Open.
type Option func(*options)

type options struct {
	readConns   int
	busyTimeout time.Duration
	now         func() time.Time
}

// WithReadConns sets how many read connections the store keeps (default:
// the number of CPUs, at least 4).
func WithReadConns(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.readConns = n
		}
	}
}

// WithBusyTimeout sets how long a connection waits for another process's
// lock on the file before failing with SQLITE_BUSY (default 5s).
func WithBusyTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.busyTimeout = d
		}
	}
}

// WithClock sets the clock used for timestamps the caller left zero
// (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}

// Open opens (creating it if needed) the SQLite database at path, checks it
// is in WAL mode and migrates it to the newest schema.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	o := options{
		readConns:   max(4, runtime.NumCPU()),
		busyTimeout: 5 * time.Second,
		now:         time.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if path == "" || strings.ContainsRune(path, '?') || strings.HasPrefix(path, ":memory:") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("open store: path %q must name a file (no '?', not in-memory)", path)
	}
	busy := fmt.Sprintf("_pragma=busy_timeout(%d)", o.busyTimeout.Milliseconds())
	common := busy + "&_pragma=foreign_keys(1)&_pragma=synchronous(normal)"

	// The writer keeps a larger page cache (the hot pages of every index it
	// writes), its statement journals in memory, and leaves checkpoints to
	// the checkpointer (see checkpoint.go).
	w, err := sql.Open("sqlite", path+"?"+common+"&_pragma=journal_mode(wal)&_pragma=wal_autocheckpoint(0)"+
		"&_pragma=temp_store(memory)&_pragma=cache_size(-32768)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: journal_mode is %q, want wal", path, mode)
	}
	if _, err := store.Migrate(ctx, w, Migrations(), store.DialectSQLite); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	// Readers open after the writer put the file in WAL mode (a persistent
	// setting), so they need not, and could not under query_only.
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(o.readConns)
	r.SetMaxIdleConns(o.readConns)
	r.SetConnMaxIdleTime(5 * time.Minute)
	if err := r.PingContext(ctx); err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	c, err := sql.Open("sqlite", path+"?"+common)
	if err != nil {
		_ = r.Close()
		_ = w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	c.SetMaxOpenConns(1)
	s := &Store{path: path, w: w, r: r, now: o.now, stmts: map[string]*sql.Stmt{}}
	s.wr = newWriter(s)
	s.ckpt = newCheckpointer(s, c)
	return s, nil
}

// Driver returns "sqlite".
func (s *Store) Driver() string { return "sqlite" }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close runs PRAGMA optimize and closes both pools. It is safe to call more
// than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		cerr := s.ckpt.close()
		s.wr.close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		// Best effort: keeps the planner's statistics fresh.
		_, _ = s.w.ExecContext(ctx, "PRAGMA optimize")
		s.stmtMu.Lock()
		for q, st := range s.stmts {
			_ = st.Close()
			delete(s.stmts, q)
		}
		s.stmtMu.Unlock()
		rerr := s.r.Close()
		werr := s.w.Close()
		if err := errors.Join(cerr, rerr, werr); err != nil {
			s.closeErr = fmt.Errorf("close store: %w", err)
		}
	})
	return s.closeErr
}

// nowMS is the store clock, truncated to what is stored.
func (s *Store) nowMS() time.Time { return msTime(s.now()) }

// tx is a write transaction that prepares each distinct statement once and
// reuses it for the rest of the transaction.
type tx struct {
	ctx   context.Context
	s     *Store
	tx    *sql.Tx
	stmts map[string]*sql.Stmt
	// uncached are the queries this transaction had to prepare itself.
	uncached []string
}

func (t *tx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.stmts[query]; ok {
		return st, nil
	}
	t.s.stmtMu.Lock()
	cached := t.s.stmts[query]
	t.s.stmtMu.Unlock()
	var st *sql.Stmt
	if cached != nil {
		// Reuses the statement already prepared on the writer connection.
		st = t.tx.StmtContext(t.ctx, cached)
	} else {
		var err error
		if st, err = t.tx.PrepareContext(t.ctx, query); err != nil {
			return nil, err
		}
		t.uncached = append(t.uncached, query)
	}
	t.stmts[query] = st
	return st, nil
}

// cacheStmts prepares queries on the writer for later transactions. It
// runs after a transaction ended: preparing on the pool while holding its
// one connection would deadlock. Best effort; failures only cost speed.
func (s *Store) cacheStmts(ctx context.Context, queries []string) {
	for _, q := range queries {
		s.stmtMu.Lock()
		skip := s.stmts[q] != nil || len(s.stmts) >= maxCachedStmts
		s.stmtMu.Unlock()
		if skip {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			continue
		}
		s.stmtMu.Lock()
		if s.stmts[q] == nil && len(s.stmts) < maxCachedStmts {
			s.stmts[q] = st
			st = nil
		}
		s.stmtMu.Unlock()
		if st != nil {
			_ = st.Close()
		}
	}
}

// exec runs a prepared statement and returns the rows it changed.
func (t *tx) exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

// insert runs an INSERT that may do nothing (ON CONFLICT DO NOTHING) and
// returns the new row id, or 0 if no row was inserted.
//
// Only for tables with a rowid: on a WITHOUT ROWID table the last insert
// id is stale, so use affected.
func (t *tx) insert(query string, args ...any) (int64, error) {
	res, err := t.exec(query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, err
	}
	return res.LastInsertId()
}

// affected runs a statement and returns how many rows it changed.
func (t *tx) affected(query string, args ...any) (int64, error) {
	res, err := t.exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// query runs a prepared statement that returns rows; the caller closes
// them.
func (t *tx) query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(t.ctx, args...)
}

func (t *tx) queryRow(query string, args ...any) (*sql.Row, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryRowContext(t.ctx, args...), nil
}

// write runs fn as one atomic write: it commits with the other writes
// queued at the same moment (see writer.go) and returns after the commit.
func (s *Store) write(ctx context.Context, fn func(*tx) error) error {
	return s.wr.do(ctx, fn)
}

// writeUrgent is write for a write that goes before the others queued
// (firing triggers).
func (s *Store) writeUrgent(ctx context.Context, fn func(*tx) error) error {
	return s.wr.doUrgent(ctx, fn)
}

// mapErr maps SQLite errors to the store's sentinels, keeping the cause:
// unique and primary-key violations become store.ErrConflict.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrNoRows) {
		// The driver's "no rows" says nothing more, and would reach users.
		return store.ErrNotFound
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return fmt.Errorf("%w: %w", store.ErrConflict, err)
		}
	}
	return err
}

// isForeignKey reports whether err is a foreign-key violation: the job or
// run a row points to does not exist (any more).
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// msTime truncates t to what the store keeps: milliseconds, in UTC.
func msTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return time.UnixMilli(t.UnixMilli()).UTC()
}

// ms is the column value of t: unix milliseconds, or NULL for zero.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS reads a nullable millisecond column.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// orNow returns t truncated, or now if t is zero.
func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return msTime(t)
}

// limit turns "≤ 0 means no limit" into SQLite's -1.
func limit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
