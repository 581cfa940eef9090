package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// ErrUnknownExecutor answers a poll or report from an executor jobd does
// not know (any more): it must register again.
var ErrUnknownExecutor = errors.New("unknown executor: register again")

// execEntry is the registry's live view of one executor.
type execEntry struct {
	id, group, name, host, version string
	labels                         map[string]string
	slots                          int
	state                          string
	stateSince, lastSeen           time.Time
	registeredAt                   time.Time

	// polling counts the polls held open now.
	polling int
	// wake is signalled when the mailbox or commands gain something.
	wake     chan struct{}
	mailbox  []api.Assignment
	commands []api.Command
	// held are the runs handed to this executor and not seen to end.
	held map[int64]*heldRun
	// reserved counts slots promised to runs not stored yet.
	reserved int

	// reportedRunning is what the executor said it runs, at its last poll.
	reportedRunning int
	// pollSeq counts the polls of this executor.
	pollSeq uint64
	// dropped is set when its poll connection dropped (the process may have
	// died) and cleared by its next poll.
	dropped bool

	// failures counts dispatches in a row that failed: runs that ended
	// (failed or lost) without ever starting on it.
	failures int
	// probeAt is when a quarantined executor may take one probe run;
	// probing is set while that run is out; probeWait doubles per failed
	// probe.
	probeAt   time.Time
	probing   bool
	probeWait time.Duration

	// drain is set while the executor drains.
	drain *drainState
}

// eligible reports whether e may take a run now, and how many: an online
// executor its free slots, a quarantined one whose probe time came one.
func (e *execEntry) eligible(now time.Time) (bool, int) {
	switch {
	case e.state == api.ExecutorOnline:
		return true, e.free()
	case e.state == api.ExecutorQuarantined && !e.probing && !now.Before(e.probeAt):
		return true, min(e.free(), 1)
	}
	return false, 0
}

type heldRun struct {
	run       *store.Run
	delivered bool
	// started is set when the executor reported the run started.
	started bool
	// deliveredSeq is the poll whose answer carried the run (0: before
	// this process started). The executor lists a run it received in every
	// later poll until its result is acknowledged.
	deliveredSeq uint64
}

func (e *execEntry) free() int { return e.slots - len(e.held) - e.reserved }

func (e *execEntry) setState(state string, now time.Time) {
	if e.state != state {
		e.state, e.stateSince = state, now
	}
}

func (e *execEntry) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

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

	mu    sync.Mutex
	execs map[string]*execEntry
	rr    map[int64]uint64
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
		QuarantineAfter: 3, QuarantineProbe: 30 * time.Second,
		execs: map[string]*execEntry{},
		rr:    map[int64]uint64{},
		usage: map[int64]*jobUsage{},

		recentEnded: map[int64]time.Time{},
		queues:      map[string][]queuedRun{},
	}
}

// Restore loads what the store says is in flight: runs held by executors
// (they get 3 heartbeats to come back and claim them) and pending runs.
func (d *Dispatcher) Restore(ctx context.Context, jobs func(ctx context.Context, id int64) (*compiledJob, error)) error {
	runs, err := d.store.RunsActive(ctx)
	if err != nil {
		return fmt.Errorf("restore runs: %w", err)
	}
	execs, err := d.store.ExecutorList(ctx)
	if err != nil {
		return fmt.Errorf("restore executors: %w", err)
	}
	now := d.clock.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range execs {
		if x.State == api.ExecutorOffline || x.State == api.ExecutorDrained {
			continue
		}
		e := d.entryFrom(x, now)
		// Not a candidate until it polls again.
		e.setState(api.ExecutorSuspect, now)
		d.execs[e.id] = e
	}
	for _, r := range runs {
		if r.State == api.RunPending {
			j, err := jobs(ctx, r.JobID)
			if err != nil {
				d.log.Warn("pending run of a job that is gone", "run", r.ID, "err", err)
				continue
			}
			d.queues[j.spec.Group] = append(d.queues[j.spec.Group], queuedRun{run: r, job: j})
			continue
		}
		e := d.execs[r.ExecutorID]
		if e == nil {
			e = &execEntry{id: r.ExecutorID, name: r.ExecutorName, state: api.ExecutorSuspect,
				stateSince: now, lastSeen: now, wake: make(chan struct{}, 1), held: map[int64]*heldRun{}}
			d.execs[e.id] = e
		}
		e.held[r.ID] = &heldRun{run: r, delivered: true}
	}
	return nil
}

