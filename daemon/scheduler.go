package daemon

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// Clock tells the time; tests inject their own.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Log attribute keys.
const (
	LogKeyJob      = "job"
	LogKeyRun      = "run"
	LogKeyTrigger  = "trigger"
	LogKeyExecutor = "executor"
	LogKeyGroup    = "group"
)

// entry is a stored pending trigger armed in memory.
type entry struct {
	id     int64
	jobID  int64
	at     time.Time
	origin string
	// forced triggers fire however late they are: the misfire policy (or a
	// replay) already chose them.
	forced bool
	index  int
}

type entryHeap []*entry

func (h entryHeap) Len() int { return len(h) }
func (h entryHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].id < h[j].id
	}
	return h[i].at.Before(h[j].at)
}
func (h entryHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].index = i; h[j].index = j }
func (h *entryHeap) Push(x any)   { e := x.(*entry); e.index = len(*h); *h = append(*h, e) }
func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}

// jobState is what the scheduler keeps in memory about a job while it has
// armed triggers or active runs; jobs with neither cost no memory.
type jobState struct {
	job     *compiledJob
	pending int
	active  map[int64]*store.Run
	// queue holds stored pending runs of an overlap=queue job waiting for
	// the active one to end.
	queue []*store.Run
}

func (js *jobState) idle() bool { return js.pending == 0 && len(js.active) == 0 && len(js.queue) == 0 }

// Scheduler stores triggers for a look-ahead window and fires them from an
// in-memory timer. One goroutine fires; fired triggers are settled in the
// store in batches before any run is handed to an executor.
type Scheduler struct {
	store     store.Store
	clock     Clock
	log       *slog.Logger
	disp      *Dispatcher
	lookAhead time.Duration

	// opMu serialises materialisation with job changes.
	opMu sync.Mutex

	mu   sync.Mutex
	heap entryHeap
	jobs map[int64]*jobState
	wake chan struct{}
	// matWake asks the materialiser for a pass now.
	matWake chan struct{}

	// EndedFunc, if set, is called after runs ended (log followers wait
	// for it).
	EndedFunc func()
}

// materializeBatch is how many due jobs one materialisation transaction
// covers: small enough that the fires queued behind it in the store's
// writer wait a millisecond or two, not the whole pass.
const materializeBatch = 32

// fireBatchMax caps the triggers settled in one fire transaction.
const fireBatchMax = 2000

// NewScheduler returns a scheduler; Start arms it.
func NewScheduler(st store.Store, clock Clock, log *slog.Logger, disp *Dispatcher, lookAhead time.Duration) *Scheduler {
	return &Scheduler{
		store: st, clock: clock, log: log, disp: disp, lookAhead: lookAhead,
		jobs: map[int64]*jobState{}, wake: make(chan struct{}, 1), matWake: make(chan struct{}, 1),
	}
}

func (s *Scheduler) signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// stateLocked returns the job's state, creating it.
func (s *Scheduler) stateLocked(j *compiledJob) *jobState {
	js := s.jobs[j.row.ID]
	if js == nil {
		js = &jobState{job: j, active: map[int64]*store.Run{}}
		s.jobs[j.row.ID] = js
	} else if !j.row.UpdatedAt.Before(js.job.row.UpdatedAt) {
		js.job = j
	}
	return js
}

func (s *Scheduler) dropIfIdleLocked(id int64) {
	if js := s.jobs[id]; js != nil && js.idle() {
		delete(s.jobs, id)
	}
}

// compiled compiles a stored job, reusing the spec and schedule of the
// copy in memory when the row has not changed since (the materialiser sees
// every frequently firing job each pass: no JSON decode for those).
func (s *Scheduler) compiled(row *store.Job) (*compiledJob, error) {
	s.mu.Lock()
	js := s.jobs[row.ID]
	s.mu.Unlock()
	if js != nil && js.job.sched != nil && js.job.row.UpdatedAt.Equal(row.UpdatedAt) && js.job.row.Paused == row.Paused {
		return &compiledJob{row: row, spec: js.job.spec, sched: js.job.sched}, nil
	}
	return compileJob(row)
}

// jobByID returns the compiled job, from memory when it is there.
func (s *Scheduler) jobByID(ctx context.Context, id int64) (*compiledJob, error) {
	s.mu.Lock()
	js := s.jobs[id]
	s.mu.Unlock()
	if js != nil {
		return js.job, nil
	}
	row, err := s.store.JobGetByID(ctx, id)
	if err != nil {
		return nil, err
	}
	return compileJob(row)
}

