package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jobd/jobd/api"
)

// run is one assignment held by the agent, from acceptance until its result
// is delivered.
type run struct {
	asg     api.Assignment
	log     *slog.Logger
	reports *runReports
	output  *logWriter

	// ctx is cancelled with a *stopError when the run must stop (timeout,
	// kill, shutdown); handlers and http jobs run under it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	// Guarded by Agent.mu.
	executing bool // it holds a slot
	finished  bool // its execution ended; its reports may still be in flight
	pgid      int  // the process group it runs, while it is not waited for; 0 if none
}

// stopError is the cause of a stopped run: the state to report and why.
type stopError struct {
	state  string
	reason string
}

func (e *stopError) Error() string { return e.reason }

// requestStop stops the run with a final state; the first request wins.
func (r *run) requestStop(state, reason string) {
	r.cancel(&stopError{state: state, reason: reason})
}

// stopped returns the stop request, or nil when none was made.
func (r *run) stopped() *stopError {
	var se *stopError
	if errors.As(context.Cause(r.ctx), &se) {
		return se
	}
	return nil
}

// reportStart reports that the run's work began.
func (r *run) reportStart() {
	r.reports.add(api.Report{Type: api.ReportStart, At: api.NewTime(time.Now())})
	// Debug: at thousands of runs a second a line per run costs more than
	// the runs; failures are logged at Info when they end.
	r.log.Debug("run started")
}

// outcome is how an execution ended.
type outcome struct {
	state    string // api.RunSucceeded, RunFailed, RunTimedOut or RunKilled
	exitCode *int
	err      error
}

func succeeded() outcome { return outcome{state: api.RunSucceeded} }

func failed(err error) outcome { return outcome{state: api.RunFailed, err: err} }

// stoppedOutcome is the outcome of a run ended by a stop request.
func stoppedOutcome(se *stopError) outcome {
	return outcome{state: se.state, err: se}
}

// accept takes an assignment and starts its run; it is called by the poll
// loop only.
func (a *Agent) accept(asg api.Assignment) {
	if asg.RunID == "" {
		a.log.Warn("assignment without a run id; ignoring it", logKeyJob, asg.Job)
		return
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	r := &run{
		asg:    asg,
		log:    a.log.With(logKeyRun, asg.RunID, logKeyJob, asg.Job, logKeyAttempt, asg.Attempt),
		ctx:    ctx,
		cancel: cancel,
	}
	r.reports = a.reports.newRun(r.log, asg.RunID, asg.Attempt)
	r.output = newLogWriter(r.reports)

	a.mu.Lock()
	if _, dup := a.runs[asg.RunID]; dup {
		a.mu.Unlock()
		cancel(nil)
		r.log.Warn("run assigned twice; ignoring the repeat")
		return
	}
	a.runs[asg.RunID] = r
	a.mu.Unlock()

	a.wg.Go(func() { a.runLifecycle(r) })
}

// runLifecycle executes a run, reports its result and forgets it once every
// report is delivered.
func (a *Agent) runLifecycle(r *run) {
	out := a.execute(r)

	a.mu.Lock()
	r.finished = true
	a.mu.Unlock()

	r.output.Close()
	rep := api.Report{Type: api.ReportResult, At: api.NewTime(time.Now()), State: out.state, ExitCode: out.exitCode}
	if out.err != nil {
		rep.Error = out.err.Error()
	}
	attrs := []any{logKeyState, out.state}
	if out.exitCode != nil {
		attrs = append(attrs, "exit_code", *out.exitCode)
	}
	if out.err != nil {
		attrs = append(attrs, "err", out.err)
	}
	level := slog.LevelInfo
	if out.state == api.RunSucceeded {
		level = slog.LevelDebug
	}
	r.log.Log(context.Background(), level, "run finished", attrs...)
	r.reports.add(rep)
	r.reports.close()
	<-r.reports.done
	r.cancel(nil)

	a.mu.Lock()
	delete(a.runs, r.asg.RunID)
	close(a.runsChanged)
	a.runsChanged = make(chan struct{})
	a.mu.Unlock()
}

// execute waits for a slot, then runs the assignment by its kind under its
// timeout.
func (a *Agent) execute(r *run) outcome {
	select {
	case a.slots <- struct{}{}:
	case <-r.ctx.Done():
		return stoppedOutcome(r.stopped())
	}
	defer func() { <-a.slots }()
	a.mu.Lock()
	r.executing = true
	a.mu.Unlock()
	if se := r.stopped(); se != nil {
		return stoppedOutcome(se)
	}

	if d := r.asg.Timeout.D(); d > 0 {
		t := time.AfterFunc(d, func() {
			r.requestStop(api.RunTimedOut, fmt.Sprintf("timed out after %s", d))
		})
		defer t.Stop()
	}
	switch r.asg.Kind {
	case api.KindCommand:
		return a.runProcess(r, r.asg.Command)
	case api.KindScript:
		return a.runScript(r)
	case api.KindHTTP:
		return a.runHTTP(r)
	case api.KindHandler:
		return a.runHandler(r)
	default:
		return failed(fmt.Errorf("job kind %q is not supported by this executor", r.asg.Kind))
	}
}