func (d *Dispatcher) entryFrom(x *store.Executor, now time.Time) *execEntry {
	return &execEntry{
		id: x.ID, group: x.Group, name: x.Name, host: x.Host, version: x.Version,
		labels: x.Labels, slots: x.Slots, state: x.State, stateSince: x.StateSince,
		lastSeen: now, registeredAt: x.RegisteredAt,
		wake: make(chan struct{}, 1), held: map[int64]*heldRun{},
	}
}

// Stop makes open polls answer at once (jobd is shutting down).
func (d *Dispatcher) Stop() { d.stopOnce.Do(func() { close(d.stopping) }) }

// Register adds or refreshes an executor. Runs jobd believed it held that
// it no longer reports become lost at once.
func (d *Dispatcher) Register(ctx context.Context, req api.RegisterRequest) (api.RegisterResponse, error) {
	if err := validateName("group", req.Group); err != nil {
		return api.RegisterResponse{}, err
	}
	if req.Name == "" {
		return api.RegisterResponse{}, fieldErr("name", "required")
	}
	if req.Slots < 1 {
		req.Slots = 1
	}
	now := d.clock.Now()
	x, err := d.store.ExecutorUpsert(ctx, &store.Executor{
		Group: req.Group, Name: req.Name, Host: req.Host, Labels: req.Labels,
		Version: req.Version, Slots: req.Slots, State: api.ExecutorOnline,
		StateSince: now, LastSeen: now, RegisteredAt: now,
	})
	if err != nil {
		return api.RegisterResponse{}, fmt.Errorf("register executor: %w", err)
	}
	claimed := map[int64]bool{}
	for _, s := range req.Running {
		if id, err := strconv.ParseInt(s, 10, 64); err == nil {
			claimed[id] = true
		}
	}
	d.mu.Lock()
	e := d.execs[x.ID]
	if e == nil {
		e = d.entryFrom(x, now)
		d.execs[x.ID] = e
	} else {
		e.group, e.name, e.host, e.version = x.Group, x.Name, x.Host, x.Version
		e.labels, e.slots = x.Labels, x.Slots
	}
	e.lastSeen = now
	if e.state != api.ExecutorQuarantined && e.state != api.ExecutorDraining {
		// A restart lifts neither a quarantine (only a probe that starts
		// does) nor a drain (undrain does).
		e.setState(api.ExecutorOnline, now)
	}
	var lost []*store.Run
	for id, h := range e.held {
		if !h.delivered {
			continue
		}
		if !claimed[id] {
			lost = append(lost, h.run)
			delete(e.held, id)
		}
	}
	// Undelivered assignments stay in the mailbox for its next poll.
	var unknown []string
	for id := range claimed {
		if _, ok := e.held[id]; !ok {
			unknown = append(unknown, strconv.FormatInt(id, 10))
		}
	}
	d.mu.Unlock()
	d.markLost(ctx, lost, "executor restarted without it")
	d.log.Info("executor registered", LogKeyExecutor, x.ID, "name", x.Name, LogKeyGroup, x.Group, "slots", x.Slots)
	d.Dispatch(ctx)
	return api.RegisterResponse{ID: x.ID, HeartbeatInterval: api.Duration(d.hb), Lost: unknown}, nil
}

// Deregister removes an executor at once: the next routing decision no
// longer sees it. Runs it still held become lost.
func (d *Dispatcher) Deregister(ctx context.Context, id string) error {
	d.mu.Lock()
	e := d.execs[id]
	if e == nil {
		d.mu.Unlock()
		return ErrUnknownExecutor
	}
	final := api.ExecutorOffline
	if e.state == api.ExecutorDraining {
		final = api.ExecutorDrained
	}
	lost, requeue := d.removeLocked(e)
	d.mu.Unlock()
	now := d.clock.Now()
	if err := d.store.ExecutorSetState(ctx, id, final, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("deregister executor: %w", err)
	}
	d.markLost(ctx, lost, "executor deregistered")
	d.requeue(ctx, requeue)
	d.log.Info("executor deregistered", LogKeyExecutor, id, "state", final)
	return nil
}

// removeLocked drops e from the registry and returns the runs it had
// started (now lost) and the ones never delivered (to route again).
func (d *Dispatcher) removeLocked(e *execEntry) (lost, requeue []*store.Run) {
	for _, h := range e.held {
		if h.delivered {
			lost = append(lost, h.run)
		} else {
			requeue = append(requeue, h.run)
		}
	}
	e.held = map[int64]*heldRun{}
	e.mailbox = nil
	e.setState(api.ExecutorOffline, d.clock.Now())
	delete(d.execs, e.id)
	e.signal()
	return lost, requeue
}

