package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the database/sql driver "sqlite"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/daemon"
	"github.com/jobd/jobd/schedule"
	"github.com/jobd/jobd/store"
	"github.com/jobd/jobd/store/sqlite"
)

// seedBatch is how many rows one seeding transaction writes.
const seedBatch = 10_000

// storedSpec returns spec with the defaults jobd fills in before it stores
// a job (daemon.normalizeSpec), so a job written straight into the store is
// what jobd would have stored. checkSeededSpec verifies it against jobd.
func storedSpec(spec api.JobSpec) api.JobSpec {
	if spec.Group == "" {
		spec.Group = daemon.DefaultGroup
	}
	if spec.Misfire == "" {
		spec.Misfire = daemon.DefaultMisfire
	}
	if spec.MisfireThreshold == nil {
		spec.MisfireThreshold = ptr(api.Duration(daemon.DefaultMisfireThreshold))
	}
	if spec.MaxCatchUp == 0 {
		spec.MaxCatchUp = daemon.DefaultMaxCatchUp
	}
	if spec.Overlap == "" {
		spec.Overlap = daemon.DefaultOverlap
	}
	if spec.QueueMax == 0 {
		spec.QueueMax = daemon.DefaultQueueMax
	}
	if spec.Route == "" {
		spec.Route = daemon.DefaultRoute
	}
	if spec.Retries > 0 && spec.BackoffPolicy == "" {
		spec.BackoffPolicy = api.BackoffExponential
	}
	return spec
}

// scheduleOf compiles the schedule of spec, as jobd does.
func scheduleOf(spec *api.JobSpec) (schedule.Schedule, error) {
	s := schedule.Spec{Cron: spec.Cron, TZ: spec.TZ}
	switch {
	case spec.Cron != "":
		s.Kind = schedule.KindCron
	case spec.Every != nil:
		s.Kind, s.Every = schedule.KindEvery, spec.Every.D()
		if spec.Anchor != nil {
			s.Anchor = spec.Anchor.Time
		}
	case spec.Manual:
		s.Kind = schedule.KindManual
	default:
		return nil, fmt.Errorf("job %s: the harness seeds only cron, every and manual jobs", spec.Name)
	}
	sched, err := schedule.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", spec.Name, err)
	}
	return sched, nil
}

// firstFire is where jobd puts a new job's cursor: its first scheduled
// time at or after now (zero for manual jobs).
func firstFire(sched schedule.Schedule, now time.Time) time.Time {
	t, ok := sched.Next(now.Add(-time.Millisecond))
	if !ok {
		return time.Time{}
	}
	return t
}

// migrate creates the store at path with the current schema.
func migrate(ctx context.Context, path string) error {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("migrate store: %w", err)
	}
	return st.Close()
}

// openSQL opens the SQLite file of a stopped jobd with database/sql, with
// the per-connection settings of the store (one connection).
func openSQL(path string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)&_pragma=foreign_keys(1)&_pragma=journal_mode(wal)&_pragma=synchronous(normal)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	return db, nil
}

// jobGen returns the i-th job to seed, as a user would declare it.
type jobGen func(i int) api.JobSpec

// insertJobs writes n jobs into the store at path (migrated, with no jobd
// on it) with plain SQL, seedBatch per transaction and rowsPerInsert per
// statement, as jobd would have stored them: the spec with jobd's
// defaults, the cursor at the first fire after the row is written.
// Cursors of cron jobs are cached by expression, since seeded jobs share a
// few.
func insertJobs(ctx context.Context, path string, n int, gen jobGen) error {
	db, err := openSQL(path)
	if err != nil {
		return err
	}
	defer db.Close()
	// A cached cursor stays right while it is in the future.
	cursors := map[string]time.Time{}
	const cols = 6
	args := make([]any, 0, rowsPerInsert*cols)
	for from := 0; from < n; from += seedBatch {
		err := withTx(ctx, db, func(tx *sql.Tx) error {
			now := time.Now().Truncate(time.Millisecond)
			args = args[:0]
			for i := from; i < min(from+seedBatch, n); i++ {
				spec := storedSpec(gen(i))
				key := spec.Cron + "|" + spec.TZ
				next, ok := cursors[key]
				if spec.Cron == "" || !ok || !next.After(now) {
					sched, err := scheduleOf(&spec)
					if err != nil {
						return err
					}
					next = firstFire(sched, now)
					if spec.Cron != "" {
						cursors[key] = next
					}
				}
				b, err := json.Marshal(spec)
				if err != nil {
					return fmt.Errorf("encode job %s: %w", spec.Name, err)
				}
				var cursor any // NULL: nothing scheduled
				if !next.IsZero() {
					cursor = next.UnixMilli()
				}
				args = append(args, spec.Name, spec.Group, b, cursor, now.UnixMilli(), now.UnixMilli())
				if len(args) == cap(args) {
					if err := insertRows(ctx, tx, args, cols); err != nil {
						return err
					}
					args = args[:0]
				}
			}
			return insertRows(ctx, tx, args, cols)
		})
		if err != nil {
			return fmt.Errorf("seed jobs: %w", err)
		}
	}
	return nil
}