// Recover loads what a previous process left: pending triggers (late ones
// settled per misfire policy together with the never-stored late range) and
// active runs. Call it once before Run.
func (s *Scheduler) Recover(ctx context.Context) error {
	now := s.clock.Now()
	pending, err := s.store.TriggersPending(ctx)
	if err != nil {
		return fmt.Errorf("load pending triggers: %w", err)
	}
	late := map[int64][]*store.Trigger{}
	for _, t := range pending {
		j, err := s.jobByID(ctx, t.JobID)
		if err != nil {
			s.log.Warn("pending trigger of a job that is gone", LogKeyTrigger, t.ID, "err", err)
			continue
		}
		s.mu.Lock()
		js := s.stateLocked(j)
		if t.Origin == api.OriginSchedule && now.Sub(t.ScheduledAt) > j.threshold() {
			late[t.JobID] = append(late[t.JobID], t)
		} else {
			s.armLocked(js, t, t.Origin != api.OriginSchedule)
		}
		s.mu.Unlock()
	}
	runs, err := s.store.RunsActive(ctx)
	if err != nil {
		return fmt.Errorf("load active runs: %w", err)
	}
	for _, r := range runs {
		j, err := s.jobByID(ctx, r.JobID)
		if err != nil {
			continue
		}
		s.mu.Lock()
		js := s.stateLocked(j)
		js.active[r.ID] = r
		s.mu.Unlock()
	}
	if err := s.materialize(ctx, now, late); err != nil {
		return err
	}
	s.log.Info("scheduler recovered", "pending", len(pending), "late_jobs", len(late), "active_runs", len(runs))
	return nil
}

func (s *Scheduler) armLocked(js *jobState, t *store.Trigger, forced bool) {
	heap.Push(&s.heap, &entry{id: t.ID, jobID: t.JobID, at: t.ScheduledAt, origin: t.Origin, forced: forced})
	js.pending++
}

// Run materialises and fires triggers until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.materializeLoop(ctx)
	}()
	s.fireLoop(ctx)
	wg.Wait()
	return nil
}

func (s *Scheduler) materializeLoop(ctx context.Context) {
	every := s.lookAhead / 5
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.matWake:
		}
		if err := s.materialize(ctx, s.clock.Now(), nil); err != nil && ctx.Err() == nil {
			s.log.Error("materialise triggers", "err", err)
		}
	}
}

// materialize stores the triggers due before now+lookAhead for every job
// whose cursor is due, in batches, and arms them. late holds stored pending
// triggers found late at recovery, by job.
func (s *Scheduler) materialize(ctx context.Context, now time.Time, late map[int64][]*store.Trigger) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	horizon := now.Add(s.lookAhead)
	// A job is planned once its cursor comes within half the look-ahead,
	// then up to the horizon: a frequent job has its cursor moved (a write)
	// once per half window rather than once per pass, and every trigger is
	// still stored at least half a window minus a pass before its time.
	due := now.Add(s.lookAhead / 2)
	// Jobs with late stored triggers but no due cursor still need a plan.
	extra := map[int64]bool{}
	for id := range late {
		extra[id] = true
	}
	for {
		rows, err := s.store.JobsDue(ctx, due, materializeBatch)
		if err != nil {
			return fmt.Errorf("list due jobs: %w", err)
		}
		var jobs []*compiledJob
		for _, row := range rows {
			delete(extra, row.ID)
			j, err := s.compiled(row)
			if err != nil {
				s.log.Error("job cannot be scheduled", LogKeyJob, row.Name, "err", err)
				j = &compiledJob{row: row}
			}
			jobs = append(jobs, j)
		}
		if len(rows) < materializeBatch {
			for id := range extra {
				j, err := s.jobByID(ctx, id)
				if err != nil {
					continue
				}
				if j.row.Paused {
					// Settled on resume.
					continue
				}
				// Plan only its late triggers: its cursor is not due.
				jobs = append(jobs, j)
			}
			extra = nil
		}
		if err := s.storePlans(ctx, now, horizon, jobs, late); err != nil {
			return err
		}
		if len(rows) < materializeBatch {
			return nil
		}
	}
}