// Poll is one executor heartbeat: it records the executor's load and
// returns its assignments and commands, waiting up to req.Wait for some.
func (d *Dispatcher) Poll(ctx context.Context, id string, req api.PollRequest) (api.PollResponse, error) {
	wait := min(max(req.Wait.D(), 0), 2*d.hb)
	d.mu.Lock()
	e := d.execs[id]
	if e == nil || e.state == api.ExecutorOffline {
		d.mu.Unlock()
		return api.PollResponse{}, ErrUnknownExecutor
	}
	now := d.clock.Now()
	e.lastSeen = now
	e.reportedRunning = len(req.Running)
	if e.state == api.ExecutorSuspect {
		e.setState(api.ExecutorOnline, now)
	}
	e.dropped = false
	e.polling++
	e.pollSeq++
	seq := e.pollSeq
	missing, stray := e.reconcileLocked(req.Running, seq)
	for _, id := range stray {
		if _, ok := d.recentEnded[parseID(id)]; ok {
			// Its result was stored while this poll was on its way.
			continue
		}
		// It runs something jobd counts as over (lost while it was away):
		// stop it, its result would be refused anyway.
		e.commands = append(e.commands, api.Command{Type: api.CommandKill, RunID: id})
	}
	d.mu.Unlock()
	d.requeue(ctx, missing)

	// A zero wait answers at once.
	t := time.NewTimer(wait)
	defer t.Stop()
	timeout := t.C
	d.Dispatch(ctx)
	for {
		d.mu.Lock()
		if len(e.mailbox) > 0 || len(e.commands) > 0 || d.execs[id] != e {
			resp := api.PollResponse{Assignments: e.mailbox, Commands: e.commands}
			for _, a := range e.mailbox {
				if h := e.held[parseID(a.RunID)]; h != nil {
					h.delivered, h.deliveredSeq = true, seq
				}
			}
			e.mailbox, e.commands = nil, nil
			e.polling--
			e.lastSeen = d.clock.Now()
			d.mu.Unlock()
			return resp, nil
		}
		d.mu.Unlock()
		select {
		case <-e.wake:
		case <-d.stopping:
			d.mu.Lock()
			e.polling--
			d.mu.Unlock()
			return api.PollResponse{Commands: []api.Command{{Type: api.CommandBye}}}, nil
		case <-timeout:
			d.mu.Lock()
			e.polling--
			e.lastSeen = d.clock.Now()
			d.mu.Unlock()
			return api.PollResponse{}, nil
		case <-ctx.Done():
			// The connection dropped: suspect at once, not a candidate
			// until it polls again.
			d.mu.Lock()
			e.polling--
			if e.polling == 0 && d.execs[id] == e && e.state == api.ExecutorOnline {
				e.setState(api.ExecutorSuspect, d.clock.Now())
				e.dropped = true
			}
			d.mu.Unlock()
			return api.PollResponse{}, ctx.Err()
		}
	}
}

// reconcileLocked compares the runs jobd handed e before poll seq with
// the ones it says it holds. A run it does not list never reached it (the
// answer that carried it was lost, or jobd restarted before delivering it):
// it goes back to the queue (see requeue).
// It also returns the runs the executor lists that jobd does not count as
// its (stray).
func (e *execEntry) reconcileLocked(running []string, seq uint64) (out []*store.Run, stray []string) {
	claimed := make(map[int64]bool, len(running))
	for _, s := range running {
		id := parseID(s)
		claimed[id] = true
		if e.held[id] == nil {
			stray = append(stray, s)
		}
	}
	for id, h := range e.held {
		if !h.delivered || h.deliveredSeq >= seq || claimed[id] {
			continue
		}
		delete(e.held, id)
		out = append(out, h.run)
	}
	return out, stray
}

