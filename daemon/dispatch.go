package daemon

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// jobUsage counts, per executor, the runs of one job it was handed.
type jobUsage struct {
	count map[string]int64
	last  map[string]time.Time
}

// withUsageLocked fills the per-job usage of cands.
func (d *Dispatcher) withUsageLocked(jobID int64, cands []candidate) []candidate {
	if u := d.usage[jobID]; u != nil {
		for i := range cands {
			cands[i].uses, cands[i].lastUsed = u.count[cands[i].e.id], u.last[cands[i].e.id]
		}
	}
	return cands
}

// queuedRun is a stored pending run waiting for a free executor slot.
type queuedRun struct {
	run *store.Run
	job *compiledJob
	// avoid is the executor a retry prefers not to run on again.
	avoid string
}

// Dispatcher keeps the registry of executors, routes runs to them and hands
// runs and commands out through their long polls. Routing decisions read
// only the current registry: an executor that is not online is never a
// candidate.
type Dispatcher struct {
	store store.Store
	clock Clock
	log   *slog.Logger
	hb    time.Duration
	// LostAfter is how long an executor whose connection dropped may stay
	// away before the runs it held are lost (default 700ms: checked every
	// 100ms, a dead executor's runs are lost within 0.8s).
	LostAfter time.Duration
	// QuarantineAfter is how many failed dispatches in a row quarantine an
	// executor (default 3); QuarantineProbe is the first wait before a
	// probe run (default 30s, doubling per failed probe up to 10m).
	QuarantineAfter int
	QuarantineProbe time.Duration
	// EndedFunc is called with runs the dispatcher ended itself (lost).
	EndedFunc func(runs []*store.Run)
	// HandBackFunc ends runs a drain timed out on and queues them again.
	HandBackFunc func(ctx context.Context, runs []*store.Run)
	// JobFunc finds the job of a run that must be routed again.
	JobFunc func(ctx context.Context, id int64) (*compiledJob, error)

	// stopping is closed by Stop: open polls answer at once.
	stopping chan struct{}
	stopOnce sync.Once

	// kick asks the dispatch loop (run by Monitor) for a Dispatch; looping
	// tells whether it runs. Runs that end in a burst (a batch of results)
	// then cost one Dispatch, one store write, rather than one each.
	kick    chan struct{}
	looping atomic.Bool

	mu    sync.Mutex
	execs map[string]*execEntry
	rr    map[int64]*rrCounter
	usage map[int64]*jobUsage
	// recentEnded holds runs that ended in the last minute: an executor
	// may still list them in a poll sent before their result was acked.
	recentEnded  map[int64]time.Time
	recentPruned time.Time
	queues       map[string][]queuedRun
}

// NewDispatcher returns a dispatcher; hb is the heartbeat interval.
func NewDispatcher(st store.Store, clock Clock, log *slog.Logger, hb time.Duration) *Dispatcher {
	return &Dispatcher{
		store: st, clock: clock, log: log, hb: hb, LostAfter: 700 * time.Millisecond,
		stopping:        make(chan struct{}),
		kick:            make(chan struct{}, 1),
		QuarantineAfter: 3, QuarantineProbe: 30 * time.Second,
		execs: map[string]*execEntry{},
		rr:    map[int64]*rrCounter{},
		usage: map[int64]*jobUsage{},

		recentEnded: map[int64]time.Time{},
		queues:      map[string][]queuedRun{},
	}
}

// Stop makes open polls answer at once (jobd is shutting down).
func (d *Dispatcher) Stop() { d.stopOnce.Do(func() { close(d.stopping) }) }

// placement is where one new run goes: an executor (slot reserved) or,
// when Exec is nil, the group's queue.
type placement struct {
	Exec       *execEntry
	ShardIndex int
	ShardTotal int
}

