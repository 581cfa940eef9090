package daemon

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

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

// Monitor checks executor health every quarter of the heartbeat (or of
// LostAfter) until ctx ends: see check. It also runs the dispatch loop
// (see Ended).
func (d *Dispatcher) Monitor(ctx context.Context) {
	tick := time.NewTicker(min(d.hb/4, d.LostAfter/7))
	defer tick.Stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		d.dispatchLoop(ctx)
	}()
	d.looping.Store(true)
	defer func() {
		d.looping.Store(false)
		wg.Wait()
	}()
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
		d.pruneJobStateLocked(now)
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