// candidatesLocked lists the online executors of group matching sel,
// ordered by id.
func (d *Dispatcher) candidatesLocked(group string, sel map[string]string) []candidate {
	var out []candidate
	now := d.clock.Now()
	for _, e := range d.execs {
		if e.group != group || !matchSelector(sel, e.labels) {
			continue
		}
		if ok, free := e.eligible(now); ok {
			out = append(out, candidate{e: e, free: free})
		}
	}
	slices.SortFunc(out, func(a, b candidate) int {
		if c := a.e.registeredAt.Compare(b.e.registeredAt); c != 0 {
			return c
		}
		if a.e.id < b.e.id {
			return -1
		}
		return 1
	})
	return out
}

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
	n := d.rr[job.row.ID]
	d.rr[job.row.ID] = n + 1
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
		if d.execs[p.Exec.id] != p.Exec {
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

func (d *Dispatcher) deliverLocked(e *execEntry, r *store.Run, job *compiledJob) {
	if e.state == api.ExecutorQuarantined {
		e.probing = true
		d.log.Info("probing quarantined executor", LogKeyExecutor, e.id, "name", e.name, LogKeyRun, r.ID)
	}
	e.held[r.ID] = &heldRun{run: r}
	e.mailbox = append(e.mailbox, newAssignment(job, r))
	u := d.usage[job.row.ID]
	if u == nil {
		u = &jobUsage{count: map[string]int64{}, last: map[string]time.Time{}}
		d.usage[job.row.ID] = u
	}
	u.count[e.id]++
	u.last[e.id] = d.clock.Now()
	e.signal()
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
			n := d.rr[qr.job.row.ID]
			picked := route(qr.job.spec.Route, qr.job.spec.Name, cands, n)
			if len(picked) == 0 || qr.job.spec.Route == "sharding_broadcast" && len(picked) > 0 && picked[0].free() < 1 {
				keep = append(keep, qr)
				continue
			}
			d.rr[qr.job.row.ID] = n + 1
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
	d.mu.Lock()
	defer d.mu.Unlock()
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
		if d.execs[m.p.Exec.id] != m.p.Exec {
			r.State = api.RunPending
			d.queues[m.q.job.spec.Group] = append(d.queues[m.q.job.spec.Group], m.q)
			continue
		}
		d.deliverLocked(m.p.Exec, r, m.q.job)
	}
	if err != nil {
		d.log.Error("assign queued runs", "err", err)
	}
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
	d.requeueFunc(ctx, back)
}

// requeueFunc is set by the daemon to find the jobs of requeued runs.
func (d *Dispatcher) requeueFunc(ctx context.Context, runs []*store.Run) {
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

// Ended tells the registry a run ended, freeing its slot.
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
	d.Dispatch(ctx)
}

// Started tells the registry an executor reported run r started: its
// dispatches work, so a quarantined executor is back online.
func (d *Dispatcher) Started(r *store.Run) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.execs[r.ExecutorID]
	if e == nil {
		return
	}
	if h := e.held[r.ID]; h != nil {
		h.started = true
	}
	e.failures = 0
	if e.state == api.ExecutorQuarantined {
		e.probing, e.probeWait = false, 0
		e.setState(api.ExecutorOnline, d.clock.Now())
		d.log.Info("executor out of quarantine: a probe run started", LogKeyExecutor, e.id, "name", e.name)
	}
}

// othersOnlineLocked reports whether e's group has another online
// executor: the last one is never quarantined, since its failures may be
// the job's (a missing binary) and the group would take nothing.
func (d *Dispatcher) othersOnlineLocked(e *execEntry) bool {
	for _, o := range d.execs {
		if o != e && o.group == e.group && o.state == api.ExecutorOnline {
			return true
		}
	}
	return false
}

