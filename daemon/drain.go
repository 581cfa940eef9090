package daemon

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// drainState is a drain in progress.
type drainState struct {
	startedAt time.Time
	deadline  time.Time // zero: no timeout
	onTimeout string
	timedOut  bool
}

// Drain stops routing to executor id at once and tells it to drain: it
// finishes its runs, delivers its reports and deregisters, ending drained.
// Runs handed to it but not delivered yet go back to the queue.
func (d *Dispatcher) Drain(ctx context.Context, id string, req api.DrainRequest) (api.Executor, error) {
	switch req.OnTimeout {
	case "":
		req.OnTimeout = api.DrainRequeue
	case api.DrainRequeue, api.DrainFinish:
	default:
		return api.Executor{}, fieldErr("on_timeout", "%q: want requeue or finish", req.OnTimeout)
	}
	if req.Timeout.D() < 0 {
		return api.Executor{}, fieldErr("timeout", "%s: must not be negative", req.Timeout.D())
	}
	now := d.clock.Now()
	d.mu.Lock()
	e := d.execs[id]
	if e == nil {
		d.mu.Unlock()
		if _, err := d.store.ExecutorGet(ctx, id); err != nil {
			return api.Executor{}, fmt.Errorf("executor %s: %w", id, err)
		}
		return api.Executor{}, &conflictError{msg: fmt.Sprintf("executor %s is not connected (offline or drained)", id)}
	}
	var back []*store.Run
	if e.state != api.ExecutorDraining {
		e.setState(api.ExecutorDraining, now)
		e.drain = &drainState{startedAt: now, onTimeout: req.OnTimeout}
		if req.Timeout > 0 {
			e.drain.deadline = now.Add(req.Timeout.D())
		}
		// What it has not received yet goes elsewhere.
		for rid, h := range e.held {
			if !h.delivered {
				back = append(back, h.run)
				delete(e.held, rid)
			}
		}
		e.mailbox = nil
		e.commands = append(e.commands, api.Command{Type: api.CommandDrain})
		e.signal()
	}
	d.mu.Unlock()
	if err := d.store.ExecutorSetState(ctx, id, api.ExecutorDraining, now); err != nil {
		d.log.Error("store executor state", "err", err)
	}
	d.requeue(ctx, back)
	d.log.Info("executor draining", LogKeyExecutor, id, "timeout", req.Timeout.D(), "on_timeout", req.OnTimeout)
	return d.Executor(ctx, id)
}

// Undrain cancels a drain that has not finished.
func (d *Dispatcher) Undrain(ctx context.Context, id string) (api.Executor, error) {
	now := d.clock.Now()
	d.mu.Lock()
	e := d.execs[id]
	if e == nil || e.state != api.ExecutorDraining {
		d.mu.Unlock()
		if _, err := d.store.ExecutorGet(ctx, id); err != nil {
			return api.Executor{}, fmt.Errorf("executor %s: %w", id, err)
		}
		return api.Executor{}, &conflictError{msg: fmt.Sprintf("executor %s is not draining", id)}
	}
	e.setState(api.ExecutorOnline, now)
	e.drain = nil
	e.commands = append(e.commands, api.Command{Type: api.CommandUndrain})
	e.signal()
	d.mu.Unlock()
	if err := d.store.ExecutorSetState(ctx, id, api.ExecutorOnline, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		d.log.Error("store executor state", "err", err)
	}
	d.log.Info("executor undrained", LogKeyExecutor, id)
	d.Dispatch(ctx)
	return d.Executor(ctx, id)
}

// drainTimeoutsLocked returns the runs of draining executors whose drain
// timed out with on_timeout requeue (they are to be handed back), and
// marks the timeouts.
func (d *Dispatcher) drainTimeoutsLocked(now time.Time) (handBack []*store.Run) {
	for _, e := range d.execs {
		dr := e.drain
		if dr == nil || dr.timedOut || dr.deadline.IsZero() || now.Before(dr.deadline) {
			continue
		}
		dr.timedOut = true
		d.log.Warn("drain timed out", LogKeyExecutor, e.id, "name", e.name, "runs_left", len(e.held), "on_timeout", dr.onTimeout)
		if dr.onTimeout != api.DrainRequeue {
			continue
		}
		for id, h := range e.held {
			handBack = append(handBack, h.run)
			e.commands = append(e.commands, api.Command{Type: api.CommandKill, RunID: strconv.FormatInt(id, 10)})
			delete(e.held, id)
		}
		e.signal()
	}
	return handBack
}

// HandBack ends runs a drain timed out on as killed and queues a new
// attempt of each for another executor, whatever the job's retry policy.
func (s *Scheduler) HandBack(ctx context.Context, runs []*store.Run) {
	now := s.clock.Now()
	for _, r := range runs {
		why := "drain timed out: handed back to another executor"
		ok, err := s.store.RunsTransition(ctx, []store.RunTransition{{RunID: r.ID,
			From: []string{api.RunAssigned, api.RunRunning}, To: api.RunKilled,
			Set: store.RunFields{FinishedAt: now, Error: why}}})
		if err != nil || !ok[0] {
			continue
		}
		next := &store.Run{TriggerID: r.TriggerID, JobID: r.JobID, JobName: r.JobName, Attempt: r.Attempt + 1,
			State: api.RunPending, Origin: r.Origin, ScheduledAt: r.ScheduledAt, CreatedAt: now,
			Replay: r.Replay, ShardIndex: r.ShardIndex, ShardTotal: r.ShardTotal, Params: r.Params}
		if err := s.store.RunInsert(ctx, []*store.Run{next}); err != nil {
			s.log.Error("hand back run", LogKeyRun, r.ID, "err", err)
			continue
		}
		j, err := s.jobByID(ctx, r.JobID)
		if err != nil {
			continue
		}
		s.mu.Lock()
		js := s.stateLocked(j)
		delete(js.active, r.ID)
		js.active[next.ID] = next
		s.mu.Unlock()
		s.log.Info("run handed back", LogKeyRun, r.ID, "attempt", next.Attempt, LogKeyExecutor, r.ExecutorID)
		s.disp.EnqueueRetry(ctx, j, next, r.ExecutorID)
	}
}