// rowsPerInsert is how many rows one INSERT statement of insertJobs
// carries: fewer statements, for the same rows, are much faster.
const rowsPerInsert = 100

// insertRows inserts the jobs whose columns are args, cols per row.
func insertRows(ctx context.Context, tx *sql.Tx, args []any, cols int) error {
	if len(args) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("INSERT INTO jobs (name, grp, spec, next_fire_at, created_at, updated_at) VALUES ")
	for i := range len(args) / cols {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString("(?, ?, ?, ?, ?, ?)")
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("insert jobs %s...: %w", args[0], err)
	}
	return nil
}

// withTx runs fn in a transaction and commits it, or rolls back on error.
func withTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return errors.Join(err, tx.Rollback())
	}
	return tx.Commit()
}

// checkSeededSpec creates, through jobd's API, a copy of a seeded job's
// declaration under another name and compares what jobd stored with what
// the harness stored; a difference means storedSpec is out of date.
func checkSeededSpec(ctx context.Context, c *api.Client, declared api.JobSpec) error {
	probe := declared
	probe.Name = declared.Name + "-probe"
	probe.Paused = true // it must not fire
	if _, err := c.JobCreate(ctx, probe); err != nil {
		return fmt.Errorf("create probe job: %w", err)
	}
	got, err := c.JobGet(ctx, probe.Name)
	if err != nil {
		return fmt.Errorf("get probe job: %w", err)
	}
	seeded, err := c.JobGet(ctx, declared.Name)
	if err != nil {
		return fmt.Errorf("get seeded job: %w", err)
	}
	if err := c.JobDelete(ctx, probe.Name); err != nil {
		return fmt.Errorf("delete probe job: %w", err)
	}
	got.JobSpec.Name, got.JobSpec.Paused = seeded.JobSpec.Name, seeded.JobSpec.Paused
	a, errA := json.Marshal(got.JobSpec)
	b, errB := json.Marshal(seeded.JobSpec)
	if err := errors.Join(errA, errB); err != nil {
		return fmt.Errorf("encode specs: %w", err)
	}
	if string(a) != string(b) {
		return fmt.Errorf("job %s as seeded differs from what jobd stores:\nseeded: %s\njobd:   %s", declared.Name, b, a)
	}
	return nil
}

// windowFigures are what the store of a stopped jobd says about a window.
type windowFigures struct {
	fired     int64
	fireLags  []time.Duration
	missed    int64
	runs      int64
	storeSize float64
}

