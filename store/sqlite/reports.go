package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jobd/jobd/store"
)

// RunReport applies one executor report, idempotently by (run, attempt,
// seq): a report already stored is a Duplicate and changes nothing.
func (s *Store) RunReport(ctx context.Context, p store.ReportParams) (store.ReportResult, error) {
	res, err := s.RunReports(ctx, []store.ReportParams{p})
	if err != nil {
		return store.ReportResult{}, err
	}
	if res[0].Err != nil {
		return store.ReportResult{}, fmt.Errorf("report run %d attempt %d seq %d: %w", p.RunID, p.Attempt, p.Seq, res[0].Err)
	}
	return res[0], nil
}

// RunReports applies reports in order in one transaction. A report on an
// unknown run is refused alone (its ReportResult.Err); the others apply.
//
// Each run a batch names is read once and written once: the reports are
// applied to it in memory (an executor's start and result often share a
// batch), then its row is stored with every column a report may change.
func (s *Store) RunReports(ctx context.Context, ps []store.ReportParams) ([]store.ReportResult, error) {
	var out []store.ReportResult
	err := s.write(ctx, func(t *tx) error {
		out = make([]store.ReportResult, len(ps))
		b := reportBatch{t: t, runs: make(map[int64]*reportRun, len(ps))}
		if err := b.preload(ps); err != nil {
			return err
		}
		for i, p := range ps {
			res, err := b.apply(p)
			if err != nil {
				return err
			}
			out[i] = res
		}
		return b.flush()
	})
	if err != nil {
		return nil, fmt.Errorf("store %d reports: %w", len(ps), mapErr(err))
	}
	return out, nil
}

// reportRun is a run as a batch of reports left it so far.
type reportRun struct {
	run        *store.Run
	outputSize int
	reportSeq  int64 // of the run's own attempt
	dirty      bool
}

// reportBatch applies reports to the runs they name, in memory, and
// writes each changed run once (flush).
type reportBatch struct {
	t     *tx
	runs  map[int64]*reportRun
	order []*reportRun // dirty runs, in the order they changed
}

// reportRunSQL reads a run as a batch of reports needs it.
const reportRunSQL = "SELECT " + runCols + ", r.output_size, r.report_seq FROM runs r"

// preload reads the runs of a batch of reports, many per statement; load
// finds them there (and runs it did not find are unknown).
func (b *reportBatch) preload(ps []store.ReportParams) error {
	ids := make([]int64, 0, len(ps))
	seen := make(map[int64]bool, len(ps))
	for _, p := range ps {
		if !seen[p.RunID] {
			seen[p.RunID] = true
			ids = append(ids, p.RunID)
		}
	}
	if len(ids) < 2 {
		return nil // load reads it alone
	}
	for _, id := range ids {
		b.runs[id] = nil // unknown unless read below
	}
	for len(ids) > 0 {
		chunk := ids[:min(len(ids), settleBulkMax)]
		ids = ids[len(chunk):]
		rows, err := b.t.query(reportRunSQL+" WHERE r.id IN (SELECT value FROM json_each(?))", idsJSON(chunk))
		if err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
		for rows.Next() {
			rr := &reportRun{}
			if rr.run, err = scanRun(rows, &rr.outputSize, &rr.reportSeq); err != nil {
				rows.Close()
				return fmt.Errorf("read runs: %w", err)
			}
			b.runs[rr.run.ID] = rr
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("read runs: %w", err)
		}
	}
	return nil
}

// load returns the run id, reading it the first time; nil if unknown.
func (b *reportBatch) load(id int64) (*reportRun, error) {
	if rr, ok := b.runs[id]; ok {
		return rr, nil
	}
	row, err := b.t.queryRow(reportRunSQL+" WHERE r.id = ?", id)
	if err != nil {
		return nil, err
	}
	rr := &reportRun{}
	rr.run, err = scanRun(row, &rr.outputSize, &rr.reportSeq)
	if errors.Is(err, sql.ErrNoRows) {
		b.runs[id] = nil
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read run %d: %w", id, err)
	}
	b.runs[id] = rr
	return rr, nil
}

func (b *reportBatch) changed(rr *reportRun) {
	if !rr.dirty {
		rr.dirty = true
		b.order = append(b.order, rr)
	}
}

