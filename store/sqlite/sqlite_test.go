package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stretchr/testify/require"
	msqlite "modernc.org/sqlite"

	"github.com/jobd/jobd/store"
	"github.com/jobd/jobd/store/storetest"
)

func openTemp(t *testing.T, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "jobd.db"), opts...)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

func TestOpen_WALAndPragmas(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	for name, db := range map[string]*sql.DB{"writer": s.w, "reader": s.r} {
		var mode string
		require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode), name)
		require.Equal(t, "wal", mode, name)
		var fk, busy int
		require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA foreign_keys").Scan(&fk), name)
		require.Equal(t, 1, fk, name)
		require.NoError(t, db.QueryRowContext(t.Context(), "PRAGMA busy_timeout").Scan(&busy), name)
		require.Equal(t, 5000, busy, name)
	}
	// Every reader connection is read-only, not just the first one.
	conns := make([]*sql.Conn, 3)
	for i := range conns {
		c, err := s.r.Conn(t.Context())
		require.NoError(t, err)
		conns[i] = c
	}
	for _, c := range conns {
		_, err := c.ExecContext(t.Context(), "INSERT INTO groups (name, created_at) VALUES ('x', 0)")
		require.Error(t, err)
		require.NoError(t, c.Close())
	}
	require.Equal(t, 1, s.w.Stats().MaxOpenConnections)
}

func TestOpen_BadPath(t *testing.T) {
	t.Parallel()
	for _, p := range []string{"", ":memory:", "a?b", "file:x.db"} {
		_, err := Open(t.Context(), p)
		require.Error(t, err, p)
	}
	_, err := Open(t.Context(), filepath.Join(t.TempDir(), "missing-dir", "x.db"))
	require.Error(t, err)
}