func (s *Scheduler) storePlans(ctx context.Context, now, horizon time.Time, jobs []*compiledJob, late map[int64][]*store.Trigger) error {
	var mp store.MaterializeParams
	var settle []*store.FireParams
	forced := map[int64]map[int64]bool{}
	byID := map[int64]*compiledJob{}
	var fireLate []*store.Trigger
	for _, j := range jobs {
		byID[j.row.ID] = j
		if j.sched == nil {
			mp.Advances = append(mp.Advances, store.JobAdvance{JobID: j.row.ID, Expect: j.row.NextFireAt})
			continue
		}
		h := horizon
		if j.row.NextFireAt.IsZero() || j.row.NextFireAt.After(horizon) {
			// Only late stored triggers to settle.
			h = now.Add(-j.threshold())
		}
		p := planJob(j, now, h, late[j.row.ID])
		if !j.row.NextFireAt.IsZero() && !j.row.NextFireAt.After(h) {
			mp.Advances = append(mp.Advances, store.JobAdvance{JobID: j.row.ID, Expect: j.row.NextFireAt, Next: p.next})
		}
		mp.Triggers = append(mp.Triggers, p.triggers...)
		mp.Missed = append(mp.Missed, p.missed...)
		settle = append(settle, p.settle...)
		fireLate = append(fireLate, p.fireLate...)
		forced[j.row.ID] = p.forced
	}
	if len(settle) > 0 {
		if _, err := s.store.TriggersFire(ctx, settle); err != nil {
			return fmt.Errorf("settle late triggers: %w", err)
		}
	}
	inserted, err := s.store.TriggersMaterialize(ctx, mp)
	if err != nil {
		return fmt.Errorf("store triggers: %w", err)
	}
	if len(inserted) == 0 && len(fireLate) == 0 {
		return nil
	}
	s.mu.Lock()
	for _, t := range fireLate {
		s.armLocked(s.stateLocked(byID[t.JobID]), t, true)
	}
	for _, t := range inserted {
		j := byID[t.JobID]
		if j == nil || j.row.Paused {
			continue
		}
		s.armLocked(s.stateLocked(j), t, forced[t.JobID][t.ScheduledAt.UnixMilli()])
	}
	s.mu.Unlock()
	s.signal(s.wake)
	return nil
}

