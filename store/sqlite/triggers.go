package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jobd/jobd/store"
)

const triggerCols = "id, job_id, scheduled_at, origin, state, created_at, fired_at"

func scanTrigger(sc scanner) (*store.Trigger, error) {
	var (
		tr                    store.Trigger
		sched, created, fired sql.NullInt64
	)
	if err := sc.Scan(&tr.ID, &tr.JobID, &sched, &tr.Origin, &tr.State, &created, &fired); err != nil {
		return nil, err
	}
	tr.ScheduledAt, tr.CreatedAt, tr.FiredAt = fromMS(sched), fromMS(created), fromMS(fired)
	return &tr, nil
}

func (s *Store) queryTriggers(ctx context.Context, query string, args ...any) ([]*store.Trigger, error) {
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*store.Trigger
	for rows.Next() {
		tr, err := scanTrigger(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, tr)
	}
	return out, rows.Err()
}

// insertTriggerSQL inserts a trigger unless its key is taken; a manual
// trigger's nonce sets it apart from the other manual triggers of its job
// and time, so only schedule and replay triggers can conflict.
const insertTriggerSQL = `INSERT INTO triggers (job_id, scheduled_at, origin, state, created_at, fired_at, nonce)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?3 = 'manual' THEN (SELECT coalesce(max(nonce), 0) + 1 FROM triggers
	WHERE job_id = ?1 AND scheduled_at = ?2 AND origin = 'manual') ELSE 0 END)
ON CONFLICT DO NOTHING`

