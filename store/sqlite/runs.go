package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jobd/jobd/store"
)

// runCols are the columns of runs, qualified (r.) for joins.
const runCols = `r.id, r.trigger_id, r.job_id, r.job_name, r.attempt, r.state, r.origin, r.executor_id, r.executor_name,
r.scheduled_at, r.created_at, r.assigned_at, r.started_at, r.finished_at, r.exit_code, r.error, r.replay,
r.shard_index, r.shard_total, r.params, r.not_before`

func scanRun(sc scanner, extra ...any) (*store.Run, error) {
	var (
		r                                       store.Run
		sched, created, assigned, started, fini sql.NullInt64
		exit                                    sql.NullInt64
		replay                                  int
		params                                  sql.NullString
		notBefore                               sql.NullInt64
	)
	dest := []any{
		&r.ID, &r.TriggerID, &r.JobID, &r.JobName, &r.Attempt, &r.State, &r.Origin, &r.ExecutorID, &r.ExecutorName,
		&sched, &created, &assigned, &started, &fini, &exit, &r.Error, &replay,
		&r.ShardIndex, &r.ShardTotal, &params, &notBefore,
	}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	r.ScheduledAt, r.CreatedAt, r.AssignedAt = fromMS(sched), fromMS(created), fromMS(assigned)
	r.StartedAt, r.FinishedAt = fromMS(started), fromMS(fini)
	if exit.Valid {
		c := int(exit.Int64)
		r.ExitCode = &c
	}
	r.Replay = replay != 0
	r.NotBefore = fromMS(notBefore)
	if params.Valid && params.String != "" {
		if err := json.Unmarshal([]byte(params.String), &r.Params); err != nil {
			return nil, fmt.Errorf("decode params of run %d: %w", r.ID, err)
		}
	}
	return &r, nil
}

