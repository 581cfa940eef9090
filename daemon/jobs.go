package daemon

import (
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/schedule"
	"github.com/jobd/jobd/store"
)

// ErrNoExecutor answers a manual trigger when no online executor of the
// job's group can take it.
var ErrNoExecutor = errors.New("no online executor in the job's group")

// disarmLocked removes the job's armed schedule triggers from memory and
// returns the earliest of their times (zero if none).
func (s *Scheduler) disarmLocked(jobID int64) time.Time {
	var earliest time.Time
	keep := s.heap[:0]
	for _, e := range s.heap {
		if e.jobID == jobID && e.origin == api.OriginSchedule {
			if earliest.IsZero() || e.at.Before(earliest) {
				earliest = e.at
			}
			if js := s.jobs[jobID]; js != nil {
				js.pending--
			}
			continue
		}
		keep = append(keep, e)
	}
	for i := len(keep); i < len(s.heap); i++ {
		s.heap[i] = nil
	}
	s.heap = keep
	for i, e := range s.heap {
		e.index = i
	}
	heap.Init(&s.heap)
	return earliest
}

// CreateJob validates spec and stores a new job.
func (s *Scheduler) CreateJob(ctx context.Context, spec api.JobSpec) (*compiledJob, error) {
	norm, sched, err := normalizeSpec(spec)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return nil, fmt.Errorf("encode job spec: %w", err)
	}
	now := s.clock.Now()
	s.opMu.Lock()
	row, err := s.store.JobCreate(ctx, &store.Job{
		Name: norm.Name, Group: norm.Group, Spec: b, Paused: norm.Paused,
		NextFireAt: firstFire(sched, &norm, now), CreatedAt: now, UpdatedAt: now,
	})
	s.opMu.Unlock()
	if errors.Is(err, store.ErrConflict) {
		return nil, &FieldError{Field: "name", Err: fmt.Errorf("job %q already exists: %w", norm.Name, store.ErrConflict)}
	}
	if err != nil {
		return nil, fmt.Errorf("create job %s: %w", norm.Name, err)
	}
	s.signal(s.matWake)
	if err := s.saveScript(ctx, row.ID, &norm); err != nil {
		return nil, err
	}
	return &compiledJob{row: row, spec: norm, sched: sched}, nil
}

// saveScript keeps a script job's source in its version history.
func (s *Scheduler) saveScript(ctx context.Context, jobID int64, spec *api.JobSpec) error {
	if spec.Script == "" {
		return nil
	}
	if _, err := s.store.ScriptSave(ctx, jobID, spec.Script, s.clock.Now()); err != nil {
		return fmt.Errorf("keep script version: %w", err)
	}
	return nil
}

// scheduleChanged reports whether two specs fire at different times.
func scheduleChanged(a, b *api.JobSpec) bool {
	return snapshotOf(a) != snapshotOf(b)
}