// Plan decides where the runs of one trigger of job go. ok is false when
// the group has no online executor at all. Slots it picks are reserved
// until Commit or Cancel.
func (d *Dispatcher) Plan(job *compiledJob) (ps []placement, ok bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	cands := d.withUsageLocked(job.row.ID, d.candidatesLocked(job.spec.Group, job.spec.Selector))
	if len(cands) == 0 {
		if d.expectedLocked(job.spec.Group, job.spec.Selector) {
			// Its executors are reconnecting: the run waits for them.
			return []placement{{ShardTotal: 1}}, true
		}
		return nil, false
	}
	n := d.nextRRLocked(job)
	picked := route(job.spec.Route, job.spec.Name, cands, n)
	if len(picked) == 0 {
		return []placement{{ShardTotal: 1}}, true
	}
	for i, e := range picked {
		e.reserved++
		ps = append(ps, placement{Exec: e, ShardIndex: i, ShardTotal: len(picked)})
	}
	return ps, true
}

// Cancel releases the slots of placements that were not stored.
func (d *Dispatcher) Cancel(ps []placement) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, p := range ps {
		if p.Exec != nil {
			p.Exec.reserved--
		}
	}
}

// Commit hands stored runs to their planned executors; runs with no
// executor join the group queue.
func (d *Dispatcher) Commit(job *compiledJob, ps []placement, runs []*store.Run) {
	d.mu.Lock()
	var requeue []*store.Run
	for i, r := range runs {
		p := ps[i]
		if p.Exec == nil {
			d.queues[job.spec.Group] = append(d.queues[job.spec.Group], queuedRun{run: r, job: job})
			continue
		}
		p.Exec.reserved--
		if !d.deliverableLocked(p.Exec) {
			requeue = append(requeue, r)
			continue
		}
		d.deliverLocked(p.Exec, r, job)
	}
	d.mu.Unlock()
	if len(requeue) > 0 {
		d.requeue(context.Background(), requeue)
	}
}

// deliverableLocked tells whether a run planned for e before a store
// write may still be handed to it after the write: e is still registered
// and was not drained, deregistered or lost meanwhile (a drain
// acknowledged while the write was in flight must see no new run).
func (d *Dispatcher) deliverableLocked(e *execEntry) bool {
	return d.execs[e.id] == e && (e.state == api.ExecutorOnline || e.state == api.ExecutorQuarantined)
}

func (d *Dispatcher) deliverLocked(e *execEntry, r *store.Run, job *compiledJob) {
	if e.state == api.ExecutorQuarantined {
		e.probing = true
		d.log.Info("probing quarantined executor", LogKeyExecutor, e.id, "name", e.name, LogKeyRun, r.ID)
	}
	e.held[r.ID] = &heldRun{run: r}
	e.mailbox = append(e.mailbox, newAssignment(job, r))
	e.signal()
	if !usesUsage(job.spec.Route) {
		return
	}
	u := d.usage[job.row.ID]
	if u == nil {
		u = &jobUsage{count: map[string]int64{}, last: map[string]time.Time{}}
		d.usage[job.row.ID] = u
	}
	u.count[e.id]++
	u.last[e.id] = d.clock.Now()
}

// nextRRLocked returns the job's round-robin counter and advances it. Only
// round-robin jobs keep one (others get 0), and only least used routes
// keep usage counts: what the dispatcher keeps per job must not grow with
// every job that ever fired.
func (d *Dispatcher) nextRRLocked(job *compiledJob) uint64 {
	if job.spec.Route != "" && job.spec.Route != api.RouteRoundRobin {
		return 0
	}
	c := d.rr[job.row.ID]
	if c == nil {
		c = &rrCounter{}
		d.rr[job.row.ID] = c
	}
	n := c.n
	c.n, c.used = n+1, d.clock.Now()
	return n
}

// peekRRLocked returns the job's round-robin counter.
func (d *Dispatcher) peekRRLocked(job *compiledJob) uint64 {
	if c := d.rr[job.row.ID]; c != nil {
		return c.n
	}
	return 0
}

// rrCounter is a job's round-robin counter.
type rrCounter struct {
	n    uint64
	used time.Time
}

// jobStateIdle is how long the per-job routing state (round-robin
// counter, usage counts) of a job that routes nothing is kept.
const jobStateIdle = 15 * time.Minute