func TestStore_PersistsAcrossReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobd.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	j, err := s.JobCreate(t.Context(), &store.Job{Name: "persist", Group: "g", NextFireAt: time.UnixMilli(5000)})
	require.NoError(t, err)
	trs, err := s.TriggersMaterialize(t.Context(), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: j.ID, Expect: time.UnixMilli(5000), Next: time.UnixMilli(7000)}},
		Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: time.UnixMilli(5000), Origin: store.OriginSchedule},
			{JobID: j.ID, ScheduledAt: time.UnixMilli(6000), Origin: store.OriginSchedule}},
	})
	require.NoError(t, err)
	_, err = s.TriggersFire(t.Context(), []*store.FireParams{{TriggerID: trs[0].ID, State: store.TriggerFired,
		Runs: []*store.Run{{JobName: "persist", Attempt: 1}}}})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s2, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s2.Close()) })
	got, err := s2.JobGet(t.Context(), "persist")
	require.NoError(t, err)
	require.Equal(t, int64(7000), got.NextFireAt.UnixMilli())
	pending, err := s2.TriggersPending(t.Context())
	require.NoError(t, err)
	require.Len(t, pending, 1, "stored triggers survive a restart")
	runs, err := s2.RunList(t.Context(), store.RunListParams{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	// And the exactly-once guard holds across the restart.
	res, err := s2.TriggersFire(t.Context(), []*store.FireParams{{TriggerID: trs[0].ID, State: store.TriggerFired,
		Runs: []*store.Run{{JobName: "persist", Attempt: 1}}}})
	require.NoError(t, err)
	require.False(t, res[0].Applied)
}

// TestStore_ConcurrentWriters writes from many goroutines, through one
// store and through two stores on the same file (as two processes would),
// and expects no SQLITE_BUSY.
func TestStore_ConcurrentWriters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobd.db")
	stores := make([]*Store, 2)
	for i := range stores {
		s, err := Open(t.Context(), path)
		require.NoError(t, err)
		t.Cleanup(func() { require.NoError(t, s.Close()) })
		stores[i] = s
	}
	const workers, rounds = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := range workers {
		s := stores[w%len(stores)]
		wg.Go(func() {
			ctx := t.Context()
			for i := range rounds {
				name := fmt.Sprintf("w%d-%d", w, i)
				j, err := s.JobCreate(ctx, &store.Job{Name: name, Group: "g", NextFireAt: time.UnixMilli(1000)})
				if err != nil {
					errs <- err
					continue
				}
				// A read followed by writes in one transaction: the pattern
				// that fails with SQLITE_BUSY on deferred transactions.
				_, err = s.TriggersMaterialize(ctx, store.MaterializeParams{
					Advances: []store.JobAdvance{{JobID: j.ID, Expect: time.UnixMilli(1000), Next: time.UnixMilli(2000)}},
					Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: time.UnixMilli(1000), Origin: store.OriginSchedule}},
					Missed:   []*store.MissedAppend{{Missed: &store.Missed{JobID: j.ID, JobName: name, From: time.UnixMilli(1), To: time.UnixMilli(1), Count: 1, Reason: "r"}, MergeAfter: time.UnixMilli(0)}},
				})
				if err != nil {
					errs <- err
				}
				if _, err := s.JobList(ctx, store.JobListParams{Limit: 5}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	total, _, err := stores[0].JobCount(t.Context())
	require.NoError(t, err)
	require.EqualValues(t, workers*rounds, total)
	pending, err := stores[1].TriggersPending(t.Context())
	require.NoError(t, err)
	require.Len(t, pending, workers*rounds)
}

func TestMigrations(t *testing.T) {
	t.Parallel()
	ms, err := store.LoadMigrations(Migrations())
	require.NoError(t, err, "the embedded migrations are valid")

	s := openTemp(t)
	var version int
	require.NoError(t, s.r.QueryRowContext(t.Context(), "SELECT max(version) FROM schema_migrations").Scan(&version))
	require.Equal(t, len(ms), version, "Open migrates to head")

	n, err := store.Migrate(t.Context(), s.w, Migrations(), store.DialectSQLite)
	require.NoError(t, err)
	require.Zero(t, n, "running again does nothing")
	var rows int
	require.NoError(t, s.r.QueryRowContext(t.Context(), "SELECT count(*) FROM schema_migrations").Scan(&rows))
	require.Equal(t, len(ms), rows)

	// Reopening an up-to-date file applies nothing either.
	require.NoError(t, s.Close())
	s2, err := Open(t.Context(), s.Path())
	require.NoError(t, err)
	require.NoError(t, s2.Close())
}

// TestQueryPlans checks that the hot queries use an index rather than a
// scan or a sort, on a store holding 100,000 runs (fewer under -race).
func TestQueryPlans(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	runs := make([]*store.Run, queryPlanRuns)
	for i := range runs {
		runs[i] = &store.Run{JobName: fmt.Sprintf("job-%d", i%50), Attempt: 1,
			State: []string{store.RunSucceeded, store.RunFailed}[i%2]}
	}
	require.NoError(t, s.RunInsert(t.Context(), runs))
	_, err := s.w.ExecContext(t.Context(), "ANALYZE")
	require.NoError(t, err)

	cases := []struct {
		name, query string
		args        []any
		want        string
	}{
		{"RunListByJob", "SELECT " + runCols + " FROM runs r WHERE r.job_name = ? AND r.id < ? ORDER BY r.id DESC LIMIT ?",
			[]any{"job-3", 1 << 40, 50}, "runs_job"},
		{"RunListByState", "SELECT " + runCols + " FROM runs r WHERE r.state = ? ORDER BY r.id DESC LIMIT ?",
			[]any{store.RunFailed, 50}, "runs_state"},
		{"RunListByJobState", "SELECT " + runCols + " FROM runs r WHERE r.job_name = ? AND r.state = ? ORDER BY r.id DESC LIMIT ?",
			[]any{"job-3", store.RunFailed, 50}, "USING INDEX runs_"},
		{"RunListAll", "SELECT " + runCols + " FROM runs r WHERE r.id < ? ORDER BY r.id DESC LIMIT ?",
			[]any{1 << 40, 50}, "INTEGER PRIMARY KEY"},
		{"RunsActive", "SELECT " + runCols + " FROM runs r WHERE r.state IN (?, ?, ?) ORDER BY r.id",
			[]any{store.RunPending, store.RunAssigned, store.RunRunning}, "runs_state"},
		{"JobsDue", "SELECT " + jobColsStored + " FROM jobs WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ? ORDER BY next_fire_at, id LIMIT ?",
			[]any{1, 10}, "jobs_due"},
		{"TriggersPending", "SELECT " + triggerCols + " FROM triggers WHERE state = 'pending' ORDER BY scheduled_at, id",
			nil, "triggers_pending"},
		{"JobGet", "SELECT " + jobCols + " FROM jobs WHERE name = ?", []any{"j"}, "USING INDEX triggers_key (job_id=? AND scheduled_at>?)"},
		{"TriggerList", "SELECT " + triggerCols + " FROM triggers WHERE job_id = ? AND scheduled_at BETWEEN ? AND ? ORDER BY scheduled_at, id",
			[]any{1, 0, 10}, "triggers_key"},
		{"SettleTriggers", "UPDATE triggers SET state = ?, fired_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending' RETURNING id",
			[]any{store.TriggerFired, 1, "[1,2]"}, "INTEGER PRIMARY KEY (rowid=?)"},
		{"ReportRuns", reportRunSQL + " WHERE r.id IN (SELECT value FROM json_each(?))", []any{"[1,2]"}, "INTEGER PRIMARY KEY (rowid=?)"},
		{"ReportFlush", flushManySQL, make([]any, 11*flushRows), "INTEGER PRIMARY KEY (rowid=?)"},
		{"ReportFlushOne", flushOneSQL, make([]any, 11), "INTEGER PRIMARY KEY (rowid=?)"},
		{"MissedMerge", "SELECT id FROM missed WHERE job_id = ? AND reason = ? ORDER BY to_at DESC, id DESC LIMIT 1",
			[]any{1, "r"}, "missed_merge"},
	}
	for _, tc := range cases {
		plan := queryPlan(t, s.r, tc.query, tc.args...)
		t.Logf("%s: %s", tc.name, plan)
		require.Contains(t, plan, tc.want, "%s: %s", tc.name, plan)
		for _, step := range strings.Split(plan, "; ") {
			// Scanning the values a statement was given is no table scan.
			if strings.HasPrefix(step, "SCAN ") && !strings.HasPrefix(step, "SCAN json_each") && !strings.Contains(step, "VALUES CLAUSE") {
				require.Contains(t, step, " USING ", "%s: full scan: %s", tc.name, plan)
			}
		}
		if tc.name != "RunsActive" && tc.name != "TriggerList" { // a few rows are sorted in memory
			require.NotContains(t, plan, "TEMP B-TREE", "%s: sorts: %s", tc.name, plan)
		}
	}

	page, err := s.RunList(t.Context(), store.RunListParams{JobName: "job-7", State: store.RunFailed, Limit: 100})
	require.NoError(t, err)
	require.Len(t, page, 100)
	require.Equal(t, runs[len(runs)-43].ID, page[0].ID)
}

func queryPlan(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	require.NoError(t, err)
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
		lines = append(lines, detail)
	}
	require.NoError(t, rows.Err())
	return strings.Join(lines, "; ")
}

func TestMapErr(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	_, err := s.w.ExecContext(t.Context(), "INSERT INTO groups (name, created_at) VALUES ('g', 0)")
	require.NoError(t, err)
	_, err = s.w.ExecContext(t.Context(), "INSERT INTO groups (name, created_at) VALUES ('g', 0)")
	require.Error(t, err)
	mapped := mapErr(err)
	require.ErrorIs(t, mapped, store.ErrConflict)
	var se *msqlite.Error
	require.ErrorAs(t, mapped, &se, "the cause is kept")
	require.Contains(t, mapped.Error(), "UNIQUE constraint failed")

	// A foreign-key violation is not a conflict.
	_, err = s.w.ExecContext(t.Context(), "INSERT INTO run_report_seqs (run_id, attempt, seq) VALUES (1, 1, 1)")
	require.Error(t, err)
	require.True(t, isForeignKey(err))
	require.NotErrorIs(t, mapErr(err), store.ErrConflict)

	require.ErrorIs(t, mapErr(sql.ErrNoRows), store.ErrNotFound)
	require.NoError(t, mapErr(nil))
}

func TestCapOutput(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", capOutput(0, "abc"))
	require.Equal(t, "", capOutput(outputRoom+1, "abc"), "already truncated")
	got := capOutput(outputRoom-1, "abc")
	require.Equal(t, "a"+store.OutputTruncated, got)
	require.Equal(t, store.OutputCap, outputRoom-1+len(got))
	// A cut inside a rune backs off to its start.
	got = capOutput(outputRoom-1, "éa")
	require.Equal(t, store.OutputTruncated, got)
}

func TestWithClock(t *testing.T) {
	t.Parallel()
	now := time.Date(2040, 1, 2, 3, 4, 5, 678_900_000, time.UTC)
	s := openTemp(t, WithClock(func() time.Time { return now }), WithReadConns(2), WithBusyTimeout(time.Second))
	j, err := s.JobCreate(context.Background(), &store.Job{Name: "c", Group: "g"})
	require.NoError(t, err)
	require.Equal(t, now.Truncate(time.Millisecond), j.CreatedAt)
	require.Equal(t, 2, s.r.Stats().MaxOpenConnections)
}

// TestWriter_FailedOpDoesNotAbortBatch runs many writes at once so they
// share commits: the ones that fail (duplicate names) fail alone.
func TestWriter_FailedOpDoesNotAbortBatch(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every name is used twice: exactly one of each pair wins.
			name := fmt.Sprintf("job-%03d", i/2)
			_, errs[i] = s.JobCreate(ctx, &store.Job{Name: name, Group: "g", Spec: []byte("{}")})
		}()
	}
	wg.Wait()
	var ok, conflict int
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrConflict):
			conflict++
		default:
			t.Fatalf("unexpected error: %v", err)
		}
	}
	require.Equal(t, n/2, ok)
	require.Equal(t, n/2, conflict)
	total, _, err := s.JobCount(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n/2, total)
}