// UpdateJob replaces the spec of the job called name. A changed schedule
// starts again from now; anything else keeps the cursor and the triggers
// already stored. A change of the paused flag pauses or resumes.
func (s *Scheduler) UpdateJob(ctx context.Context, name string, spec api.JobSpec) (*compiledJob, bool, error) {
	if spec.Name == "" {
		spec.Name = name
	}
	if spec.Name != name {
		return nil, false, fieldErr("name", "%q: a job cannot be renamed (it is %q)", spec.Name, name)
	}
	norm, sched, err := normalizeSpec(spec)
	if err != nil {
		return nil, false, err
	}
	s.opMu.Lock()
	defer s.opMu.Unlock()
	row, err := s.store.JobGet(ctx, name)
	if err != nil {
		return nil, false, fmt.Errorf("get job %s: %w", name, err)
	}
	old, err := compileJob(row)
	if err != nil {
		return nil, false, err
	}
	old.spec.Paused = row.Paused
	if specEqual(old.spec, norm) {
		return old, false, nil
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return nil, false, fmt.Errorf("encode job spec: %w", err)
	}
	now := s.clock.Now()
	upd := *row
	upd.Group, upd.Spec, upd.UpdatedAt = norm.Group, b, now
	clear := false
	if scheduleChanged(&old.spec, &norm) {
		s.mu.Lock()
		s.disarmLocked(row.ID)
		s.mu.Unlock()
		clear = true
		upd.NextFireAt = firstFire(sched, &norm, now)
	}
	j := &compiledJob{row: &upd, spec: norm, sched: sched}
	switch {
	case norm.Paused && !row.Paused:
		clear = true
		upd.Paused = true
		upd.NextFireAt = s.pauseCursorLocked(j)
	case !norm.Paused && row.Paused:
		upd.Paused = false
		if err := s.resumeLocked(ctx, j, now); err != nil {
			return nil, false, err
		}
	}
	saved, err := s.store.JobUpdate(ctx, store.JobUpdateParams{Job: &upd, ClearPending: clear})
	if err != nil {
		return nil, false, fmt.Errorf("update job %s: %w", name, err)
	}
	j.row = saved
	if err := s.saveScript(ctx, saved.ID, &norm); err != nil {
		return nil, false, err
	}
	s.mu.Lock()
	if js := s.jobs[saved.ID]; js != nil {
		js.job = j
	}
	s.mu.Unlock()
	s.signal(s.matWake)
	return j, true, nil
}

// pauseCursorLocked disarms the job and returns where its cursor must stand
// so that resuming sees every time that did not fire.
func (s *Scheduler) pauseCursorLocked(j *compiledJob) time.Time {
	s.mu.Lock()
	earliest := s.disarmLocked(j.row.ID)
	if js := s.jobs[j.row.ID]; js != nil {
		js.job = j
	}
	s.mu.Unlock()
	cur := j.row.NextFireAt
	if !earliest.IsZero() && (cur.IsZero() || earliest.Before(cur)) {
		cur = earliest
	}
	return cur
}

// resumeLocked records the times a job with record_missed did not fire
// while paused and moves its cursor to now.
func (s *Scheduler) resumeLocked(ctx context.Context, j *compiledJob, now time.Time) error {
	cur := j.row.NextFireAt
	if j.spec.RecordMissed && !cur.IsZero() && cur.Before(now) && j.spec.Delay == nil {
		_, n := schedule.Times(j.sched, cur, now.Add(-time.Millisecond), 0)
		last := cur
		if n > 0 {
			last, _ = schedule.Prev(j.sched, now)
		}
		if err := s.store.MissedAppend(ctx, []*store.MissedAppend{missedAppend(j, cur, last, n+1, api.MissedPaused)}); err != nil {
			return fmt.Errorf("record missed while paused: %w", err)
		}
	}
	j.row.NextFireAt = firstFire(j.sched, &j.spec, now)
	return nil
}

// SetPaused pauses or resumes a job. Pausing takes effect at once: no armed
// trigger of the job fires after it returns.
func (s *Scheduler) SetPaused(ctx context.Context, name string, paused bool) (*compiledJob, error) {
	s.opMu.Lock()
	row, err := s.store.JobGet(ctx, name)
	s.opMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("get job %s: %w", name, err)
	}
	j, err := compileJob(row)
	if err != nil {
		return nil, err
	}
	spec := j.spec
	spec.Paused = paused
	out, _, err := s.UpdateJob(ctx, name, spec)
	return out, err
}

// DeleteJob removes a job; its runs stay in history.
func (s *Scheduler) DeleteJob(ctx context.Context, name string) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	row, err := s.store.JobGet(ctx, name)
	if err != nil {
		return fmt.Errorf("get job %s: %w", name, err)
	}
	s.mu.Lock()
	s.disarmLocked(row.ID)
	if js := s.jobs[row.ID]; js != nil {
		js.job.row.Paused = true // whatever is still in flight for it stops here
	}
	s.mu.Unlock()
	if err := s.store.JobDelete(ctx, row.ID); err != nil {
		return fmt.Errorf("delete job %s: %w", name, err)
	}
	return nil
}

