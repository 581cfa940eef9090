package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jobd/jobd/executor"
)

// benchGroup is the executor group of every executor and job.
const benchGroup = "bench"

// Handler names served by the executors.
const (
	handlerNoop = "noop" // returns at once
	handlerHold = "hold" // holds the run until the executor stops (failure)
)

// fleet is a set of SDK executors embedded in the harness.
type fleet struct {
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	logf     *os.File
	stopOnce sync.Once
	stopErr  error

	mu     sync.Mutex
	exited map[string]time.Time // when each agent's Run returned
	errs   []error
}

// startFleet starts one embedded executor per name, connected to p; setup
// registers its handlers.
func startFleet(ctx context.Context, p *jobdProc, names []string, slots int, setup func(a *executor.Agent)) (*fleet, error) {
	logf, err := os.OpenFile(filepath.Join(p.dir, "executors.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open executors log: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	f := &fleet{cancel: cancel, logf: logf, exited: map[string]time.Time{}}
	for _, name := range names {
		a, err := executor.New(executor.Config{
			Servers: []string{p.url()}, Group: benchGroup, Name: name, Slots: slots,
			Logger:        slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelWarn})).With("executor", name),
			KillGrace:     time.Second,
			ShutdownGrace: 5 * time.Second,
		})
		if err != nil {
			f.cleanup()
			return nil, fmt.Errorf("executor %s: %w", name, err)
		}
		setup(a)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			err := a.Run(ctx)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.exited[name] = time.Now()
			if err != nil {
				f.errs = append(f.errs, fmt.Errorf("executor %s: %w", name, err))
			}
		}()
	}
	return f, nil
}

// exitedAt returns when the agent called name returned from Run.
func (f *fleet) exitedAt(name string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.exited[name]
	return t, ok
}

// stop stops every agent (they finish their runs and deregister) and
// returns their errors. It waits at most 30s, and only once: later calls
// return the same.
func (f *fleet) stop() error {
	f.stopOnce.Do(func() {
		f.cancel()
		done := make(chan struct{})
		go func() { f.wg.Wait(); close(done) }()
		var err error
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			err = errors.New("executors did not stop within 30s")
		}
		f.logf.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		f.stopErr = errors.Join(append(f.errs, err)...)
	})
	return f.stopErr
}

// cleanup stops the agents, for a deferred call: stop has reported any
// error when it mattered.
func (f *fleet) cleanup() { _ = f.stop() }

// names returns n executor names: prefix-0, prefix-1...
func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	return out
}

// lagRecorder collects trigger lags measured in handlers: the time from
// the trigger's scheduled time to the handler's start.
type lagRecorder struct {
	mu      sync.Mutex
	from    time.Time // lags of triggers scheduled in [from, until) count
	until   time.Time
	lags    []lagSample
	starts  int
	watchAt time.Time      // first start at or after watchAt is sent on
	watch   chan time.Time // ...watch, once
}

// noop is a handler that records its lag and returns.
func (l *lagRecorder) noop(_ context.Context, r *executor.Run) error {
	l.record(r)
	return nil
}

func (l *lagRecorder) record(r *executor.Run) {
	l.add(r.ScheduledAt, time.Now(), r.Attempt)
}

// add records a handler start at at of a run scheduled at scheduled.
func (l *lagRecorder) add(scheduled, at time.Time, attempt int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.starts++
	if l.watch != nil && !at.Before(l.watchAt) {
		l.watch <- at
		l.watch = nil
	}
	// A retry has the scheduled time of its first attempt.
	if attempt != 1 || scheduled.Before(l.from) || !scheduled.Before(l.until) {
		return
	}
	l.lags = append(l.lags, lagSample{scheduled: scheduled, lag: at.Sub(scheduled)})
}

// lagSample is the lag of one handler start.
type lagSample struct {
	scheduled time.Time
	lag       time.Duration
}