func (s *Store) queryRuns(ctx context.Context, query string, args ...any) ([]*store.Run, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// cloneRun copies r, ExitCode included, with its times truncated to what
// is stored.
func cloneRun(r *store.Run) *store.Run {
	c := *r
	if r.ExitCode != nil {
		code := *r.ExitCode
		c.ExitCode = &code
	}
	c.ScheduledAt, c.CreatedAt, c.AssignedAt = msTime(c.ScheduledAt), msTime(c.CreatedAt), msTime(c.AssignedAt)
	c.StartedAt, c.FinishedAt = msTime(c.StartedAt), msTime(c.FinishedAt)
	return &c
}

func exitCode(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// paramsJSON is the column value of run params: NULL when there are none.
func paramsJSON(p map[string]string) any {
	if len(p) == 0 {
		return nil
	}
	b, _ := json.Marshal(p) // a map of strings always marshals
	return string(b)
}

const runInsertCols = `trigger_id, job_id, job_name, attempt, state, origin, executor_id, executor_name,
scheduled_at, created_at, assigned_at, started_at, finished_at, exit_code, error, replay, shard_index, shard_total, params, not_before`

// runInsertSQL inserts n runs and returns their ids with the columns
// insertRuns checks them against.
func runInsertSQL(n int) string {
	var b strings.Builder
	b.WriteString("INSERT INTO runs (" + runInsertCols + ") VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(" RETURNING id, trigger_id, shard_index, attempt")
	return b.String()
}

// Multi-row inserts: runInsertRows per statement, then runInsertFew, then
// one at a time, so that only three statements are ever prepared.
const (
	runInsertRows = 32
	runInsertFew  = 8
)

var (
	runInsertManySQL = runInsertSQL(runInsertRows)
	runInsertFewSQL  = runInsertSQL(runInsertFew)
	runInsertOneSQL  = runInsertSQL(1)
)

// insertRuns inserts runs, several per statement, and sets each one's ID,
// defaulting State to pending and CreatedAt to now. Their Output, if any,
// is stored capped.
func (s *Store) insertRuns(t *tx, runs []*store.Run, now time.Time) error {
	args := make([]any, 0, 20*runInsertRows)
	for len(runs) > 0 {
		n, query := 1, runInsertOneSQL
		switch {
		case len(runs) >= runInsertRows:
			n, query = runInsertRows, runInsertManySQL
		case len(runs) >= runInsertFew:
			n, query = runInsertFew, runInsertFewSQL
		}
		group := runs[:n]
		runs = runs[n:]
		args = args[:0]
		for _, r := range group {
			if r.State == "" {
				r.State = store.RunPending
			}
			r.CreatedAt = orNow(r.CreatedAt, now)
			args = append(args, r.TriggerID, r.JobID, r.JobName, r.Attempt, r.State, r.Origin, r.ExecutorID, r.ExecutorName,
				ms(r.ScheduledAt), ms(r.CreatedAt), ms(r.AssignedAt), ms(r.StartedAt), ms(r.FinishedAt),
				exitCode(r.ExitCode), r.Error, boolInt(r.Replay), r.ShardIndex, r.ShardTotal, paramsJSON(r.Params), ms(r.NotBefore))
		}
		if err := assignRunIDs(t, query, args, group); err != nil {
			return fmt.Errorf("insert runs of job %q: %w", group[0].JobName, err)
		}
		for _, r := range group {
			if r.Output != "" {
				out := r.Output
				r.Output = ""
				stored, err := appendOutput(t, r.ID, out)
				if err != nil {
					return err
				}
				r.Output = stored
			}
		}
	}
	return nil
}

// assignRunIDs runs a multi-row insert of group and sets their IDs. The
// rows of one INSERT get increasing ids in the order of its VALUES (one
// writer, AUTOINCREMENT), though RETURNING lists them in no set order: the
// ids are sorted and each checked against its run.
func assignRunIDs(t *tx, query string, args []any, group []*store.Run) error {
	type ret struct {
		id, trigger   int64
		shard, attemp int
	}
	rows, err := t.query(query, args...)
	if err != nil {
		return err
	}
	got := make([]ret, 0, len(group))
	for rows.Next() {
		var r ret
		if err := rows.Scan(&r.id, &r.trigger, &r.shard, &r.attemp); err != nil {
			rows.Close()
			return err
		}
		got = append(got, r)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return err
	}
	if len(got) != len(group) {
		return fmt.Errorf("inserted %d runs, %d came back", len(group), len(got))
	}
	slices.SortFunc(got, func(a, b ret) int { return cmpInt64(a.id, b.id) })
	for i, r := range group {
		g := got[i]
		if g.trigger != r.TriggerID || g.shard != r.ShardIndex || g.attemp != r.Attempt {
			return fmt.Errorf("run ids came back out of order (id %d)", g.id)
		}
		r.ID = g.id
	}
	return nil
}

func cmpInt64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// RunGet returns the run with id, output included, or store.ErrNotFound.
func (s *Store) RunGet(ctx context.Context, id int64) (*store.Run, error) {
	r, err := scanRun(s.r.QueryRowContext(ctx, "SELECT "+runCols+" FROM runs r WHERE r.id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get run %d: %w", id, mapErr(err))
	}
	out, err := s.RunLog(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	r.Output = string(out)
	return r, nil
}

// RunLog returns the run's stored output from byte offset on (nothing when
// offset is at or past its end).
func (s *Store) RunLog(ctx context.Context, id, offset int64) ([]byte, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT data FROM run_log WHERE run_id = ? ORDER BY id", id)
	if err != nil {
		return nil, fmt.Errorf("read log of run %d: %w", id, err)
	}
	defer rows.Close()
	var out []byte
	var pos int64
	for rows.Next() {
		var chunk []byte
		if err := rows.Scan(&chunk); err != nil {
			return nil, fmt.Errorf("read log of run %d: %w", id, err)
		}
		end := pos + int64(len(chunk))
		if end > offset {
			out = append(out, chunk[max(0, offset-pos):]...)
		}
		pos = end
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read log of run %d: %w", id, err)
	}
	return out, nil
}

// RunList lists runs newest first (by id), optionally of one job, in one
// state and before an id. Output is not loaded; RunGet has it.
func (s *Store) RunList(ctx context.Context, p store.RunListParams) ([]*store.Run, error) {
	var (
		where []string
		args  []any
	)
	if p.JobName != "" {
		where = append(where, "r.job_name = ?")
		args = append(args, p.JobName)
	}
	if p.State != "" {
		where = append(where, "r.state = ?")
		args = append(args, p.State)
	}
	if p.ExecutorID != "" {
		where = append(where, "r.executor_id = ?")
		args = append(args, p.ExecutorID)
	}
	if p.Before > 0 {
		where = append(where, "r.id < ?")
		args = append(args, p.Before)
	}
	q := "SELECT " + runCols + " FROM runs r"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY r.id DESC LIMIT ?"
	args = append(args, limit(p.Limit))
	rs, err := s.queryRuns(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list runs: %w", err)
	}
	return rs, nil
}

// RunsActive lists runs that are pending, assigned or running, oldest
// first. Output is not loaded.
func (s *Store) RunsActive(ctx context.Context) ([]*store.Run, error) {
	rs, err := s.queryRuns(ctx, "SELECT "+runCols+" FROM runs r WHERE r.state IN (?, ?, ?) ORDER BY r.id",
		store.RunPending, store.RunAssigned, store.RunRunning)
	if err != nil {
		return nil, fmt.Errorf("list active runs: %w", err)
	}
	return rs, nil
}

// RunCounts counts runs by state; states without runs are absent.
func (s *Store) RunCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.r.QueryContext(ctx, "SELECT state, count(*) FROM runs GROUP BY state")
	if err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var (
			state string
			n     int64
		)
		if err := rows.Scan(&state, &n); err != nil {
			return nil, fmt.Errorf("count runs: %w", err)
		}
		out[state] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count runs: %w", err)
	}
	return out, nil
}

// RunInsert stores runs in one transaction and sets each one's ID (and
// State to pending and CreatedAt to now when unset) in place.
func (s *Store) RunInsert(ctx context.Context, runs []*store.Run) error {
	if len(runs) == 0 {
		return nil
	}
	err := s.write(ctx, func(t *tx) error {
		return s.insertRuns(t, runs, s.nowMS())
	})
	if err != nil {
		return fmt.Errorf("insert runs: %w", mapErr(err))
	}
	return nil
}

// transition applies one RunTransition in t and reports whether it
// matched.
func transition(t *tx, tr *store.RunTransition) (bool, error) {
	if tr.To == "" {
		return false, fmt.Errorf("transition run %d: no target state", tr.RunID)
	}
	var b strings.Builder
	args := []any{tr.To}
	b.WriteString("UPDATE runs SET state = ?")
	set := func(col string, v any) {
		b.WriteString(", " + col + " = ?")
		args = append(args, v)
	}
	f := tr.Set
	if f.ExecutorID != "" {
		set("executor_id", f.ExecutorID)
	}
	if f.ExecutorName != "" {
		set("executor_name", f.ExecutorName)
	}
	if !f.AssignedAt.IsZero() {
		set("assigned_at", ms(f.AssignedAt))
	}
	if !f.StartedAt.IsZero() {
		set("started_at", ms(f.StartedAt))
	}
	if !f.FinishedAt.IsZero() {
		set("finished_at", ms(f.FinishedAt))
	}
	if f.ExitCode != nil {
		set("exit_code", *f.ExitCode)
	}
	if f.Error != "" {
		set("error", f.Error)
	}
	b.WriteString(" WHERE id = ?")
	args = append(args, tr.RunID)
	if len(tr.From) > 0 {
		b.WriteString(" AND state IN (?" + strings.Repeat(", ?", len(tr.From)-1) + ")")
		for _, st := range tr.From {
			args = append(args, st)
		}
	}
	n, err := t.affected(b.String(), args...)
	if err != nil {
		return false, fmt.Errorf("transition run %d to %s: %w", tr.RunID, tr.To, err)
	}
	return n > 0, nil
}

// RunsTransition applies transitions in one transaction and reports, in
// order, which ones matched (the run exists and its state was one of
// From; an empty From matches any state).
func (s *Store) RunsTransition(ctx context.Context, ts []store.RunTransition) ([]bool, error) {
	var out []bool
	err := s.write(ctx, func(t *tx) error {
		out = make([]bool, len(ts))
		for i := range ts {
			ok, err := transition(t, &ts[i])
			if err != nil {
				return err
			}
			out[i] = ok
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("transition runs: %w", mapErr(err))
	}
	return out, nil
}

// outputRoom is the most output kept before truncation; a truncated
// output is outputRoom bytes (or up to 3 fewer, to end on a UTF-8
// boundary) followed by store.OutputTruncated, so any output longer than
// outputRoom is known to be truncated.
const outputRoom = store.OutputCap - len(store.OutputTruncated)

// appendOutput appends log to the stored output of run id, keeping at most
// store.OutputCap bytes, and returns what it appended.
func appendOutput(t *tx, id int64, log string) (string, error) {
	var cur int
	row, err := t.queryRow("SELECT output_size FROM runs WHERE id = ?", id)
	if err != nil {
		return "", err
	}
	if err := row.Scan(&cur); err != nil {
		return "", fmt.Errorf("read output size of run %d: %w", id, mapErr(err))
	}
	add := capOutput(cur, log)
	if add == "" {
		return "", nil
	}
	if _, err := t.exec("INSERT INTO run_log (run_id, data) VALUES (?, ?)", id, []byte(add)); err != nil {
		return "", fmt.Errorf("append output of run %d: %w", id, err)
	}
	if _, err := t.exec("UPDATE runs SET output_size = output_size + ? WHERE id = ?", len(add), id); err != nil {
		return "", fmt.Errorf("append output of run %d: %w", id, err)
	}
	return add, nil
}

// capOutput returns what of log to append to cur stored bytes.
func capOutput(cur int, log string) string {
	switch {
	case cur > outputRoom: // already truncated
		return ""
	case cur+len(log) <= outputRoom:
		return log
	}
	n := outputRoom - cur
	for n > 0 && !utf8.RuneStart(log[n]) {
		n--
	}
	return log[:n] + store.OutputTruncated
}

// pruneBatch bounds the rows one prune transaction deletes, so the writer
// is never held for long.
const pruneBatch = 2000

// RunsPrune deletes runs that ended before before (their output and
// reports go with them) and settled triggers fired before before that have
// no run left, in batches.
func (s *Store) RunsPrune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for {
		var n int64
		err := s.write(ctx, func(t *tx) error {
			var err error
			n, err = t.affected(`DELETE FROM runs WHERE id IN (SELECT id FROM runs
WHERE finished_at IS NOT NULL AND finished_at < ? LIMIT ?)`, ms(before), pruneBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune runs: %w", mapErr(err))
		}
		total += n
		if n < pruneBatch {
			break
		}
	}
	for {
		var n int64
		err := s.write(ctx, func(t *tx) error {
			var err error
			n, err = t.affected(`DELETE FROM triggers WHERE id IN (SELECT t.id FROM triggers t
WHERE t.state != 'pending' AND t.fired_at < ?
AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.trigger_id = t.id) LIMIT ?)`, ms(before), pruneBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("prune triggers: %w", mapErr(err))
		}
		if n < pruneBatch {
			break
		}
	}
	return total, nil
}
