package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// holdJob is the failure workload's job whose run the victim holds.
const holdJob = "hold"

// failureTimeout bounds each wait of the failure workload.
const failureTimeout = 30 * time.Second

// handlerStart is a handler start seen by the harness.
type handlerStart struct {
	triggerID string
	attempt   int
	at        time.Time
}

// kill is one SIGKILL of a victim executor, with what was observed live.
type kill struct {
	victim   string
	victimID string
	runID    string
	at       time.Time
	lostAt   time.Time // the run's finished_at: when jobd marked it lost
	fig      FailureFigure
}

// failureWorkload runs an embedded executor (the survivor) and, s.failureReps
// times in turn, an executor process (the victim), both serving every-1s
// jobs (spread over the second) and the manual job holdJob (1 retry, no
// backoff), whose run the victim holds. Once the victim holds one it is
// killed with SIGKILL; the API is polled every 10ms until the run reads
// lost, and the survivor reports the start of its retry. After jobd stops,
// the store tells which runs were still routed to the dead executor. The
// trigger lag covers both executors: the victim writes its handler starts
// to its output, read once it is dead.
func failureWorkload(ctx context.Context, o *options, s sizes) (Result, error) {
	res := Result{Workload: workFailure, Jobs: s.failureTick + 1, Rate: s.failureTick}
	o.logf("failure: %d kills of an executor holding a run, under %d runs/s", s.failureReps, s.failureTick)
	p, err := newJobd(o, workFailure)
	if err != nil {
		return res, err
	}
	defer p.cleanup()
	if _, err := p.start(ctx); err != nil {
		return res, err
	}
	rec := &lagRecorder{}
	retries := make(chan handlerStart, 64)
	fl, err := startFleet(ctx, p, []string{"survivor"}, o.slots, func(a *executor.Agent) {
		a.Handle(handlerNoop, rec.noop)
		a.Handle(handlerHold, func(_ context.Context, r *executor.Run) error {
			hs := handlerStart{triggerID: r.TriggerID, attempt: r.Attempt, at: time.Now()}
			select {
			case retries <- hs:
			default:
			}
			return nil
		})
	})
	if err != nil {
		return res, err
	}
	defer fl.cleanup()
	if err := p.waitOnline(ctx, 1); err != nil {
		return res, err
	}
	setup := time.Now()
	noBackoff := api.Duration(0)
	specs := append(everySecondJobs("tick-", s.failureTick, setup), api.JobSpec{Name: holdJob, Group: benchGroup,
		Manual: true, Handler: handlerHold, Retries: 1, Backoff: &noBackoff, BackoffPolicy: api.BackoffFixed})
	if err := p.applyJobs(ctx, specs); err != nil {
		return res, err
	}
	res.SetupS = time.Since(setup).Seconds()

	from := time.Now().Add(s.warmup).Truncate(time.Second).Add(time.Second)
	rec.window(from, from.Add(time.Hour))
	if err := sleepUntil(ctx, from); err != nil {
		return res, err
	}
	cpu0, err := markCPU(p)
	if err != nil {
		return res, err
	}
	var kills []*kill
	for rep := range s.failureReps {
		k, err := killOne(ctx, o, p, rep, rec, retries)
		if err != nil {
			return res, fmt.Errorf("kill %d: %w", rep+1, err)
		}
		kills = append(kills, k)
		o.logf("failure: %s killed: lost after %.0fms, retry started after %.0fms", k.victim, k.fig.LostMs, k.fig.RetryStartMs)
	}
	to := time.Now().Truncate(time.Second)
	rec.window(from, to)
	cpu1, err := markCPU(p)
	if err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, startGrace); err != nil {
		return res, err
	}
	last, err := sampleProc(p.pid())
	if err != nil {
		return res, err
	}
	if err := errors.Join(fl.stop(), p.stop()); err != nil {
		return res, err
	}
	m := measurement{p: p, from: from, to: to, cpu0: cpu0, cpu1: cpu1, last: last}
	res.WindowS = to.Sub(from).Seconds()
	if err := res.fillCommon(ctx, m, rec); err != nil {
		return res, err
	}
	return res, routedAfterKills(ctx, p, kills, &res)
}