// pruneJobStateLocked drops the routing state of jobs idle for
// jobStateIdle: with a million sparse jobs it would otherwise hold an
// entry for every job that ever fired.
func (d *Dispatcher) pruneJobStateLocked(now time.Time) {
	for id, c := range d.rr {
		if now.Sub(c.used) > jobStateIdle {
			delete(d.rr, id)
		}
	}
	for id, u := range d.usage {
		idle := true
		for _, at := range u.last {
			if now.Sub(at) <= jobStateIdle {
				idle = false
				break
			}
		}
		if idle {
			delete(d.usage, id)
		}
	}
}

// usesUsage reports whether a route needs the per-job usage counts.
func usesUsage(route string) bool {
	return route == api.RouteLeastFrequentlyUsed || route == api.RouteLeastRecentlyUsed
}

// EnqueueRetry queues a stored retry run, preferring an executor other
// than avoid, and dispatches.
func (d *Dispatcher) EnqueueRetry(ctx context.Context, job *compiledJob, r *store.Run, avoid string) {
	d.mu.Lock()
	d.queues[job.spec.Group] = append(d.queues[job.spec.Group], queuedRun{run: r, job: job, avoid: avoid})
	d.mu.Unlock()
	d.Dispatch(ctx)
}

// Enqueue adds stored pending runs to their group queue and dispatches.
func (d *Dispatcher) Enqueue(ctx context.Context, job *compiledJob, runs []*store.Run) {
	d.mu.Lock()
	for _, r := range runs {
		d.queues[job.spec.Group] = append(d.queues[job.spec.Group], queuedRun{run: r, job: job})
	}
	d.mu.Unlock()
	d.Dispatch(ctx)
}

// Dispatch routes queued pending runs to executors with free slots.
func (d *Dispatcher) Dispatch(ctx context.Context) {
	type move struct {
		q queuedRun
		p placement
	}
	var moves []move
	now := d.clock.Now()
	d.mu.Lock()
	for group, q := range d.queues {
		if !d.groupHasFreeLocked(group) {
			continue // nothing can move; checking each run would cost O(queue)
		}
		keep := q[:0]
		for i, qr := range q {
			if !d.groupHasFreeLocked(group) {
				keep = append(keep, q[i:]...)
				break
			}
			if qr.run.NotBefore.After(now) {
				keep = append(keep, qr) // a retry still in its backoff
				continue
			}
			cands := d.withUsageLocked(qr.job.row.ID, preferOthers(d.candidatesLocked(group, qr.job.spec.Selector), qr.avoid))
			n := d.peekRRLocked(qr.job)
			picked := route(qr.job.spec.Route, qr.job.spec.Name, cands, n)
			if len(picked) == 0 || qr.job.spec.Route == api.RouteShardingBroadcast && picked[0].free() < 1 {
				keep = append(keep, qr)
				continue
			}
			d.nextRRLocked(qr.job)
			picked[0].reserved++
			moves = append(moves, move{q: qr, p: placement{Exec: picked[0]}})
		}
		if len(keep) == 0 {
			delete(d.queues, group)
		} else {
			d.queues[group] = keep
		}
	}
	d.mu.Unlock()
	if len(moves) == 0 {
		return
	}
	ts := make([]store.RunTransition, len(moves))
	for i, m := range moves {
		ts[i] = store.RunTransition{RunID: m.q.run.ID, From: []string{api.RunPending}, To: api.RunAssigned,
			Set: store.RunFields{ExecutorID: m.p.Exec.id, ExecutorName: m.p.Exec.name, AssignedAt: now}}
	}
	ok, err := d.store.RunsTransition(ctx, ts)
	var back []*store.Run
	d.mu.Lock()
	for i, m := range moves {
		m.p.Exec.reserved--
		if err != nil {
			d.queues[m.q.job.spec.Group] = append(d.queues[m.q.job.spec.Group], m.q)
			continue
		}
		if !ok[i] {
			continue // killed or ended meanwhile
		}
		r := m.q.run
		r.State, r.ExecutorID, r.ExecutorName, r.AssignedAt = api.RunAssigned, m.p.Exec.id, m.p.Exec.name, now
		if !d.deliverableLocked(m.p.Exec) {
			// Stored as assigned to it: put back to pending in the store
			// too, or no later transition from pending would apply.
			back = append(back, r)
			continue
		}
		d.deliverLocked(m.p.Exec, r, m.q.job)
	}
	d.mu.Unlock()
	if err != nil {
		d.log.Error("assign queued runs", "err", err)
	}
	d.requeue(ctx, back)
}