// readWindow reads, from the store of a stopped jobd, the triggers
// scheduled in [from, to): how many fired and with what lag (fired_at -
// scheduled_at), how many times were recorded missed, and the runs stored.
func readWindow(ctx context.Context, p *jobdProc, from, to time.Time) (windowFigures, error) {
	f := windowFigures{storeSize: p.storeSizeMB()}
	db, err := openSQL(p.dbPath())
	if err != nil {
		return f, err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT fired_at - scheduled_at FROM triggers
WHERE state = 'fired' AND origin = 'schedule' AND scheduled_at >= ? AND scheduled_at < ?`, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return f, fmt.Errorf("read fired triggers: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ms int64
		if err := rows.Scan(&ms); err != nil {
			return f, fmt.Errorf("read fired triggers: %w", err)
		}
		f.fireLags = append(f.fireLags, time.Duration(ms)*time.Millisecond)
	}
	if err := rows.Err(); err != nil {
		return f, fmt.Errorf("read fired triggers: %w", err)
	}
	f.fired = int64(len(f.fireLags))
	// Missed rows are ranges; count those that overlap the window.
	err = db.QueryRowContext(ctx, `SELECT coalesce(sum(count), 0) FROM missed WHERE from_at < ? AND to_at >= ?`,
		to.UnixMilli(), from.UnixMilli()).Scan(&f.missed)
	if err != nil {
		return f, fmt.Errorf("count missed: %w", err)
	}
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM runs").Scan(&f.runs); err != nil {
		return f, fmt.Errorf("count runs: %w", err)
	}
	return f, nil
}

// routedTo counts the runs assigned to executor id after t and returns
// when the last of them was (zero if none).
func routedTo(ctx context.Context, db *sql.DB, id string, after time.Time) (int, time.Time, error) {
	var n int
	var last sql.NullInt64
	err := db.QueryRowContext(ctx, "SELECT count(*), max(assigned_at) FROM runs WHERE executor_id = ? AND assigned_at > ?",
		id, after.UnixMilli()).Scan(&n, &last)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count runs routed to %s: %w", id, err)
	}
	if !last.Valid {
		return n, time.Time{}, nil
	}
	return n, time.UnixMilli(last.Int64), nil
}

// seedRuns stores n ended runs of jobs, in mixed final states, with one
// fired trigger each, through the store's batch write (TriggersFire),
// seedBatch per transaction: run i is of job i%len(jobs), on the grid of
// interval (the jobs' schedule) ending now, oldest first. One missed time
// per 100 runs is recorded before that history.
func seedRuns(ctx context.Context, path string, jobs []api.JobSpec, n int, interval time.Duration) error {
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	type jobInfo struct {
		row   *store.Job
		sched string
	}
	infos := make([]jobInfo, len(jobs))
	for i, spec := range jobs {
		row, err := st.JobGet(ctx, spec.Name)
		if err != nil {
			return err
		}
		sched, err := scheduleOf(&spec)
		if err != nil {
			return err
		}
		infos[i] = jobInfo{row: row, sched: sched.String()}
	}
	// The states of every 100 runs.
	mix := []struct {
		state string
		n     int
	}{{store.RunSucceeded, 85}, {store.RunFailed, 8}, {store.RunTimedOut, 3}, {store.RunLost, 2}, {store.RunKilled, 1}, {store.RunSkipped, 1}}
	stateOf := func(i int) string {
		k := i % 100
		for _, m := range mix {
			if k < m.n {
				return m.state
			}
			k -= m.n
		}
		return store.RunSucceeded
	}
	perJob := (n + len(jobs) - 1) / len(jobs)
	first := time.Now().Truncate(interval).Add(-time.Duration(perJob) * interval)
	executors := [][2]string{{"seed-executor-a", "seed-a"}, {"seed-executor-b", "seed-b"}}
	for from := 0; from < n; from += seedBatch {
		batch := make([]*store.FireParams, 0, seedBatch)
		for i := from; i < min(from+seedBatch, n); i++ {
			j := infos[i%len(infos)]
			at := first.Add(time.Duration(i/len(infos)) * interval)
			ex := executors[i%len(executors)]
			r := &store.Run{JobName: j.row.Name, Attempt: 1, State: stateOf(i), Origin: store.OriginSchedule,
				ExecutorID: ex[0], ExecutorName: ex[1], CreatedAt: at, AssignedAt: at,
				StartedAt: at.Add(5 * time.Millisecond), FinishedAt: at.Add(time.Second)}
			switch r.State {
			case store.RunSucceeded:
				r.ExitCode = ptr(0)
			case store.RunFailed:
				r.ExitCode, r.Error = ptr(1), "exit status 1"
			case store.RunTimedOut:
				r.Error = "timed out after 1s"
			case store.RunLost:
				r.Error = "executor offline"
			case store.RunKilled:
				r.Error = "killed on request"
			case store.RunSkipped:
				r.StartedAt, r.AssignedAt, r.ExecutorID, r.ExecutorName = time.Time{}, time.Time{}, "", ""
				r.Error = "overlap: skip"
			}
			batch = append(batch, &store.FireParams{
				Trigger: &store.Trigger{JobID: j.row.ID, ScheduledAt: at, Origin: store.OriginSchedule, CreatedAt: at},
				State:   store.TriggerFired, FireAt: at, Runs: []*store.Run{r},
			})
		}
		if _, err := st.TriggersFire(ctx, batch); err != nil {
			return fmt.Errorf("seed runs: %w", err)
		}
	}
	missed := make([]*store.MissedAppend, n/100)
	for k := range missed {
		j := infos[k%len(infos)]
		at := first.Add(-time.Duration(2*(k/len(infos))+1) * interval)
		missed[k] = &store.MissedAppend{Missed: &store.Missed{JobID: j.row.ID, JobName: j.row.Name,
			From: at, To: at, Count: 1, Reason: api.MissedDown, Schedule: j.sched, RecordedAt: first}}
	}
	if err := st.MissedAppend(ctx, missed); err != nil {
		return fmt.Errorf("seed missed: %w", err)
	}
	return st.Close()
}