// TriggerNow fires job name at once (a manual trigger); params are added
// to the job's own for this run.
func (s *Scheduler) TriggerNow(ctx context.Context, name string, params map[string]string) (store.FireResult, *compiledJob, error) {
	if err := validateParams(params); err != nil {
		return store.FireResult{}, nil, err
	}
	row, err := s.store.JobGet(ctx, name)
	if err != nil {
		return store.FireResult{}, nil, fmt.Errorf("get job %s: %w", name, err)
	}
	j, err := compileJob(row)
	if err != nil {
		return store.FireResult{}, nil, err
	}
	now := s.clock.Now().Truncate(time.Millisecond)
	s.mu.Lock()
	js := s.stateLocked(j)
	it := &fireItem{e: &entry{jobID: j.row.ID, at: now, origin: api.OriginManual, forced: true}, js: js}
	s.decideLocked(it, now)
	s.mu.Unlock()
	if it.params.State == store.TriggerMissed {
		s.mu.Lock()
		s.dropIfIdleLocked(j.row.ID)
		s.mu.Unlock()
		return store.FireResult{}, nil, fmt.Errorf("trigger %s: %w %q", name, ErrNoExecutor, j.spec.Group)
	}
	for _, r := range it.params.Runs {
		r.Params = params
	}
	it.params.Trigger = &store.Trigger{JobID: j.row.ID, ScheduledAt: now, Origin: api.OriginManual,
		State: store.TriggerFired, CreatedAt: now, FiredAt: now}
	res, err := s.store.TriggersFire(ctx, []*store.FireParams{it.params})
	if err != nil {
		s.disp.Cancel(it.places)
		return store.FireResult{}, nil, fmt.Errorf("trigger %s: %w", name, err)
	}
	s.afterFire(ctx, it, res[0])
	return res[0], j, nil
}

// specEqual reports whether two normalized specs declare the same job.
func specEqual(a, b api.JobSpec) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// conflictError is a request that the current state refuses (409), with a
// message for the user.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// Unwrap makes it a store.ErrConflict.
func (e *conflictError) Unwrap() error { return store.ErrConflict }

// KillRun stops a run: one no executor has yet ends killed at once; one an
// executor runs is killed there (its whole process group) and ends when the
// executor reports it.
func (s *Scheduler) KillRun(ctx context.Context, id int64) (*store.Run, error) {
	r, err := s.store.RunGet(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("run %d: %w", id, err)
	}
	if api.RunEnded(r.State) {
		return nil, &conflictError{msg: fmt.Sprintf("run %d already ended (%s)", id, r.State)}
	}
	s.mu.Lock()
	held := false
	if js := s.jobs[r.JobID]; js != nil {
		for i, q := range js.queue {
			if q.ID == id {
				js.queue = append(js.queue[:i:i], js.queue[i+1:]...)
				held = true
				break
			}
		}
	}
	s.mu.Unlock()
	if held || s.disp.Kill(r) {
		if ended := s.endKilled(ctx, r, "killed on request"); ended != nil {
			return ended, nil
		}
	}
	return s.store.RunGet(ctx, id)
}

// endKilled ends a run nobody executes as killed and returns it, or nil if
// it had ended meanwhile.
func (s *Scheduler) endKilled(ctx context.Context, r *store.Run, why string) *store.Run {
	now := s.clock.Now()
	ok, err := s.store.RunsTransition(ctx, []store.RunTransition{{RunID: r.ID,
		From: []string{api.RunPending, api.RunAssigned, api.RunRunning}, To: api.RunKilled,
		Set: store.RunFields{FinishedAt: now, Error: why}}})
	if err != nil || !ok[0] {
		if err != nil {
			s.log.Error("end killed run", LogKeyRun, r.ID, "err", err)
		}
		return nil
	}
	r.State, r.FinishedAt, r.Error = api.RunKilled, now, why
	s.disp.Ended(ctx, r)
	s.RunsEnded(ctx, []*store.Run{r})
	return r
}
