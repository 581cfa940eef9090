package daemon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
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

// GroupOf returns the group of a registered executor.
func (d *Dispatcher) GroupOf(id string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.execs[id]; e != nil {
		return e.group, true
	}
	return "", false
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