func (d *Dispatcher) dispatchFailedLocked(e *execEntry) {
	now := d.clock.Now()
	e.failures++
	switch {
	case e.state == api.ExecutorQuarantined:
		// The probe failed: wait twice as long for the next one.
		e.probing = false
		e.probeWait = min(2*e.probeWait, 10*time.Minute)
		e.probeAt = now.Add(e.probeWait)
	case e.state == api.ExecutorOnline && e.failures >= d.QuarantineAfter && d.othersOnlineLocked(e):
		e.setState(api.ExecutorQuarantined, now)
		e.probeWait = d.QuarantineProbe
		e.probeAt = now.Add(e.probeWait)
		d.log.Warn("executor quarantined: dispatches failed in a row", LogKeyExecutor, e.id, "name", e.name,
			"failures", e.failures, "probe_at", e.probeAt)
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

// GroupOf returns the group of a registered executor.
func (d *Dispatcher) GroupOf(id string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.execs[id]; e != nil {
		return e.group, true
	}
	return "", false
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

// Monitor checks executor health every quarter of the heartbeat (or of
// LostAfter) until ctx ends: see check.
func (d *Dispatcher) Monitor(ctx context.Context) {
	tick := time.NewTicker(min(d.hb/4, d.LostAfter/7))
	defer tick.Stop()
	lastTouch := d.clock.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := d.clock.Now()
		d.check(ctx, now)
		if now.Sub(lastTouch) >= 5*time.Second {
			lastTouch = now
			d.touch(ctx, now)
		}
	}
}

// check ends the runs of an executor whose connection dropped LostAfter
// ago without it coming back (a dead process: its runs are lost now, not
// at the heartbeat deadline), marks executors offline after three missed
// heartbeats, and dispatches retries whose backoff ended.
func (d *Dispatcher) check(ctx context.Context, now time.Time) {
	var gone []*execEntry
	var lost, dead, requeue []*store.Run
	d.mu.Lock()
	if now.Sub(d.recentPruned) > 10*time.Second {
		d.recentPruned = now
		for id, at := range d.recentEnded {
			if now.Sub(at) > time.Minute {
				delete(d.recentEnded, id)
			}
		}
	}
	handBack := d.drainTimeoutsLocked(now)
	for _, e := range d.execs {
		if e.dropped && e.polling == 0 && now.Sub(e.stateSince) >= d.LostAfter {
			// It stays suspect (not a candidate) until it polls or misses
			// its heartbeats.
			e.dropped = false
			for id, h := range e.held {
				if h.delivered {
					dead = append(dead, h.run)
					delete(e.held, id)
				}
			}
		}
		if e.polling == 0 && now.Sub(e.lastSeen) > 3*d.hb {
			l, r := d.removeLocked(e)
			lost, requeue = append(lost, l...), append(requeue, r...)
			gone = append(gone, e)
		}
	}
	d.mu.Unlock()
	for _, e := range gone {
		d.log.Warn("executor offline: missed 3 heartbeats", LogKeyExecutor, e.id, "name", e.name, LogKeyGroup, e.group)
		if err := d.store.ExecutorSetState(ctx, e.id, api.ExecutorOffline, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			d.log.Error("store executor state", "err", err)
		}
	}
	if len(handBack) > 0 && d.HandBackFunc != nil {
		d.HandBackFunc(ctx, handBack)
	}
	d.Dispatch(ctx)
	d.markLost(ctx, dead, "executor connection dropped and it did not come back")
	d.markLost(ctx, lost, "executor offline")
	d.requeue(ctx, requeue)
}

// touch stores the last heartbeat of the executors in the registry.
func (d *Dispatcher) touch(ctx context.Context, now time.Time) {
	d.mu.Lock()
	ids := make([]string, 0, len(d.execs))
	for id := range d.execs {
		ids = append(ids, id)
	}
	d.mu.Unlock()
	if len(ids) == 0 {
		return
	}
	if err := d.store.ExecutorTouch(ctx, ids, now); err != nil {
		d.log.Error("store executor heartbeat", "err", err)
	}
}

// Executors lists the registry merged with the stored executors.
func (d *Dispatcher) Executors(ctx context.Context) ([]api.Executor, error) {
	rows, err := d.store.ExecutorList(ctx)
	if err != nil {
		return nil, fmt.Errorf("list executors: %w", err)
	}
	out := make([]api.Executor, 0, len(rows))
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, x := range rows {
		out = append(out, d.toAPILocked(x))
	}
	return out, nil
}

// Executor returns one executor by id.
func (d *Dispatcher) Executor(ctx context.Context, id string) (api.Executor, error) {
	x, err := d.store.ExecutorGet(ctx, id)
	if err != nil {
		return api.Executor{}, fmt.Errorf("get executor %s: %w", id, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.toAPILocked(x), nil
}

func (d *Dispatcher) toAPILocked(x *store.Executor) api.Executor {
	a := api.Executor{
		ID: x.ID, Name: x.Name, Group: x.Group, Host: x.Host, Labels: maps.Clone(x.Labels),
		Version: x.Version, State: x.State, StateSince: api.NewTime(x.StateSince),
		Slots: x.Slots, LastSeen: api.NewTime(x.LastSeen), RegisteredAt: api.NewTime(x.RegisteredAt),
	}
	if e := d.execs[x.ID]; e != nil {
		a.State, a.StateSince = e.state, api.NewTime(e.stateSince)
		a.LastSeen = api.NewTime(e.lastSeen)
		a.Running = len(e.held)
		if dr := e.drain; dr != nil && e.state == api.ExecutorDraining {
			a.Drain = &api.DrainProgress{RunsLeft: len(e.held), Deadline: api.NewTime(dr.deadline),
				OnTimeout: dr.onTimeout, StartedAt: api.NewTime(dr.startedAt)}
		}
	}
	return a
}

// ExecutorCounts counts executors by state.
func (d *Dispatcher) ExecutorCounts(ctx context.Context) (map[string]int, error) {
	xs, err := d.Executors(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, x := range xs {
		out[x.State]++
	}
	return out, nil
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
