package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jobd/jobd/store"
)

// jobCols are the columns of a job, its last fire time as lastFireSQL
// computes it.
const jobCols = "id, name, grp, spec, paused, next_fire_at, " + lastFireSQL + ", created_at, updated_at"

// jobColsStored are the columns of a job with last_fire_at as stored,
// which may lag (JobsDue, whose callers do not use it).
const jobColsStored = "id, name, grp, spec, paused, next_fire_at, last_fire_at, created_at, updated_at"

// lastFireSQL is a job's last fire time: jobs.last_fire_at is written
// only now and then (see TriggersFire), so the scheduled time of a fired
// trigger stored since counts too. The triggers scanned are those of the
// job from lastFireScanFrom on, on triggers_key.
const lastFireSQL = `nullif(max(coalesce(jobs.last_fire_at, 0), coalesce((SELECT max(t.scheduled_at) FROM triggers t
	WHERE t.job_id = jobs.id AND t.scheduled_at >= ` + lastFireScanFrom + ` AND t.state = 'fired'), 0)), 0)`

// lastFireScanFrom is where the scan for a job's last fire starts: its
// stored last fire, or jobs.fire_scan_at when later. Every trigger of the
// job scheduled before fire_scan_at was settled when the materialiser last
// advanced the job (and, if fired, counted in last_fire_at), or settles
// later and then writes last_fire_at itself (TriggersFire). Missed triggers
// never move last_fire_at; fire_scan_at moving past them keeps a job whose
// triggers all miss from scanning every one of them on each read and cursor
// update (the scan covers what settled since the last cursor update).
const lastFireScanFrom = `max(coalesce(jobs.last_fire_at, 0), coalesce(jobs.fire_scan_at, 0))`

// fireScanSQL is the new fire_scan_at of a job when its cursor advances:
// the scheduled time of its newest settled trigger from lastFireScanFrom
// on, or the stored one if none.
const fireScanSQL = `coalesce((SELECT max(t.scheduled_at) FROM triggers t
	WHERE t.job_id = jobs.id AND t.scheduled_at >= ` + lastFireScanFrom + ` AND t.state != 'pending'), jobs.fire_scan_at)`

// lastFireSlack is how far behind its newest fire a job's stored
// last_fire_at may be before a fire writes it.
const lastFireSlack = time.Hour

type scanner interface{ Scan(dest ...any) error }

func scanJob(sc scanner) (*store.Job, error) {
	var (
		j                    store.Job
		paused               int
		next, last, cre, upd sql.NullInt64
	)
	if err := sc.Scan(&j.ID, &j.Name, &j.Group, &j.Spec, &paused, &next, &last, &cre, &upd); err != nil {
		return nil, err
	}
	j.Paused = paused != 0
	j.NextFireAt, j.LastFireAt = fromMS(next), fromMS(last)
	j.CreatedAt, j.UpdatedAt = fromMS(cre), fromMS(upd)
	return &j, nil
}

func queryJobs(ctx context.Context, db *sql.DB, query string, args ...any) ([]*store.Job, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var js []*store.Job
	for rows.Next() {
		j, err := scanJob(rows)
		if err != nil {
			return nil, err
		}
		js = append(js, j)
	}
	return js, rows.Err()
}