// preferOthers drops the executor avoid from cands when another candidate
// has a free slot: a retry goes elsewhere if it can, and back to the same
// executor rather than wait.
func preferOthers(cands []candidate, avoid string) []candidate {
	if avoid == "" {
		return cands
	}
	others := make([]candidate, 0, len(cands))
	free := false
	for _, c := range cands {
		if c.e.id != avoid {
			others = append(others, c)
			free = free || c.free > 0
		}
	}
	if free {
		return others
	}
	return cands
}

// groupHasFreeLocked reports whether an online executor of group has a
// free slot.
func (d *Dispatcher) groupHasFreeLocked(group string) bool {
	now := d.clock.Now()
	for _, e := range d.execs {
		if e.group != group {
			continue
		}
		if ok, free := e.eligible(now); ok && free > 0 {
			return true
		}
	}
	return false
}

// requeue puts runs that never reached their executor back to pending. A
// run that had started meanwhile (its executor reported it running but no
// longer holds it) is lost instead.
func (d *Dispatcher) requeue(ctx context.Context, runs []*store.Run) {
	if len(runs) == 0 {
		return
	}
	ts := make([]store.RunTransition, len(runs))
	for i, r := range runs {
		ts[i] = store.RunTransition{RunID: r.ID, From: []string{api.RunAssigned}, To: api.RunPending}
	}
	ok, err := d.store.RunsTransition(ctx, ts)
	if err != nil {
		d.log.Error("requeue runs", "err", err)
		return
	}
	var back, started []*store.Run
	for i, r := range runs {
		if ok[i] {
			r.State = api.RunPending
			back = append(back, r)
		} else {
			started = append(started, r)
		}
	}
	d.markLost(ctx, started, "its executor no longer holds it")
	d.enqueueRequeued(ctx, back)
}

// enqueueRequeued queues runs put back to pending, finding their jobs
// through JobFunc.
func (d *Dispatcher) enqueueRequeued(ctx context.Context, runs []*store.Run) {
	if d.JobFunc == nil {
		return
	}
	for _, r := range runs {
		j, err := d.JobFunc(ctx, r.JobID)
		if err != nil {
			d.log.Warn("requeue run of a job that is gone", "run", r.ID, "err", err)
			continue
		}
		d.Enqueue(ctx, j, []*store.Run{r})
	}
}

// markLost ends runs as lost and tells EndedFunc.
func (d *Dispatcher) markLost(ctx context.Context, runs []*store.Run, why string) {
	if len(runs) == 0 {
		return
	}
	now := d.clock.Now()
	ts := make([]store.RunTransition, len(runs))
	for i, r := range runs {
		ts[i] = store.RunTransition{RunID: r.ID, From: []string{api.RunAssigned, api.RunRunning}, To: api.RunLost,
			Set: store.RunFields{FinishedAt: now, Error: why}}
	}
	ok, err := d.store.RunsTransition(ctx, ts)
	if err != nil {
		d.log.Error("mark runs lost", "err", err)
		return
	}
	var ended []*store.Run
	for i, r := range runs {
		if ok[i] {
			r.State, r.FinishedAt, r.Error = api.RunLost, now, why
			ended = append(ended, r)
			d.log.Warn("run lost", LogKeyRun, r.ID, LogKeyJob, r.JobName, LogKeyExecutor, r.ExecutorID, "why", why)
		}
	}
	if d.EndedFunc != nil && len(ended) > 0 {
		d.EndedFunc(ended)
	}
}

