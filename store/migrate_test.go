package store_test

import (
	"database/sql"
	"path/filepath"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	_ "modernc.org/sqlite"

	"github.com/jobd/jobd/store"
)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "m.db")+"?_pragma=busy_timeout(5000)&_txlock=immediate")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { require.NoError(t, db.Close()) })
	return db
}

func file(sql string) *fstest.MapFile { return &fstest.MapFile{Data: []byte(sql)} }

func tables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
	require.NoError(t, err)
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		require.NoError(t, rows.Scan(&n))
		out = append(out, n)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	fsys := fstest.MapFS{
		"0001_init.up.sql":   file("CREATE TABLE a (id INTEGER PRIMARY KEY);\nCREATE TABLE b (id INTEGER PRIMARY KEY);"),
		"0001_init.down.sql": file("DROP TABLE b; DROP TABLE a;"),
		"0002_more.up.sql":   file("CREATE TABLE c (id INTEGER PRIMARY KEY);"),
		"README.md":          file("not a migration"),
	}
	db := openDB(t)
	n, err := store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	require.Equal(t, []string{"a", "b", "c", "schema_migrations"}, tables(t, db))

	n, err = store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
	require.NoError(t, err)
	require.Zero(t, n, "idempotent")

	// A new migration applies on top.
	fsys["0003_d.up.sql"] = file("CREATE TABLE d (id INTEGER PRIMARY KEY);")
	n, err = store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
	require.NoError(t, err)
	require.Equal(t, 1, n)

	// A build that knows fewer migrations refuses the database.
	delete(fsys, "0003_d.up.sql")
	_, err = store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
	require.ErrorIs(t, err, store.ErrSchemaTooNew)
}

func TestMigrate_FailureRollsBack(t *testing.T) {
	t.Parallel()
	db := openDB(t)
	fsys := fstest.MapFS{
		"0001_ok.up.sql":  file("CREATE TABLE a (id INTEGER PRIMARY KEY);"),
		"0002_bad.up.sql": file("CREATE TABLE b (id INTEGER PRIMARY KEY); CREATE TABLE oops (;"),
	}
	n, err := store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
	require.Error(t, err)
	require.Contains(t, err.Error(), "0002_bad")
	require.Equal(t, 1, n)
	require.Equal(t, []string{"a", "schema_migrations"}, tables(t, db), "0002 left nothing behind")
	var v int
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT max(version) FROM schema_migrations").Scan(&v))
	require.Equal(t, 1, v)
}

func TestLoadMigrations_Invalid(t *testing.T) {
	t.Parallel()
	for name, fsys := range map[string]fstest.MapFS{
		"gap": {
			"0001_a.up.sql": file("SELECT 1;"),
			"0003_c.up.sql": file("SELECT 1;"),
		},
		"duplicate": {
			"0001_a.up.sql": file("SELECT 1;"),
			"0002_b.up.sql": file("SELECT 1;"),
			"0002_c.up.sql": file("SELECT 1;"),
		},
		"not from one": {
			"0002_b.up.sql": file("SELECT 1;"),
		},
		"misnamed": {
			"0001_a.up.sql": file("SELECT 1;"),
			"0002-b.up.sql": file("SELECT 1;"),
			"0003_c.up.sql": file("SELECT 1;"),
		},
		"empty": {},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := store.LoadMigrations(fsys)
			require.Error(t, err)
			db := openDB(t)
			_, err = store.Migrate(t.Context(), db, fsys, store.DialectSQLite)
			require.Error(t, err)
			require.NotContains(t, tables(t, db), "schema_migrations", "nothing is applied from an invalid set")
		})
	}
}

func TestLoadMigrations_Order(t *testing.T) {
	t.Parallel()
	ms, err := store.LoadMigrations(fstest.MapFS{
		"0010_j.up.sql": file("10"), "0002_b.up.sql": file("2"), "0001_a.up.sql": file("1"),
		"0003_c.up.sql": file("3"), "0004_d.up.sql": file("4"), "0005_e.up.sql": file("5"),
		"0006_f.up.sql": file("6"), "0007_g.up.sql": file("7"), "0008_h.up.sql": file("8"),
		"0009_i.up.sql": file("9"),
	})
	require.NoError(t, err)
	require.Len(t, ms, 10)
	for i, m := range ms {
		require.Equal(t, i+1, m.Version)
	}
	require.Equal(t, "j", ms[9].Name)
	require.Equal(t, "10", ms[9].SQL)
}
