package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/jobd/jobd/store"
)

const missedCols = "id, job_id, job_name, from_at, to_at, count, reason, schedule, recorded_at"

func scanMissed(sc scanner) (*store.Missed, error) {
	var (
		m                  store.Missed
		from, to, recorded sql.NullInt64
	)
	if err := sc.Scan(&m.ID, &m.JobID, &m.JobName, &from, &to, &m.Count, &m.Reason, &m.Schedule, &recorded); err != nil {
		return nil, err
	}
	m.From, m.To, m.RecordedAt = fromMS(from), fromMS(to), fromMS(recorded)
	return &m, nil
}

// appendMissed records one MissedAppend inside t. If the newest row of the
// same job and reason (and schedule) ends exactly at MergeAfter, it is
// extended to m.To and its count grows; otherwise a row is inserted. It
// returns false if the job does not exist (any more), in which case
// nothing was written.
func (s *Store) appendMissed(t *tx, a *store.MissedAppend) (bool, error) {
	if a == nil || a.Missed == nil {
		return true, nil
	}
	m := a.Missed
	count := max(m.Count, 1)
	if !a.MergeAfter.IsZero() {
		n, err := t.affected(`UPDATE missed SET to_at = ?, count = count + ?
WHERE id = (SELECT id FROM missed WHERE job_id = ? AND reason = ? ORDER BY to_at DESC, id DESC LIMIT 1)
  AND to_at = ? AND schedule = ?`,
			ms(m.To), count, m.JobID, m.Reason, ms(a.MergeAfter), m.Schedule)
		if err != nil {
			return false, fmt.Errorf("merge missed of job %d: %w", m.JobID, err)
		}
		if n > 0 {
			return true, nil
		}
	}
	if err := s.insertMissed(t, m); err != nil {
		if isForeignKey(err) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}

func (s *Store) insertMissed(t *tx, m *store.Missed) error {
	from, to := m.From, m.To
	if to.IsZero() {
		to = from
	}
	if from.IsZero() {
		from = to
	}
	if from.IsZero() {
		return fmt.Errorf("missed of job %d: no time range", m.JobID)
	}
	_, err := t.exec(`INSERT INTO missed (job_id, job_name, from_at, to_at, count, reason, schedule, recorded_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.JobID, m.JobName, ms(from), ms(to), max(m.Count, 1), m.Reason, m.Schedule, ms(orNow(m.RecordedAt, s.nowMS())))
	if err != nil && !isForeignKey(err) {
		return fmt.Errorf("insert missed of job %d: %w", m.JobID, err)
	}
	return err
}

// MissedList lists missed rows by job name then start, optionally of one
// job and overlapping [Since, Until].
func (s *Store) MissedList(ctx context.Context, p store.MissedListParams) ([]*store.Missed, error) {
	var (
		where []string
		args  []any
	)
	if p.JobName != "" {
		where = append(where, "job_name = ?")
		args = append(args, p.JobName)
	}
	if !p.Since.IsZero() {
		where = append(where, "to_at >= ?")
		args = append(args, p.Since.UnixMilli())
	}
	if !p.Until.IsZero() {
		where = append(where, "from_at <= ?")
		args = append(args, p.Until.UnixMilli())
	}
	q := "SELECT " + missedCols + " FROM missed"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY job_name, from_at, id"
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list missed: %w", err)
	}
	defer rows.Close()
	var out []*store.Missed
	for rows.Next() {
		m, err := scanMissed(rows)
		if err != nil {
			return nil, fmt.Errorf("list missed: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list missed: %w", err)
	}
	return out, nil
}

// MissedTotal sums the counts of all missed rows.
func (s *Store) MissedTotal(ctx context.Context) (int64, error) {
	var n int64
	if err := s.r.QueryRowContext(ctx, "SELECT coalesce(sum(count), 0) FROM missed").Scan(&n); err != nil {
		return 0, fmt.Errorf("count missed: %w", err)
	}
	return n, nil
}

// MissedAppend records missed times in one transaction, merging each into
// the newest row of its job and reason when it continues it (see
// store.MissedAppend). Rows for jobs that no longer exist are dropped.
func (s *Store) MissedAppend(ctx context.Context, ms []*store.MissedAppend) error {
	if len(ms) == 0 {
		return nil
	}
	err := s.write(ctx, func(t *tx) error {
		for _, a := range ms {
			if _, err := s.appendMissed(t, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("append missed: %w", mapErr(err))
	}
	return nil
}

// MissedReplay deletes the missed rows in p.Delete (if unchanged), inserts p.Insert and
// stores p.Triggers as pending replay triggers, in one transaction, and
// returns the triggers it inserted. A replay trigger already stored for the
// same (job, scheduled_at) is kept and not returned. If a row in Delete is
// gone (replayed or deleted concurrently) nothing is written and the error
// is store.ErrConflict.
func (s *Store) MissedReplay(ctx context.Context, p store.ReplayParams) ([]*store.Trigger, error) {
	var out []*store.Trigger
	err := s.write(ctx, func(t *tx) error {
		for _, m := range p.Delete {
			n, err := t.affected("DELETE FROM missed WHERE id = ? AND to_at = ? AND count = ?", m.ID, ms(m.To), m.Count)
			if err != nil {
				return fmt.Errorf("delete missed %d: %w", m.ID, err)
			}
			if n == 0 {
				return fmt.Errorf("missed row %d is gone or changed: %w", m.ID, store.ErrConflict)
			}
		}
		for _, m := range p.Insert {
			if err := s.insertMissed(t, m); err != nil && !isForeignKey(err) {
				return err
			}
		}
		now := s.nowMS()
		for _, tr := range p.Triggers {
			c, err := s.insertPending(t, tr, store.OriginReplay, now)
			if err != nil {
				return err
			}
			if c != nil {
				out = append(out, c)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay missed: %w", mapErr(err))
	}
	return out, nil
}