// window sets the scheduled times whose lags count; it may be narrowed
// later (result applies the last one).
func (l *lagRecorder) window(from, until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.from, l.until = from, until
}

// firstStartAfter returns a channel that receives the time of the first
// handler start at or after t.
func (l *lagRecorder) firstStartAfter(t time.Time) <-chan time.Time {
	ch := make(chan time.Time, 1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.watchAt, l.watch = t, ch
	return ch
}

// result returns the lags of the window, how many there were and how
// many handler starts there were in all.
func (l *lagRecorder) result() (lag *Latency, inWindow, total int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ds []time.Duration
	for _, s := range l.lags {
		if !s.scheduled.Before(l.from) && s.scheduled.Before(l.until) {
			ds = append(ds, s.lag)
		}
	}
	return latencyOf(ds), len(ds), l.starts
}

// childExecutorArg, as the first argument, makes this program an executor
// process (see childExecutorMain) instead of the harness.
const childExecutorArg = "__bench-executor"

// startLine starts the line a child executor writes to its output for
// every handler start, followed by the run's scheduled time and the
// start, in unix nanoseconds, and its attempt.
const startLine = "bench-start"

// childExecutor is an executor in a process of its own, which the failure
// workload kills with SIGKILL.
type childExecutor struct {
	name    string
	logPath string // its output
	cmd     *exec.Cmd
	done    chan struct{}
}

// startChildExecutor re-executes the harness as an SDK executor called
// name, serving handlerNoop and handlerHold (which holds runs).
func startChildExecutor(o *options, p *jobdProc, name string) (*childExecutor, error) {
	logPath := filepath.Join(p.dir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command(o.self, childExecutorArg, "-server", p.url(), "-name", name, "-slots", strconv.Itoa(o.slots))
	cmd.Env = cleanEnv()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start executor %s: %w", name, err)
	}
	c := &childExecutor{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

// kill9 sends SIGKILL, as a crash would; it does not wait.
func (c *childExecutor) kill9() error {
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill executor %s: %w", c.name, err)
	}
	return nil
}

// wait waits for the process to end, killing it after timeout.
func (c *childExecutor) wait(timeout time.Duration) {
	select {
	case <-c.done:
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// starts feeds rec with the handler starts the (ended) process wrote.
func (c *childExecutor) starts(rec *lagRecorder) error {
	f, err := os.Open(c.logPath)
	if err != nil {
		return fmt.Errorf("read handler starts of %s: %w", c.name, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var sched, at int64
		var attempt int
		if n, _ := fmt.Sscanf(sc.Text(), startLine+" %d %d %d", &sched, &at, &attempt); n == 3 {
			rec.add(time.Unix(0, sched), time.Unix(0, at), attempt)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read handler starts of %s: %w", c.name, err)
	}
	return nil
}

// childExecutorMain runs an SDK executor until SIGTERM or SIGINT; it is the
// program of a childExecutor. Its noop handler writes a startLine to
// stdout for each start. It returns the exit code.
func childExecutorMain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(childExecutorArg, flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "", "jobd URL")
	name := fs.String("name", "", "executor name")
	slots := fs.Int("slots", 16, "slots")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := executor.New(executor.Config{
		Servers: []string{*server}, Group: benchGroup, Name: *name, Slots: *slots,
		Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		fmt.Fprintln(stderr, "bench executor:", err)
		return 2
	}
	a.Handle(handlerNoop, func(_ context.Context, r *executor.Run) error {
		// One write per line: lines of concurrent handlers do not mix.
		_, err := fmt.Fprintf(stdout, "%s %d %d %d\n", startLine, r.ScheduledAt.UnixNano(), time.Now().UnixNano(), r.Attempt)
		return err
	})
	a.Handle(handlerHold, func(ctx context.Context, _ *executor.Run) error {
		<-ctx.Done()
		return context.Cause(ctx)
	})
	if err := a.Run(ctx); err != nil {
		fmt.Fprintln(stderr, "bench executor:", err)
		return 1
	}
	return 0
}