// killOne starts a victim executor, waits until it holds a run of
// holdJob, kills it and measures the time until the run is lost and until
// its retry starts on the survivor.
func killOne(ctx context.Context, o *options, p *jobdProc, rep int, rec *lagRecorder, retries <-chan handlerStart) (k *kill, err error) {
	name := "victim-" + strconv.Itoa(rep+1)
	victim, err := startChildExecutor(o, p, name)
	if err != nil {
		return nil, err
	}
	defer func() {
		_ = victim.kill9()
		victim.wait(10 * time.Second)
		if err == nil {
			err = victim.starts(rec)
		}
	}()
	if err := p.waitNamed(ctx, name); err != nil {
		return nil, err
	}
	id, err := p.executorID(ctx, name)
	if err != nil {
		return nil, err
	}
	// Let the every-1s jobs be routed to it too (round robin is per job:
	// they all take turns in step).
	if err := sleepCtx(ctx, 2*time.Second); err != nil {
		return nil, err
	}
	run, err := holdOn(ctx, p, id)
	if err != nil {
		return nil, err
	}
	k = &kill{victim: name, victimID: id, runID: run.ID, fig: FailureFigure{Executor: name}}
	k.at = time.Now()
	if err := victim.kill9(); err != nil {
		return nil, err
	}

	// The run reads lost...
	deadline := k.at.Add(failureTimeout)
	for {
		r, err := p.client.RunGet(ctx, run.ID)
		if err != nil {
			return nil, fmt.Errorf("get run %s: %w", run.ID, err)
		}
		if r.State == api.RunLost {
			k.fig.LostMs = msOf(time.Since(k.at))
			k.lostAt = r.FinishedAt.Time
			k.fig.LostJobdMs = msOf(k.lostAt.Sub(k.at))
			break
		}
		if r.State != api.RunRunning && r.State != api.RunAssigned {
			return nil, fmt.Errorf("run %s on the killed executor ended %s, want %s", run.ID, r.State, api.RunLost)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("run %s not lost within %s of the kill", run.ID, failureTimeout)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return nil, err
		}
	}
	// ...and its retry starts on the survivor.
	for {
		select {
		case hs := <-retries:
			if hs.triggerID != run.TriggerID || hs.attempt < 2 {
				continue
			}
			k.fig.RetryStartMs = msOf(hs.at.Sub(k.at))
			return k, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Until(deadline)):
			return nil, fmt.Errorf("retry of run %s not started within %s of the kill", run.ID, failureTimeout)
		}
	}
}

// holdOn triggers holdJob until one of its runs is running on executor id
// (runs routed to the survivor end at once) and returns that run.
func holdOn(ctx context.Context, p *jobdProc, id string) (*api.Run, error) {
	for range 20 {
		resp, err := p.client.JobTrigger(ctx, holdJob, api.TriggerRequest{})
		if err != nil {
			return nil, fmt.Errorf("trigger %s: %w", holdJob, err)
		}
		if len(resp.Runs) != 1 {
			return nil, fmt.Errorf("trigger %s: %d runs, want 1", holdJob, len(resp.Runs))
		}
		runID := resp.Runs[0].ID
		deadline := time.Now().Add(failureTimeout)
		for {
			r, err := p.client.RunGet(ctx, runID)
			if err != nil {
				return nil, fmt.Errorf("get run %s: %w", runID, err)
			}
			if r.State == api.RunRunning && r.ExecutorID == id {
				return r, nil
			}
			if r.State != api.RunPending && r.State != api.RunAssigned && r.State != api.RunRunning {
				break // it ran on the survivor; trigger again
			}
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("run %s still %s after %s", runID, r.State, failureTimeout)
			}
			if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
				return nil, err
			}
		}
	}
	return nil, fmt.Errorf("no run of %s was routed to executor %s in 20 triggers", holdJob, id)
}

// routedAfterKills reads from the store of the stopped jobd which runs
// were routed to each dead executor after its kill and after its run was
// marked lost.
func routedAfterKills(ctx context.Context, p *jobdProc, kills []*kill, res *Result) error {
	db, err := openSQL(p.dbPath())
	if err != nil {
		return err
	}
	defer db.Close()
	for _, k := range kills {
		n, last, err := routedTo(ctx, db, k.victimID, k.at)
		if err != nil {
			return err
		}
		all, _, err := routedTo(ctx, db, k.victimID, time.UnixMilli(0))
		if err != nil {
			return err
		}
		k.fig.RoutedBeforeKill, k.fig.RoutedAfterKill = all-n, n
		if n > 0 {
			k.fig.LastRoutedMs = ptr(msOf(last.Sub(k.at)))
		}
		if k.fig.RoutedAfterLost, _, err = routedTo(ctx, db, k.victimID, k.lostAt); err != nil {
			return err
		}
		res.Failure = append(res.Failure, k.fig)
	}
	return nil
}