// apply applies one report to its run in memory; only its log is written
// at once.
func (b *reportBatch) apply(p store.ReportParams) (store.ReportResult, error) {
	var res store.ReportResult
	rr, err := b.load(p.RunID)
	if err != nil {
		return res, err
	}
	if rr == nil {
		return store.ReportResult{Err: fmt.Errorf("run %d: %w", p.RunID, store.ErrNotFound)}, nil
	}
	if p.Attempt == rr.run.Attempt {
		if p.Seq <= rr.reportSeq {
			return store.ReportResult{Duplicate: true}, nil
		}
		rr.reportSeq = p.Seq
		b.changed(rr)
	} else {
		dup, err := b.otherAttempt(p)
		if err != nil || dup {
			return store.ReportResult{Duplicate: dup}, err
		}
	}
	res.Applied = true
	if p.Transition != nil {
		if p.Transition.To == "" {
			return res, fmt.Errorf("transition run %d: no target state", p.RunID)
		}
		res.Applied = applyTransition(rr.run, p.Transition)
		if res.Applied {
			b.changed(rr)
			res.Run = cloneRun(rr.run)
		}
	}
	if p.Log != "" {
		add := capOutput(rr.outputSize, p.Log)
		if add != "" {
			if _, err := b.t.exec("INSERT INTO run_log (run_id, data) VALUES (?, ?)", p.RunID, []byte(add)); err != nil {
				return res, fmt.Errorf("append output of run %d: %w", p.RunID, err)
			}
			rr.outputSize += len(add)
			b.changed(rr)
		}
	}
	return res, nil
}

// otherAttempt records the seq of a report made under an attempt other
// than its run's, and reports whether it is a duplicate.
func (b *reportBatch) otherAttempt(p store.ReportParams) (dup bool, err error) {
	n, err := b.t.affected(`INSERT INTO run_report_seqs (run_id, attempt, seq) VALUES (?, ?, ?)
ON CONFLICT (run_id, attempt) DO UPDATE SET seq = excluded.seq WHERE excluded.seq > seq`, p.RunID, p.Attempt, p.Seq)
	if err != nil {
		return false, fmt.Errorf("record report of run %d attempt %d: %w", p.RunID, p.Attempt, err)
	}
	return n == 0, nil
}

// Runs are written flushRows per statement, then flushFew, then one at a
// time, so that only three statements are ever prepared.
const (
	flushRows = 32
	flushFew  = 8
)

// flushSQL writes n runs: every column a report may change.
func flushSQL(n int) string {
	var b strings.Builder
	b.WriteString(`UPDATE runs SET state = v.column2, executor_id = v.column3, executor_name = v.column4,
assigned_at = v.column5, started_at = v.column6, finished_at = v.column7, exit_code = v.column8, error = v.column9,
output_size = v.column10, report_seq = v.column11 FROM (VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
	}
	b.WriteString(") AS v WHERE runs.id = v.column1")
	return b.String()
}

var (
	flushManySQL = flushSQL(flushRows)
	flushFewSQL  = flushSQL(flushFew)
	// One run takes a plain UPDATE (one row of VALUES is materialised).
	flushOneSQL = `UPDATE runs SET state = ?2, executor_id = ?3, executor_name = ?4, assigned_at = ?5, started_at = ?6,
finished_at = ?7, exit_code = ?8, error = ?9, output_size = ?10, report_seq = ?11 WHERE id = ?1`
)

// flush writes the runs the batch changed, several per statement.
func (b *reportBatch) flush() error {
	args := make([]any, 0, 11*flushRows)
	for len(b.order) > 0 {
		n, query := 1, flushOneSQL
		switch {
		case len(b.order) >= flushRows:
			n, query = flushRows, flushManySQL
		case len(b.order) >= flushFew:
			n, query = flushFew, flushFewSQL
		}
		group := b.order[:n]
		b.order = b.order[n:]
		args = args[:0]
		for _, rr := range group {
			r := rr.run
			args = append(args, r.ID, r.State, r.ExecutorID, r.ExecutorName, ms(r.AssignedAt), ms(r.StartedAt),
				ms(r.FinishedAt), exitCode(r.ExitCode), r.Error, rr.outputSize, rr.reportSeq)
		}
		if _, err := b.t.exec(query, args...); err != nil {
			return fmt.Errorf("store %d runs: %w", len(group), err)
		}
	}
	return nil
}

// applyTransition applies tr to r in memory, as transition does in the
// store, and reports whether it matched.
func applyTransition(r *store.Run, tr *store.RunTransition) bool {
	if len(tr.From) > 0 && !slices.Contains(tr.From, r.State) {
		return false
	}
	r.State = tr.To
	f := tr.Set
	if f.ExecutorID != "" {
		r.ExecutorID = f.ExecutorID
	}
	if f.ExecutorName != "" {
		r.ExecutorName = f.ExecutorName
	}
	if !f.AssignedAt.IsZero() {
		r.AssignedAt = msTime(f.AssignedAt)
	}
	if !f.StartedAt.IsZero() {
		r.StartedAt = msTime(f.StartedAt)
	}
	if !f.FinishedAt.IsZero() {
		r.FinishedAt = msTime(f.FinishedAt)
	}
	if f.ExitCode != nil {
		c := *f.ExitCode
		r.ExitCode = &c
	}
	if f.Error != "" {
		r.Error = f.Error
	}
	return true
}