// Ended tells the registry a run ended, freeing its slot, and has queued
// runs dispatched: by the dispatch loop while Monitor runs, else at once.
//
// A run that failed or was lost without ever starting counts as a failed
// dispatch of its executor: QuarantineAfter of them in a row quarantine
// it (no runs) until a probe run starts on it.
func (d *Dispatcher) Ended(ctx context.Context, r *store.Run) {
	d.mu.Lock()
	d.recentEnded[r.ID] = d.clock.Now()
	if e := d.execs[r.ExecutorID]; e != nil {
		h := e.held[r.ID]
		delete(e.held, r.ID)
		started := !r.StartedAt.IsZero() || h != nil && h.started
		if !started && (r.State == api.RunFailed || r.State == api.RunLost) {
			d.dispatchFailedLocked(e)
		}
	}
	d.mu.Unlock()
	d.dispatchSoon(ctx)
}

// dispatchSoon has Dispatch run: by the dispatch loop if it runs, which
// coalesces the requests made while it works, else now.
func (d *Dispatcher) dispatchSoon(ctx context.Context) {
	if !d.looping.Load() {
		d.Dispatch(ctx)
		return
	}
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// dispatchLoop runs Dispatch whenever dispatchSoon asks, until ctx ends.
func (d *Dispatcher) dispatchLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.kick:
		}
		d.Dispatch(ctx)
	}
}

// Kill stops run r. A run no executor has received yet (queued, or in a
// mailbox) is taken back and now is true: the caller ends it. A run an
// executor holds gets a kill command, and ends when the executor reports.
func (d *Dispatcher) Kill(r *store.Run) (now bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for group, q := range d.queues {
		for i, qr := range q {
			if qr.run.ID == r.ID {
				d.queues[group] = append(q[:i:i], q[i+1:]...)
				return true
			}
		}
	}
	e := d.execs[r.ExecutorID]
	if e == nil || e.held[r.ID] == nil {
		return true
	}
	if !e.held[r.ID].delivered {
		delete(e.held, r.ID)
		id := strconv.FormatInt(r.ID, 10)
		e.mailbox = slices.DeleteFunc(e.mailbox, func(a api.Assignment) bool { return a.RunID == id })
		return true
	}
	e.commands = append(e.commands, api.Command{Type: api.CommandKill, RunID: strconv.FormatInt(r.ID, 10)})
	e.signal()
	return false
}

// HasCandidates reports whether group has an executor matching sel that
// is online or expected back (suspect: its connection dropped, or jobd
// restarted, less than three heartbeats ago).
func (d *Dispatcher) HasCandidates(group string, sel map[string]string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.candidatesLocked(group, sel)) > 0 || d.expectedLocked(group, sel)
}

// expectedLocked reports whether a suspect executor of group matching sel
// may still come back: runs then wait in the queue rather than being
// recorded as missed.
func (d *Dispatcher) expectedLocked(group string, sel map[string]string) bool {
	for _, e := range d.execs {
		if e.group == group && e.state == api.ExecutorSuspect && matchSelector(sel, e.labels) {
			return true
		}
	}
	return false
}

func parseID(s string) int64 {
	id, _ := strconv.ParseInt(s, 10, 64)
	return id
}

// newAssignment builds what an executor needs to run r of job.
func newAssignment(job *compiledJob, r *store.Run) api.Assignment {
	s := &job.spec
	a := api.Assignment{
		RunID: strconv.FormatInt(r.ID, 10), Job: s.Name, Attempt: r.Attempt,
		Kind: jobKind(s), Command: s.Command, Script: s.Script, Interpreter: s.Interpreter,
		HTTP: s.HTTP, Handler: s.Handler, Params: s.Params,
		ScheduledAt: api.NewTime(r.ScheduledAt), TriggerID: strconv.FormatInt(r.TriggerID, 10),
		ShardIndex: r.ShardIndex, ShardTotal: r.ShardTotal, Replay: r.Replay,
	}
	if len(r.Params) > 0 {
		a.Params = maps.Clone(s.Params)
		if a.Params == nil {
			a.Params = map[string]string{}
		}
		maps.Copy(a.Params, r.Params)
	}
	if s.Timeout != nil {
		a.Timeout = *s.Timeout
	}
	return a
}
