package jobctl

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// drainOnTimeout are the values of drain --on-timeout.
var drainOnTimeout = []string{api.DrainRequeue, api.DrainFinish}

// Defaults of drain --wait.
const (
	// drainPollInterval is how often --wait asks jobd how the drain goes.
	drainPollInterval = 500 * time.Millisecond
	// drainTimeoutGrace is how long --wait keeps waiting past the drain's
	// deadline for the executor to hand its runs back (kill grace included),
	// flush its reports and report drained, before it calls the drain timed
	// out.
	drainTimeoutGrace = 15 * time.Second
	// drainGiveUp is how long jobd may stay unreachable during --wait (a
	// restart of jobd) before jobctl gives up.
	drainGiveUp = 30 * time.Second
)

func executorSubject(err error, id string) error {
	return withSubject(err, fmt.Sprintf("executor %q", id), id)
}

type executorDrainOptions struct {
	baseOptions
	ID        string
	Wait      bool
	Timeout   time.Duration
	OnTimeout string

	// Interval is how often --wait polls the executor.
	Interval time.Duration
	// TimeoutGrace is how long --wait waits past the drain's deadline.
	TimeoutGrace time.Duration
	// GiveUp is how long jobd may stay unreachable during --wait.
	GiveUp time.Duration
}

func newCmdExecutorDrain(f *Factory, runF func(*executorDrainOptions) error) *cobra.Command {
	opts := &executorDrainOptions{Interval: drainPollInterval, TimeoutGrace: drainTimeoutGrace, GiveUp: drainGiveUp}
	cmd := &cobra.Command{
		Use:   "drain ID [--wait] [--timeout D] [--on-timeout requeue|finish]",
		Short: "Stop routing runs to an executor and let it finish its runs",
		Long: `Drain an executor: jobd stops routing runs to it at once and tells it to
drain; it finishes its running runs, flushes its reports, deregisters and
reports drained. With --timeout, the runs still going at the timeout are
handed back and queued again for another executor (--on-timeout requeue,
the default), or left to finish (--on-timeout finish). 'jobctl executor
undrain ID' reverses a drain.

Without --wait, jobctl returns once jobd has started the drain. With
--wait, it shows the runs left until the executor is drained (exit 0); it
exits 1 if the executor goes offline or stops draining, or is still
draining well after the timeout, and 4 if jobd stays unreachable for 30s.
Ctrl-C stops waiting (exit 1); the drain goes on.

An unknown executor exits 3; one that is offline or already drained exits 1.
-o json prints the executor (with --wait, as it was when the wait ended).`,
		Example: `  jobctl executor drain e7f3 --wait
  jobctl executor drain e7f3 --wait --timeout 10m --on-timeout requeue`,
		Args: exactArgs(1, "one executor ID"),
		ValidArgsFunction: f.executorIDArgWhere(func(e api.Executor) bool {
			return e.State != api.ExecutorOffline && e.State != api.ExecutorDrained
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.ID = args[0]
			if opts.Timeout < 0 {
				return usageErrorf("--timeout must not be negative")
			}
			if opts.OnTimeout != "" && opts.Timeout == 0 {
				return usageErrorf("--on-timeout goes with --timeout")
			}
			if runF != nil {
				return runF(opts)
			}
			return runExecutorDrain(opts)
		},
	}
	fs := cmd.Flags()
	fs.BoolVar(&opts.Wait, "wait", false, "wait until the executor is drained, showing the runs left")
	fs.DurationVar(&opts.Timeout, "timeout", 0, "end the drain after `DURATION`, see --on-timeout (default: no timeout)")
	enumFlag(cmd, fs, &opts.OnTimeout, "on-timeout", "", "", drainOnTimeout, "what happens to runs still going at the timeout (default requeue)")
	return cmd
}

func runExecutorDrain(opts *executorDrainOptions) error {
	req := api.DrainRequest{Timeout: api.Duration(opts.Timeout), OnTimeout: opts.OnTimeout}
	e, err := opts.Client.ExecutorDrain(opts.Ctx, opts.ID, req)
	if err != nil {
		return executorSubject(err, opts.ID)
	}
	p := opts.Printer
	if !opts.Wait {
		if p.structured() {
			return p.encode(e)
		}
		return p.linef("%s", drainStartText(e))
	}
	return waitDrain(opts, e)
}

// waitDrain polls the executor e until its drain ends.
func waitDrain(opts *executorDrainOptions, e *api.Executor) error {
	ctx, p := opts.Ctx, opts.Printer
	// Human output goes to stdout, updated in place on a terminal; with -o
	// json|yaml stdout holds the executor alone, and progress goes to
	// stderr one line per change.
	prog := &drainProgressWriter{w: opts.IO.Out, tty: opts.IO.IsTTY}
	if p.structured() {
		prog = &drainProgressWriter{w: opts.IO.ErrOut}
	}
	start := time.Now()
	prog.start(e)

	// end finishes the progress and, with -o json|yaml, prints e as it
	// was last seen; then it returns err.
	end := func(err error) error {
		prog.finish()
		if p.structured() {
			if encErr := p.encode(e); encErr != nil && err == nil {
				return encErr
			}
		}
		return err
	}
	var (
		lostAt  time.Time // when jobd stopped answering; zero while it answers
		lastErr error
	)
	for {
		now := time.Now()
		name := fmt.Sprintf("executor %s (%s)", printable(e.Name), e.ID)
		deadline := drainDeadline(e, start, opts.Timeout)
		switch e.State {
		case api.ExecutorDrained:
			if p.structured() {
				return end(nil)
			}
			prog.finish()
			return p.linef("%s is drained (waited %s)", name, textfmt.Duration(now.Sub(start)))
		case api.ExecutorDraining, api.ExecutorSuspect:
			if !deadline.IsZero() && now.After(deadline.Add(opts.TimeoutGrace)) {
				then := "its runs left were not handed back"
				if e.Drain != nil && e.Drain.OnTimeout == api.DrainFinish {
					then = "its runs left may still finish"
				}
				return end(fmt.Errorf("the drain of %s timed out at %s with %s left; it is still %s and %s",
					name, p.time(api.NewTime(deadline)), runsText(e.RunsLeft()), e.State, then))
			}
		case api.ExecutorOffline:
			return end(fmt.Errorf("%s went offline with %s left before it drained", name, runsText(e.RunsLeft())))
		case api.ExecutorOnline:
			return end(fmt.Errorf("%s is online again: its drain was undone", name))
		default:
			return end(fmt.Errorf("%s is %s: it stopped draining", name, e.State))
		}
		prog.show(e, now, deadline)

		if !sleepCtx(ctx, opts.Interval) {
			return stoppedWaiting(prog, e)
		}
		got, err := opts.Client.ExecutorGet(ctx, opts.ID)
		if ctx.Err() != nil {
			return stoppedWaiting(prog, e)
		}
		if err == nil {
			e, lostAt = got, time.Time{}
			continue
		}
		if !transient(err) { // 404: it is gone; 403...
			prog.finish()
			return executorSubject(err, opts.ID)
		}
		lastErr = err
		if lostAt.IsZero() {
			lostAt = time.Now()
		}
		if time.Since(lostAt) >= opts.GiveUp {
			prog.finish()
			var ae *api.Error
			var ue *api.UnreachableError
			switch {
			case errors.As(lastErr, &ae): // jobd answers, with 5xx
			case !errors.As(lastErr, &ue):
				lastErr = &api.UnreachableError{Target: opts.Client.Target(), Err: lastErr}
			}
			return fmt.Errorf("lost jobd for %s while waiting for executor %s to drain: %w",
				opts.GiveUp, printable(e.Name), lastErr)
		}
	}
}

// stoppedWaiting is the error of a wait interrupted by Ctrl-C. It does not
// wrap context.Canceled: the message says what goes on.
func stoppedWaiting(prog *drainProgressWriter, e *api.Executor) error {
	prog.finish()
	return fmt.Errorf("stopped waiting; the drain goes on (executor %s: %s left)", printable(e.Name), runsText(e.RunsLeft()))
}

// drainDeadline is when the drain of e times out: the deadline jobd
// reports, else start plus the --timeout asked for, else zero (none).
func drainDeadline(e *api.Executor, start time.Time, timeout time.Duration) time.Time {
	if e.Drain != nil && !e.Drain.Deadline.IsZero() {
		return e.Drain.Deadline.Time
	}
	if timeout > 0 {
		return start.Add(timeout)
	}
	return time.Time{}
}

// drainStartText is what drain prints once jobd started the drain.
func drainStartText(e *api.Executor) string {
	if e.State == api.ExecutorDrained {
		return fmt.Sprintf("executor %s (%s) is drained", printable(e.Name), e.ID)
	}
	return fmt.Sprintf("draining executor %s (%s): %s left", printable(e.Name), e.ID, runsText(e.RunsLeft()))
}

func runsText(n int) string {
	if n == 1 {
		return "1 run"
	}
	return fmt.Sprintf("%d runs", n)
}

// drainProgressWriter shows how a drain goes: on a terminal one line
// rewritten in place, elsewhere one line per change of state or runs left.
type drainProgressWriter struct {
	w    io.Writer
	tty  bool
	last string // state and runs left of the last line written
	open bool   // a line is shown on the terminal, not ended
}

func progressKey(e *api.Executor) string { return fmt.Sprintf("%s/%d", e.State, e.RunsLeft()) }

// start writes the first line, as drain without --wait does.
func (d *drainProgressWriter) start(e *api.Executor) {
	d.last = progressKey(e)
	_, _ = fmt.Fprintln(d.w, drainStartText(e))
}

// show writes the progress of e at now.
func (d *drainProgressWriter) show(e *api.Executor, now, deadline time.Time) {
	key := progressKey(e)
	if !d.tty && key == d.last {
		return
	}
	d.last = key
	line := fmt.Sprintf("draining %s: %s left", printable(e.Name), runsText(e.RunsLeft()))
	if !deadline.IsZero() {
		if left := deadline.Sub(now); left >= 0 {
			line += ", " + textfmt.Duration(left.Round(time.Second)) + " left"
		} else {
			line += ", timeout passed " + textfmt.Duration((-left).Round(time.Second)) + " ago"
		}
	}
	if e.State == api.ExecutorSuspect {
		line += " (suspect: its connection dropped)"
	}
	if d.tty {
		_, _ = io.WriteString(d.w, "\r\x1b[K"+line)
		d.open = true
		return
	}
	_, _ = fmt.Fprintln(d.w, line)
}

// finish clears the line shown on a terminal.
func (d *drainProgressWriter) finish() {
	if d.open {
		_, _ = io.WriteString(d.w, "\r\x1b[K")
		d.open = false
	}
}

type executorUndrainOptions struct {
	baseOptions
	ID string
}

func newCmdExecutorUndrain(f *Factory, runF func(*executorUndrainOptions) error) *cobra.Command {
	opts := &executorUndrainOptions{}
	return &cobra.Command{
		Use:   "undrain ID",
		Short: "End the drain of an executor so that it gets runs again",
		Long: `End the drain of an executor: it is online again and jobd routes runs to
it. An executor that is not draining exits 1; an unknown one exits 3.`,
		Args: exactArgs(1, "one executor ID"),
		ValidArgsFunction: f.executorIDArgWhere(func(e api.Executor) bool {
			return e.State == api.ExecutorDraining
		}),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runExecutorUndrain(opts)
		},
	}
}

func runExecutorUndrain(opts *executorUndrainOptions) error {
	e, err := opts.Client.ExecutorUndrain(opts.Ctx, opts.ID)
	if err != nil {
		return executorSubject(err, opts.ID)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(e)
	}
	if e.State == api.ExecutorOnline {
		return p.linef("executor %s is online again", printable(e.Name))
	}
	return p.linef("executor %s is no longer draining; it is %s", printable(e.Name), e.State)
}
