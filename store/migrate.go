package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Dialect tells Migrate how to speak to a database. Drivers pass their own.
type Dialect int

// Dialects known to Migrate.
const (
	// DialectSQLite is SQLite: "?" placeholders; the transaction's write
	// lock (BEGIN IMMEDIATE) serialises concurrent migrators.
	DialectSQLite Dialect = iota + 1
	// DialectPostgres is PostgreSQL: "$n" placeholders; a transaction-scoped
	// advisory lock serialises concurrent migrators (several jobd on one
	// database).
	DialectPostgres
)

// String names the dialect.
func (d Dialect) String() string {
	switch d {
	case DialectSQLite:
		return "sqlite"
	case DialectPostgres:
		return "postgres"
	default:
		return "dialect(" + strconv.Itoa(int(d)) + ")"
	}
}

// bind returns the placeholder of the n-th (1-based) query parameter.
func (d Dialect) bind(n int) string {
	if d == DialectPostgres {
		return "$" + strconv.Itoa(n)
	}
	return "?"
}

// lock is run first in every migration transaction.
func (d Dialect) lock() string {
	if d == DialectPostgres {
		// An arbitrary constant identifying jobd's migrator.
		return "SELECT pg_advisory_xact_lock(7436220105)"
	}
	return ""
}

// Migration is one numbered schema change, read from a file named
// NNNN_name.up.sql.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// ErrSchemaTooNew means the database was migrated by a newer build that
// knows migrations this one does not.
var ErrSchemaTooNew = errors.New("database schema is newer than this build")

var migrationFile = regexp.MustCompile(`^([0-9]+)_([a-z0-9_]+)\.(up|down)\.sql$`)

// LoadMigrations reads the NNNN_name.up.sql files at the root of fsys,
// ordered by version. Versions must run 1, 2, 3… with no duplicate and no
// gap. Down files are accepted and ignored; any other .sql file is an error,
// so a misnamed migration is never silently skipped.
func LoadMigrations(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		m := migrationFile.FindStringSubmatch(name)
		if m == nil {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.up.sql", name)
		}
		if m[3] == "down" {
			continue
		}
		v, err := strconv.Atoi(m[1])
		if err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: bad version %q", name, m[1])
		}
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", name, err)
		}
		ms = append(ms, Migration{Version: v, Name: m[2], SQL: string(body)})
	}
	slices.SortFunc(ms, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range ms {
		if i > 0 && ms[i-1].Version == m.Version {
			return nil, fmt.Errorf("migration %04d: duplicate version (%s and %s)", m.Version, ms[i-1].Name, m.Name)
		}
		if m.Version != i+1 {
			return nil, fmt.Errorf("migration %04d_%s: gap, want version %d", m.Version, m.Name, i+1)
		}
	}
	if len(ms) == 0 {
		return nil, errors.New("read migrations: none found")
	}
	return ms, nil
}

// Migrate brings db to the newest migration in fsys (see LoadMigrations)
// and returns how many it applied. Each migration runs in its own
// transaction together with the insert of its schema_migrations row, so a
// failed migration leaves the schema at the previous version. Running it
// again on a migrated database does nothing. It returns ErrSchemaTooNew if
// the database knows a version that fsys does not.
func Migrate(ctx context.Context, db *sql.DB, fsys fs.FS, d Dialect) (int, error) {
	ms, err := LoadMigrations(fsys)
	if err != nil {
		return 0, err
	}
	if err := inMigrationTx(ctx, db, d, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_at BIGINT NOT NULL
)`)
		return err
	}); err != nil {
		return 0, fmt.Errorf("create schema_migrations: %w", err)
	}

	current, err := schemaVersion(ctx, db)
	if err != nil {
		return 0, err
	}
	if current > len(ms) {
		return 0, fmt.Errorf("migrate %s: %w (database at %d, newest known %d)", d, ErrSchemaTooNew, current, len(ms))
	}

	applied := 0
	for _, m := range ms[current:] {
		err := inMigrationTx(ctx, db, d, func(tx *sql.Tx) error {
			// Another process may have applied it since we looked.
			var n int
			q := "SELECT count(*) FROM schema_migrations WHERE version = " + d.bind(1)
			if err := tx.QueryRowContext(ctx, q, m.Version).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
				return err
			}
			q = fmt.Sprintf("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
				d.bind(1), d.bind(2), d.bind(3))
			if _, err := tx.ExecContext(ctx, q, m.Version, m.Name, time.Now().UnixMilli()); err != nil {
				return err
			}
			applied++
			return nil
		})
		if err != nil {
			return applied, fmt.Errorf("migrate %04d_%s: %w", m.Version, m.Name, err)
		}
	}
	return applied, nil
}

// schemaVersion returns the newest applied version, checking that the
// applied versions are exactly 1..n.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	rows, err := db.QueryContext(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			return 0, fmt.Errorf("read schema_migrations: %w", err)
		}
		n++
		if v != n {
			return 0, fmt.Errorf("read schema_migrations: applied versions are not 1..n (found %d at position %d)", v, n)
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("read schema_migrations: %w", err)
	}
	return n, nil
}

func inMigrationTx(ctx context.Context, db *sql.DB, d Dialect, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if l := d.lock(); l != "" {
		if _, err := tx.ExecContext(ctx, l); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}