// insertTrigger inserts a copy of tr with the given state and fire time and
// returns it with its ID, or nil if its (job, scheduled_at, origin) key is
// taken or its job does not exist.
func (s *Store) insertTrigger(t *tx, tr *store.Trigger, origin, state string, firedAt, now time.Time) (*store.Trigger, error) {
	c := *tr
	if c.Origin == "" {
		c.Origin = origin
	}
	c.State = state
	c.ScheduledAt = msTime(c.ScheduledAt)
	c.CreatedAt = orNow(c.CreatedAt, now)
	c.FiredAt = msTime(firedAt)
	if c.ScheduledAt.IsZero() {
		return nil, fmt.Errorf("trigger of job %d: no scheduled time", c.JobID)
	}
	id, err := t.insert(insertTriggerSQL, c.JobID, ms(c.ScheduledAt), c.Origin, c.State, ms(c.CreatedAt), ms(c.FiredAt))
	switch {
	case isForeignKey(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("insert trigger of job %d at %s: %w", c.JobID, c.ScheduledAt.Format(time.RFC3339Nano), err)
	case id == 0:
		return nil, nil
	}
	c.ID = id
	return &c, nil
}

// insertPending inserts tr as a pending trigger (see insertTrigger).
func (s *Store) insertPending(t *tx, tr *store.Trigger, origin string, now time.Time) (*store.Trigger, error) {
	return s.insertTrigger(t, tr, origin, store.TriggerPending, time.Time{}, now)
}

// TriggersMaterialize advances job cursors, stores pending triggers and
// records missed times in one transaction, and returns the triggers it
// inserted. A JobAdvance applies only if the job's cursor still equals its
// Expect (zero: NULL); if it does not, the triggers and missed rows given
// for that job in this call are dropped. Jobs without an Advance get theirs
// unconditionally. A trigger whose (job, scheduled_at) is already stored
// is kept as it is and not returned.
func (s *Store) TriggersMaterialize(ctx context.Context, p store.MaterializeParams) ([]*store.Trigger, error) {
	var out []*store.Trigger
	err := s.write(ctx, func(t *tx) error {
		// A job is rejected if any of its advances did not match.
		rejected := map[int64]bool{}
		for _, a := range p.Advances {
			// The job row is written anyway: last_fire_at catches up with
			// the fires since and fire_scan_at with the triggers settled
			// since (see lastFireScanFrom), so the next scan covers only
			// what settles from now on. SQLite evaluates both right-hand
			// sides on the row as it was.
			n, err := t.affected("UPDATE jobs SET next_fire_at = ?, last_fire_at = "+lastFireSQL+", fire_scan_at = "+fireScanSQL+
				" WHERE id = ? AND next_fire_at IS ?",
				ms(a.Next), a.JobID, ms(a.Expect))
			if err != nil {
				return fmt.Errorf("advance job %d: %w", a.JobID, err)
			}
			if n == 0 {
				rejected[a.JobID] = true
			}
		}
		now := s.nowMS()
		for _, tr := range p.Triggers {
			if rejected[tr.JobID] {
				continue
			}
			c, err := s.insertPending(t, tr, store.OriginSchedule, now)
			if err != nil {
				return err
			}
			if c != nil {
				out = append(out, c)
			}
		}
		for _, m := range p.Missed {
			if m == nil || m.Missed == nil || rejected[m.Missed.JobID] {
				continue
			}
			if _, err := s.appendMissed(t, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("materialize triggers: %w", mapErr(err))
	}
	return out, nil
}

// TriggersPending lists pending triggers, earliest first.
func (s *Store) TriggersPending(ctx context.Context) ([]*store.Trigger, error) {
	// state = 'pending' matches the partial index triggers_pending.
	trs, err := s.queryTriggers(ctx, "SELECT "+triggerCols+
		" FROM triggers WHERE state = 'pending' ORDER BY scheduled_at, id")
	if err != nil {
		return nil, fmt.Errorf("list pending triggers: %w", err)
	}
	return trs, nil
}

// TriggerList lists the triggers of a job scheduled in [from, to] (zero:
// unbounded), earliest first.
func (s *Store) TriggerList(ctx context.Context, jobID int64, from, to time.Time) ([]*store.Trigger, error) {
	lo, hi := int64(-1<<63), int64(1<<63-1)
	if !from.IsZero() {
		lo = from.UnixMilli()
	}
	if !to.IsZero() {
		hi = to.UnixMilli()
	}
	trs, err := s.queryTriggers(ctx, "SELECT "+triggerCols+
		" FROM triggers WHERE job_id = ? AND scheduled_at BETWEEN ? AND ? ORDER BY scheduled_at, id", jobID, lo, hi)
	if err != nil {
		return nil, fmt.Errorf("list triggers of job %d: %w", jobID, err)
	}
	return trs, nil
}

// TriggersFire settles a batch of triggers in one transaction (see
// store.FireParams). A stored trigger is settled only if it is still
// pending, which is what makes firing exactly-once: a second fire of the
// same trigger returns Applied false and inserts nothing. A manual trigger
// (TriggerID 0) whose key is taken, or whose job is gone, is not applied
// either. Applied fired items get their runs inserted (TriggerID, JobID,
// ScheduledAt, Origin, Replay, State and CreatedAt filled when unset) and
// move their job's last_fire_at forward to the trigger's scheduled time;
// applied missed items record their Missed.
//
// The job's row is not written for every fire (that would be a write in a
// page of its own per trigger): last_fire_at is stored when it is more
// than lastFireSlack behind and when the materialiser advances the job's
// cursor, and reads add the fires since (lastFireSQL).
func (s *Store) TriggersFire(ctx context.Context, batch []*store.FireParams) ([]store.FireResult, error) {
	var out []store.FireResult
	err := s.writeUrgent(ctx, func(t *tx) error {
		out = make([]store.FireResult, 0, len(batch))
		lastFire := map[int64]time.Time{}
		now := s.nowMS()
		settled, err := settleStored(t, batch, now)
		if err != nil {
			return err
		}
		var runs []*store.Run
		for i, p := range batch {
			res, err := s.fireOne(t, p, now, lastFire, settled)
			if err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
			out = append(out, res)
			runs = append(runs, res.Runs...)
		}
		// The runs of every item at once, in item order.
		if err := s.insertRuns(t, runs, now); err != nil {
			return err
		}
		for jobID, at := range lastFire {
			// Written when it lags by more than lastFireSlack, and when
			// the fire is newer than the stored one but before
			// fire_scan_at, where reads do not look (see lastFireScanFrom).
			if _, err := t.exec(`UPDATE jobs SET last_fire_at = ?1 WHERE id = ?2
	AND (last_fire_at IS NULL OR last_fire_at < ?3 OR (last_fire_at < ?1 AND fire_scan_at > ?1))`,
				ms(at), jobID, at.Add(-lastFireSlack).UnixMilli()); err != nil {
				return fmt.Errorf("set last fire of job %d: %w", jobID, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("fire triggers: %w", mapErr(err))
	}
	return out, nil
}

// settleBulkMax bounds the ids one settling statement names.
const settleBulkMax = 1000

// settleStored settles the stored pending triggers a batch names, with one
// statement per state and fire time (and settleBulkMax triggers) instead
// of one per trigger, and returns those it settled by id; fireOne takes
// them from there. A batch that names a trigger twice, or holds an invalid
// item, is left to fireOne whole: it settles in item order, and fails on
// the invalid item; so is a batch of one stored trigger.
func settleStored(t *tx, batch []*store.FireParams, now time.Time) (map[int64]*store.Trigger, error) {
	type group struct {
		state  string
		fireAt time.Time
		ids    []int64
	}
	var groups []*group
	seen := make(map[int64]bool, len(batch))
	for _, p := range batch {
		if p == nil || (p.State != store.TriggerFired && p.State != store.TriggerMissed) || seen[p.TriggerID] {
			return nil, nil
		}
		if p.TriggerID == 0 {
			continue
		}
		seen[p.TriggerID] = true
		fireAt := orNow(p.FireAt, now)
		var g *group
		for _, c := range groups {
			if c.state == p.State && c.fireAt.Equal(fireAt) && len(c.ids) < settleBulkMax {
				g = c
			}
		}
		if g == nil {
			g = &group{state: p.State, fireAt: fireAt}
			groups = append(groups, g)
		}
		g.ids = append(g.ids, p.TriggerID)
	}
	if len(seen) < 2 {
		return nil, nil // one trigger: fireOne settles it alone
	}
	out := make(map[int64]*store.Trigger, len(seen))
	for _, g := range groups {
		rows, err := t.query(`UPDATE triggers SET state = ?, fired_at = ? WHERE id IN (SELECT value FROM json_each(?)) AND state = 'pending'
RETURNING `+triggerCols, g.state, ms(g.fireAt), idsJSON(g.ids))
		if err != nil {
			return nil, fmt.Errorf("settle triggers: %w", err)
		}
		for rows.Next() {
			tr, err := scanTrigger(rows)
			if err != nil {
				rows.Close()
				return nil, fmt.Errorf("settle triggers: %w", err)
			}
			out[tr.ID] = tr
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return nil, fmt.Errorf("settle triggers: %w", err)
		}
	}
	return out, nil
}

// idsJSON is a JSON array of ids, for json_each.
func idsJSON(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

// fireOne settles one item of a fire batch: settled holds the stored
// triggers settleStored settled for it (nil: none, fireOne settles each).
func (s *Store) fireOne(t *tx, p *store.FireParams, now time.Time, lastFire map[int64]time.Time, settled map[int64]*store.Trigger) (store.FireResult, error) {
	if p == nil {
		return store.FireResult{}, errors.New("nil FireParams")
	}
	if p.State != store.TriggerFired && p.State != store.TriggerMissed {
		return store.FireResult{}, fmt.Errorf("trigger state %q: want %q or %q", p.State, store.TriggerFired, store.TriggerMissed)
	}
	fireAt := orNow(p.FireAt, now)
	var tr *store.Trigger
	if p.TriggerID != 0 && settled != nil {
		if tr = settled[p.TriggerID]; tr == nil {
			return store.FireResult{TriggerID: p.TriggerID}, nil
		}
	} else if p.TriggerID != 0 {
		row, err := t.queryRow("UPDATE triggers SET state = ?, fired_at = ? WHERE id = ? AND state = 'pending' RETURNING "+triggerCols,
			p.State, ms(fireAt), p.TriggerID)
		if err != nil {
			return store.FireResult{}, err
		}
		tr, err = scanTrigger(row)
		if errors.Is(err, sql.ErrNoRows) {
			return store.FireResult{TriggerID: p.TriggerID}, nil
		}
		if err != nil {
			return store.FireResult{}, fmt.Errorf("settle trigger %d: %w", p.TriggerID, err)
		}
	} else {
		if p.Trigger == nil {
			return store.FireResult{}, errors.New("neither TriggerID nor Trigger given")
		}
		var err error
		tr, err = s.insertTrigger(t, p.Trigger, store.OriginManual, p.State, fireAt, now)
		if err != nil {
			return store.FireResult{}, err
		}
		if tr == nil {
			return store.FireResult{}, nil
		}
	}

	res := store.FireResult{Applied: true, TriggerID: tr.ID}
	if p.State == store.TriggerMissed {
		if p.Missed != nil && p.Missed.Missed != nil {
			a := *p.Missed
			m := *a.Missed
			if m.JobID == 0 {
				m.JobID = tr.JobID
			}
			a.Missed = &m
			if _, err := s.appendMissed(t, &a); err != nil {
				return store.FireResult{}, err
			}
		}
		return res, nil
	}

	for _, r := range p.Runs {
		c := cloneRun(r)
		c.TriggerID = tr.ID
		if c.JobID == 0 {
			c.JobID = tr.JobID
		}
		if c.ScheduledAt.IsZero() {
			c.ScheduledAt = tr.ScheduledAt
		}
		if c.Origin == "" {
			c.Origin = tr.Origin
		}
		if tr.Origin == store.OriginReplay {
			c.Replay = true
		}
		res.Runs = append(res.Runs, c)
	}
	if prev, ok := lastFire[tr.JobID]; !ok || tr.ScheduledAt.After(prev) {
		lastFire[tr.JobID] = tr.ScheduledAt
	}
	return res, nil
}