// TestRunReport_FirstWriteAfterOpen is a regression test: the first report
// a fresh process stores must not be taken for a duplicate (reports were
// once judged by the insert of a row without rowid).
func TestRunReport_FirstWriteAfterOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobd.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	runs := []*store.Run{{JobName: "j", Attempt: 1, State: store.RunAssigned}}
	require.NoError(t, s.RunInsert(t.Context(), runs))
	require.NoError(t, s.Close())

	s, err = Open(t.Context(), path)
	require.NoError(t, err)
	defer s.Close()
	res, err := s.RunReport(t.Context(), store.ReportParams{RunID: runs[0].ID, Attempt: 1, Seq: 1,
		Transition: &store.RunTransition{From: []string{store.RunAssigned}, To: store.RunRunning}})
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	require.True(t, res.Applied)
}

// TestMigration0007 checks that the per-report rows of run_reports become
// the highest seq per run attempt.
func TestMigration0007(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", filepath.Join(t.TempDir(), "old.db")+"?_pragma=foreign_keys(1)")
	require.NoError(t, err)
	defer db.Close()
	old := fstest.MapFS{}
	all, err := fs.ReadDir(Migrations(), ".")
	require.NoError(t, err)
	for _, e := range all {
		if e.Name() < "0007" {
			b, err := fs.ReadFile(Migrations(), e.Name())
			require.NoError(t, err)
			old[e.Name()] = &fstest.MapFile{Data: b}
		}
	}
	_, err = store.Migrate(t.Context(), db, old, store.DialectSQLite)
	require.NoError(t, err)
	for _, q := range []string{
		"INSERT INTO runs (id, trigger_id, job_id, job_name, attempt, state, origin, created_at) VALUES (1, 1, 1, 'a', 1, 'running', 'schedule', 0)",
		"INSERT INTO runs (id, trigger_id, job_id, job_name, attempt, state, origin, created_at) VALUES (2, 2, 1, 'a', 2, 'running', 'schedule', 0)",
		"INSERT INTO run_reports (run_id, attempt, seq) VALUES (1, 1, 1), (1, 1, 2), (1, 1, 3), (2, 1, 4), (2, 1, 5)",
	} {
		_, err := db.ExecContext(t.Context(), q)
		require.NoError(t, err, q)
	}
	_, err = store.Migrate(t.Context(), db, Migrations(), store.DialectSQLite)
	require.NoError(t, err)
	var seq1, seq2, other int64
	require.NoError(t, db.QueryRowContext(t.Context(), "SELECT (SELECT report_seq FROM runs WHERE id = 1), (SELECT report_seq FROM runs WHERE id = 2), (SELECT seq FROM run_report_seqs WHERE run_id = 2 AND attempt = 1)").Scan(&seq1, &seq2, &other))
	require.Equal(t, []int64{3, 0, 5}, []int64{seq1, seq2, other})
}