func spec(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// JobCreate stores a new job and returns it with its ID. CreatedAt and
// UpdatedAt are taken from job when set, else now. A taken name is
// store.ErrConflict.
func (s *Store) JobCreate(ctx context.Context, job *store.Job) (*store.Job, error) {
	now := s.nowMS()
	j := *job
	j.CreatedAt = orNow(j.CreatedAt, now)
	j.UpdatedAt = orNow(j.UpdatedAt, j.CreatedAt)
	j.NextFireAt, j.LastFireAt = msTime(j.NextFireAt), msTime(j.LastFireAt)
	j.Spec = spec(j.Spec)
	err := s.write(ctx, func(t *tx) error {
		id, err := t.insert(`INSERT INTO jobs (name, grp, spec, paused, next_fire_at, last_fire_at, created_at, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			j.Name, j.Group, j.Spec, boolInt(j.Paused), ms(j.NextFireAt), ms(j.LastFireAt), ms(j.CreatedAt), ms(j.UpdatedAt))
		j.ID = id
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("create job %q: %w", job.Name, mapErr(err))
	}
	return &j, nil
}

// JobGet returns the job named name, or store.ErrNotFound.
func (s *Store) JobGet(ctx context.Context, name string) (*store.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, "SELECT "+jobCols+" FROM jobs WHERE name = ?", name))
	if err != nil {
		return nil, fmt.Errorf("get job %q: %w", name, mapErr(err))
	}
	return j, nil
}

// JobGetByID returns the job with id, or store.ErrNotFound.
func (s *Store) JobGetByID(ctx context.Context, id int64) (*store.Job, error) {
	j, err := scanJob(s.r.QueryRowContext(ctx, "SELECT "+jobCols+" FROM jobs WHERE id = ?", id))
	if err != nil {
		return nil, fmt.Errorf("get job %d: %w", id, mapErr(err))
	}
	return j, nil
}

// JobList lists jobs ordered by name.
func (s *Store) JobList(ctx context.Context, p store.JobListParams) ([]*store.Job, error) {
	var (
		where []string
		args  []any
	)
	if p.Group != "" {
		where = append(where, "grp = ?")
		args = append(args, p.Group)
	}
	if p.After != "" {
		where = append(where, "name > ?")
		args = append(args, p.After)
	}
	q := "SELECT " + jobCols + " FROM jobs"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY name LIMIT ?"
	args = append(args, limit(p.Limit))
	js, err := queryJobs(ctx, s.r, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	return js, nil
}

// JobCount counts all jobs and the paused ones, from the counts SQL
// triggers keep (migration 0009), not by counting the jobs.
func (s *Store) JobCount(ctx context.Context) (total, paused int64, err error) {
	err = s.r.QueryRowContext(ctx, "SELECT total, paused FROM job_counts WHERE id = 1").Scan(&total, &paused)
	if err != nil {
		return 0, 0, fmt.Errorf("count jobs: %w", err)
	}
	return total, paused, nil
}

// JobUpdate writes the job's group, spec, paused flag, cursor and last fire
// time (by Job.ID) and returns the stored job. UpdatedAt is taken from the
// job when set, else now. With ClearPending the job's pending schedule
// triggers are deleted in the same transaction.
func (s *Store) JobUpdate(ctx context.Context, p store.JobUpdateParams) (*store.Job, error) {
	if p.Job == nil {
		return nil, errors.New("update job: no job given")
	}
	in := p.Job
	var out *store.Job
	err := s.write(ctx, func(t *tx) error {
		// A last fire set back drops fire_scan_at: the fires between it
		// and the old one count again (see lastFireScanFrom).
		row, err := t.queryRow(`UPDATE jobs SET grp = ?1, spec = ?2, paused = ?3, next_fire_at = ?4, last_fire_at = ?5, updated_at = ?6,
	fire_scan_at = CASE WHEN coalesce(?5, 0) >= coalesce(last_fire_at, 0) THEN fire_scan_at END
WHERE id = ?7 RETURNING `+jobCols,
			in.Group, spec(in.Spec), boolInt(in.Paused), ms(in.NextFireAt), ms(in.LastFireAt),
			ms(orNow(in.UpdatedAt, s.nowMS())), in.ID)
		if err != nil {
			return err
		}
		if out, err = scanJob(row); err != nil {
			return err
		}
		if p.ClearPending {
			_, err = t.exec("DELETE FROM triggers WHERE job_id = ? AND state = 'pending' AND origin = 'schedule'", in.ID)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("update job %d: %w", in.ID, mapErr(err))
	}
	return out, nil
}

// JobDelete removes a job with its triggers and missed rows; its runs stay
// in history. A missing job is store.ErrNotFound.
func (s *Store) JobDelete(ctx context.Context, id int64) error {
	err := s.write(ctx, func(t *tx) error {
		// Triggers and missed rows go by ON DELETE CASCADE.
		n, err := t.affected("DELETE FROM jobs WHERE id = ?", id)
		if err == nil && n == 0 {
			err = store.ErrNotFound
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("delete job %d: %w", id, mapErr(err))
	}
	return nil
}

// JobsDue lists unpaused jobs whose cursor is at or before before, earliest
// first, at most limit of them (≤ 0: all). Their LastFireAt is the stored
// one, which may lag the newest fire.
func (s *Store) JobsDue(ctx context.Context, before time.Time, n int) ([]*store.Job, error) {
	// The WHERE terms match the partial index jobs_due.
	js, err := queryJobs(ctx, s.r, "SELECT "+jobColsStored+` FROM jobs
WHERE paused = 0 AND next_fire_at IS NOT NULL AND next_fire_at <= ?
ORDER BY next_fire_at, id LIMIT ?`, before.UnixMilli(), limit(n))
	if err != nil {
		return nil, fmt.Errorf("list due jobs: %w", err)
	}
	return js, nil
}