// fireLoop sleeps until the earliest armed trigger and fires what is due.
func (s *Scheduler) fireLoop(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		wait := time.Hour
		if len(s.heap) > 0 {
			wait = s.heap[0].at.Sub(s.clock.Now())
		}
		s.mu.Unlock()
		if wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-s.wake:
				if !timer.Stop() {
					<-timer.C
				}
				continue
			case <-timer.C:
			}
		}
		if ctx.Err() != nil {
			return
		}
		if err := s.fireDue(ctx, s.clock.Now()); err != nil && ctx.Err() == nil {
			s.log.Error("fire triggers", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// fireItem is one trigger of a fire batch with what was decided for it.
type fireItem struct {
	e      *entry
	js     *jobState
	params *store.FireParams
	places []placement
	// held are runs stored pending for an overlap=queue job.
	held bool
	kill []*store.Run
}

// fireDue settles every armed trigger due at now in one transaction, then
// hands the runs to executors.
func (s *Scheduler) fireDue(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	var items []*fireItem
	for len(s.heap) > 0 && !s.heap[0].at.After(now) && len(items) < fireBatchMax {
		e := heap.Pop(&s.heap).(*entry)
		js := s.jobs[e.jobID]
		if js == nil {
			continue
		}
		js.pending--
		if js.job.row.Paused {
			// Pausing removed its stored trigger; nothing fires.
			s.dropIfIdleLocked(e.jobID)
			continue
		}
		items = append(items, &fireItem{e: e, js: js})
	}
	for _, it := range items {
		s.decideLocked(it, now)
	}
	s.mu.Unlock()
	if len(items) == 0 {
		return nil
	}
	batch := make([]*store.FireParams, len(items))
	for i, it := range items {
		batch[i] = it.params
	}
	res, err := s.store.TriggersFire(ctx, batch)
	if err != nil {
		s.mu.Lock()
		for _, it := range items {
			s.disp.Cancel(it.places)
			heap.Push(&s.heap, it.e)
			it.js.pending++
		}
		s.mu.Unlock()
		return fmt.Errorf("settle %d triggers: %w", len(items), err)
	}
	missed := map[string]int{}
	for i, it := range items {
		s.afterFire(ctx, it, res[i])
		if res[i].Applied && it.params.State == store.TriggerMissed {
			missed[it.params.Missed.Missed.Reason]++
		}
	}
	for reason, n := range missed {
		// One line per batch and reason: a burst of misses must not turn
		// into a burst of log lines.
		s.log.Warn("triggers missed", "count", n, "reason", reason, "first_job", firstMissedJob(items, reason))
	}
	return nil
}

// decideLocked fills it.params: missed, or fired with its runs per the
// overlap policy and the routing plan.
func (s *Scheduler) decideLocked(it *fireItem, now time.Time) {
	j := it.js.job
	at := it.e.at
	missed := func(reason string) {
		it.params = &store.FireParams{TriggerID: it.e.id, State: store.TriggerMissed, FireAt: now,
			Missed: missedAppend(j, at, at, 1, reason)}
	}
	if !it.e.forced && j.spec.Misfire == api.MisfireSkip && now.Sub(at) > j.threshold() {
		missed(api.MissedDown)
		return
	}
	newRun := func(state string) *store.Run {
		return &store.Run{JobID: j.row.ID, JobName: j.row.Name, Attempt: 1, State: state,
			Origin: it.e.origin, ScheduledAt: at, CreatedAt: now,
			Replay: it.e.origin == api.OriginReplay, ShardTotal: 1}
	}
	it.params = &store.FireParams{TriggerID: it.e.id, State: store.TriggerFired, FireAt: now}
	active := len(it.js.active) + len(it.js.queue)
	if active > 0 {
		switch j.spec.Overlap {
		case api.OverlapSkip:
			r := newRun(api.RunSkipped)
			r.FinishedAt, r.Error = now, "an earlier run of the job is still active (overlap skip)"
			it.params.Runs = []*store.Run{r}
			return
		case api.OverlapQueue:
			if len(it.js.queue) >= j.spec.QueueMax {
				r := newRun(api.RunSkipped)
				r.FinishedAt, r.Error = now, fmt.Sprintf("overlap queue is full (%d)", j.spec.QueueMax)
				it.params.Runs = []*store.Run{r}
				return
			}
			if !s.disp.HasCandidates(j.spec.Group, j.spec.Selector) {
				missed(api.MissedNoExecutor)
				return
			}
			it.held = true
			it.params.Runs = []*store.Run{newRun(api.RunPending)}
			return
		case api.OverlapReplace:
			for _, r := range it.js.active {
				it.kill = append(it.kill, r)
			}
		}
	}
	places, ok := s.disp.Plan(j)
	if !ok {
		missed(api.MissedNoExecutor)
		return
	}
	it.places = places
	for _, p := range places {
		r := newRun(api.RunPending)
		r.ShardIndex, r.ShardTotal = p.ShardIndex, max(p.ShardTotal, 1)
		if p.Exec != nil {
			r.State, r.ExecutorID, r.ExecutorName, r.AssignedAt = api.RunAssigned, p.Exec.id, p.Exec.name, now
		}
		it.params.Runs = append(it.params.Runs, r)
	}
}

// afterFire hands the runs of a settled trigger on.
func (s *Scheduler) afterFire(ctx context.Context, it *fireItem, res store.FireResult) {
	j := it.js.job
	if !res.Applied {
		// Settled already (or cleared by a pause or an edit).
		s.disp.Cancel(it.places)
		s.mu.Lock()
		s.dropIfIdleLocked(j.row.ID)
		s.mu.Unlock()
		return
	}
	if it.params.State == store.TriggerMissed || allSkipped(res.Runs) {
		s.mu.Lock()
		s.dropIfIdleLocked(j.row.ID)
		s.mu.Unlock()
		// No run will end to set a fixed-delay job's next fire: count the
		// delay from now.
		if j.spec.Delay != nil && it.e.origin == api.OriginSchedule {
			if err := s.afterDelayRun(ctx, j.row.ID, s.clock.Now()); err != nil {
				s.log.Error("schedule next fixed-delay fire", LogKeyJob, j.row.Name, "err", err)
			}
		}
		if it.params.State == store.TriggerMissed {
			return
		}
	}
	s.mu.Lock()
	for _, r := range res.Runs {
		if r.State == api.RunSkipped {
			continue
		}
		if it.held {
			it.js.queue = append(it.js.queue, r)
			continue
		}
		it.js.active[r.ID] = r
	}
	s.dropIfIdleLocked(j.row.ID)
	s.mu.Unlock()
	for _, r := range it.kill {
		if s.disp.Kill(r) {
			s.endKilled(ctx, r, "replaced by a newer run (overlap replace)")
		}
	}
	if !it.held && len(it.places) > 0 {
		s.disp.Commit(j, it.places, res.Runs)
	}
}

// firstMissedJob names a job of the batch missed for reason, for the log.
func firstMissedJob(items []*fireItem, reason string) string {
	for _, it := range items {
		if it.params.State == store.TriggerMissed && it.params.Missed.Missed.Reason == reason {
			return it.js.job.row.Name
		}
	}
	return ""
}

func allSkipped(runs []*store.Run) bool {
	for _, r := range runs {
		if r.State != api.RunSkipped {
			return false
		}
	}
	return len(runs) > 0
}

// RunsEnded updates overlap state when runs end: the next queued run of an
// overlap=queue job starts, and a fixed-delay job gets its next fire time.
func (s *Scheduler) RunsEnded(ctx context.Context, runs []*store.Run) {
	if s.EndedFunc != nil {
		defer s.EndedFunc()
	}
	for _, r := range runs {
		if j, err := s.jobByID(ctx, r.JobID); err == nil && s.retry(ctx, j, r) {
			// The trigger is not over: its next attempt is active now.
			s.mu.Lock()
			if js := s.jobs[r.JobID]; js != nil {
				delete(js.active, r.ID)
			}
			s.mu.Unlock()
			continue
		}
		s.mu.Lock()
		js := s.jobs[r.JobID]
		var next *store.Run
		var job *compiledJob
		delay := js == nil // not in memory: look it up
		if js != nil {
			delay = js.job.spec.Delay != nil
			delete(js.active, r.ID)
			job = js.job
			if len(js.active) == 0 && len(js.queue) > 0 {
				next = js.queue[0]
				js.queue = js.queue[1:]
				js.active[next.ID] = next
			}
			s.dropIfIdleLocked(r.JobID)
		}
		s.mu.Unlock()
		if next != nil {
			s.disp.Enqueue(ctx, job, []*store.Run{next})
		}
		if !delay {
			continue
		}
		if r.Origin != api.OriginSchedule {
			continue
		}
		if err := s.afterDelayRun(ctx, r.JobID, r.FinishedAt); err != nil {
			s.log.Error("schedule next fixed-delay fire", LogKeyJob, r.JobName, "err", err)
		}
	}
}

// afterDelayRun sets a fixed-delay job's next fire to finished (the end of
// its run, or the time its trigger was missed) plus its delay.
func (s *Scheduler) afterDelayRun(ctx context.Context, jobID int64, finished time.Time) error {
	s.opMu.Lock()
	defer s.opMu.Unlock()
	row, err := s.store.JobGetByID(ctx, jobID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	j, err := compileJob(row)
	if err != nil {
		return err
	}
	if j.spec.Delay == nil || row.Paused || !row.NextFireAt.IsZero() {
		return nil
	}
	if finished.IsZero() {
		finished = s.clock.Now()
	}
	row.NextFireAt = finished.Add(j.spec.Delay.D()).Truncate(time.Millisecond)
	if _, err := s.store.JobUpdate(ctx, store.JobUpdateParams{Job: row}); err != nil {
		return err
	}
	s.signal(s.matWake)
	return nil
}

// NextTriggers lists up to n armed triggers, earliest first.
func (s *Scheduler) NextTriggers(n int) (out []api.NextTrigger, total int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := make(entryHeap, len(s.heap))
	copy(h, s.heap)
	// Copy entries so Pop on the copy does not touch the live indexes.
	for i, e := range h {
		c := *e
		h[i] = &c
	}
	for len(out) < n && h.Len() > 0 {
		e := heap.Pop(&h).(*entry)
		name := ""
		if js := s.jobs[e.jobID]; js != nil {
			name = js.job.row.Name
		}
		out = append(out, api.NextTrigger{Job: name, ScheduledAt: api.NewTime(e.at)})
	}
	return out, len(s.heap)
}
