package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
)

// Log attribute keys.
const (
	logKeyRun      = "run"
	logKeyJob      = "job"
	logKeyAttempt  = "attempt"
	logKeyExecutor = "executor"
	logKeyState    = "state"
)

// flushTimeout bounds how long a stopping agent still tries to deliver the
// reports of runs it killed at the end of ShutdownGrace, and then the
// reports in its spool.
const flushTimeout = 10 * time.Second

// deregisterTimeout bounds how long a stopping agent tries to deregister:
// jobd finds an executor gone by itself, so a jobd that is down does not
// hold up the stop for long.
const deregisterTimeout = 5 * time.Second

// drainRequestTimeout bounds the drain request a stopping agent sends
// first, so that jobd stops routing to it: a jobd that is down does not
// hold up the stop.
const drainRequestTimeout = 3 * time.Second

// hardStopTimeout bounds how long an agent stopped hard (Abort) still
// waits for the results of the runs it killed, and then to deregister.
const hardStopTimeout = 2 * time.Second

// Agent is an executor: it registers with jobd, long-polls it for runs,
// executes them and reports their start, output and result. Create it with
// New, add handlers with Handle, then call Run.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	host string
	tr   *transport
	// reports queues the reports of every run and sends them in batches.
	reports *reportQueue
	// spool keeps on disk the reports no jobd takes; nil without a
	// StateDir.
	spool *spoolReporter
	// httpJobs performs http jobs; it is separate from the jobd transport so
	// the token never leaves for a job's URL.
	httpJobs *http.Client
	// environFunc returns the environment processes inherit (os.Environ).
	environFunc func() []string

	handlersMu sync.RWMutex
	handlers   map[string]HandlerFunc

	// slots holds one token per executing run.
	slots chan struct{}

	started atomic.Bool

	// hardCtx is cancelled by Abort: stop at once.
	hardCtx context.Context
	abort   context.CancelFunc

	mu        sync.Mutex
	id        string        // executor id; empty when not registered
	idChanged chan struct{} // closed and replaced when id changes
	heartbeat time.Duration // jobd's heartbeat interval
	runs      map[string]*run
	wg        sync.WaitGroup // one per run in runs
	// runsChanged is closed and replaced when a run leaves runs.
	runsChanged chan struct{}
	// draining: start no new run, and end the poll loop once every run
	// ended and every report is delivered. Set by jobd's drain command
	// (cleared by undrain) and when Run's context is done.
	draining bool
	// stopping: Run's context is done; undrain is ignored.
	stopping bool
	// drainLeft is the runs left last logged while draining; -1 for none.
	drainLeft int
}

// New checks cfg, applies its defaults and returns an Agent ready to Run.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("executor config: %w", err)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("executor config: %w", err)
	}
	host, err := os.Hostname()
	if err != nil {
		host = cfg.Name
	}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("state dir: %w", err)
		}
	}
	a := &Agent{
		cfg:         cfg,
		log:         cfg.Logger.With("group", cfg.Group, "name", cfg.Name),
		host:        host,
		tr:          newTransport(cfg.Servers, cfg.Token, cfg.HTTPClient),
		httpJobs:    &http.Client{},
		environFunc: os.Environ,
		handlers:    make(map[string]HandlerFunc),
		slots:       make(chan struct{}, cfg.Slots),
		runs:        make(map[string]*run),
		idChanged:   make(chan struct{}),
		runsChanged: make(chan struct{}),
		drainLeft:   -1,
	}
	a.hardCtx, a.abort = context.WithCancel(context.Background())
	var rep reporter = &httpReporter{tr: a.tr, log: a.log, executorIDFunc: a.waitExecutorID}
	if cfg.StateDir != "" {
		sp := newSpool(cfg.StateDir, cfg.SpoolMaxBytes, a.log)
		a.spool = newSpoolReporter(sp, a.tr, a.log, a.executorID, a.waitExecutorID)
		rep = a.spool
	}
	a.reports = newReportQueue(rep, a.log)
	return a, nil
}

// Run registers with jobd and executes the runs it hands out until ctx is
// done, or until jobd's drain command is carried out. When ctx is done it
// drains by itself: it asks jobd to stop routing to it (POST
// /api/v1/executor/{id}/drain), starts no new run but goes on polling (so
// heartbeats and kill commands still work), waits up to
// Config.ShutdownGrace for running runs to finish (killing those that do
// not), delivers their reports, deregisters and returns nil. Abort cuts
// that short. With a StateDir, Run first opens the report spool (an error
// when another agent uses it) and sends what an earlier agent left in it
// before any newer report. It returns an error when jobd refuses the
// registration for good (a refused token, an invalid group). Run may be
// called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("executor: Run called twice")
	}
	// Abort stops polling too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(a.hardCtx, cancel)()

	resendDone := make(chan struct{})
	// Reports outlive ctx until the final flush.
	resendCtx, cancelResend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelResend()
	if a.spool != nil {
		if err := a.spool.spool.open(); err != nil {
			return fmt.Errorf("open report spool: %w", err)
		}
		defer a.spool.spool.close()
		go func() {
			defer close(resendDone)
			a.spool.resend(resendCtx)
		}()
	} else {
		close(resendDone)
	}
	reportCtx, cancelReports := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReports()
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		a.reports.loop(reportCtx)
	}()

	attrs := []any{"servers", len(a.cfg.Servers), "slots", a.cfg.Slots}
	if a.spool != nil {
		attrs = append(attrs, "spool", a.spool.spool.dir)
	}
	a.log.Info("executor starting", attrs...)
	err := a.pollLoop(ctx)
	stopPolling := func() {}
	switch {
	case errors.Is(err, errDrained):
		err = nil
		a.log.Info("drained: every run ended and every report is delivered")
	case err == nil:
		// Stopping: jobd first stops routing here, then the agent drains
		// while it goes on polling, until its runs ended.
		a.mu.Lock()
		a.stopping, a.draining, a.drainLeft = true, true, -1
		a.mu.Unlock()
		a.requestDrain()
		pollCtx, cancelPoll := context.WithCancel(a.hardCtx)
		polling := make(chan struct{})
		go func() {
			defer close(polling)
			_ = a.pollLoop(pollCtx)
		}()
		stopPolling = func() {
			cancelPoll()
			<-polling
		}
	}
	a.shutdown(cancelReports, reportsDone)
	delivered := a.flushSpool()
	stopPolling()
	cancelResend()
	<-resendDone
	if delivered {
		a.deregister()
	}
	return err
}

// Abort stops the agent hard: Run's context is cancelled if it is not yet,
// every run is killed at once (its process group gets SIGTERM, then
// SIGKILL after Config.KillGrace; a handler's context is cancelled), and
// Run delivers what reports it can within about two seconds, spools the
// rest when it has a StateDir, and returns. `jobd executor` calls it on a
// second SIGTERM or SIGINT. It may be called at any time, more than once.
func (a *Agent) Abort() { a.abort() }

// aborted reports whether Abort was called.
func (a *Agent) aborted() bool { return a.hardCtx.Err() != nil }

// requestDrain asks jobd to stop routing runs to the executor, which is
// stopping: jobd hands back what it has not delivered yet, and kills and
// requeues what still runs after ShutdownGrace. Errors are only logged:
// jobd may be down.
func (a *Agent) requestDrain() {
	id := a.executorID()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(a.hardCtx, drainRequestTimeout)
	defer cancel()
	req := api.DrainRequest{Timeout: api.Duration(a.cfg.ShutdownGrace), OnTimeout: api.DrainRequeue}
	if err := a.tr.post(ctx, "/executor/"+url.PathEscape(id)+"/drain", &req, nil); err != nil {
		a.log.Warn("executor stopping: could not tell jobd to drain it; going on", logKeyExecutor, id, "err", err)
		return
	}
	a.log.Info("executor stopping: jobd routes no more runs here", logKeyExecutor, id, "runs", a.heldCount(), "grace", a.cfg.ShutdownGrace)
}

// shutdown drains the agent: it waits for the runs, kills those still going
// after the grace (or at once on Abort) and flushes their reports. A run
// ends once its reports are acknowledged (by jobd, or by the spool), so
// when every run ended the report queue is empty.
func (a *Agent) shutdown(cancelReports context.CancelFunc, reportsDone <-chan struct{}) {
	a.stopQueued()
	allDone := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(allDone)
	}()
	hard := a.hardCtx.Done()
	stopHard := func() {
		a.log.Warn("executor stopping hard: killing runs", "runs", a.heldCount())
		a.stopAll(api.RunKilled, "executor stopping: stopped hard")
		t := time.NewTimer(hardStopTimeout)
		defer t.Stop()
		select {
		case <-allDone:
		case <-t.C:
			a.killGroups()
			a.log.Error("stopping hard: leaving runs and reports undelivered", "runs", a.heldCount())
		}
	}

	if n := a.heldCount(); n > 0 {
		a.log.Info("executor stopping: waiting for runs", "runs", n, "grace", a.cfg.ShutdownGrace)
	}
	grace := time.NewTimer(a.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-allDone:
	case <-hard:
		stopHard()
	case <-grace.C:
		a.log.Warn("shutdown grace expired: killing runs", "runs", a.heldCount())
		a.stopAll(api.RunKilled, "executor stopping: shutdown grace expired")
		flush := time.NewTimer(a.cfg.KillGrace + flushTimeout)
		defer flush.Stop()
		select {
		case <-allDone:
		case <-hard:
			stopHard()
		case <-flush.C:
			a.log.Error("dropping undelivered reports: jobd did not acknowledge them in time")
			cancelReports()
			select {
			case <-allDone:
			case <-hard:
				a.killGroups()
			case <-time.After(a.cfg.KillGrace):
				a.log.Error("runs still not finished; leaving them")
			}
		}
	}
	cancelReports()
	<-reportsDone
}

// flushSpool gives the resender up to flushTimeout to deliver the spool,
// and reports whether every report is delivered. Reports left in the spool
// are sent by the next agent on the same StateDir; until then the agent
// does not deregister, which would make jobd end their runs as lost.
func (a *Agent) flushSpool() bool {
	if a.spool == nil || a.spool.spool.empty() {
		return true
	}
	if a.executorID() != "" && !a.aborted() && a.spool.flush(flushTimeout, a.hardCtx.Done()) {
		return true
	}
	n, size := a.spool.spool.stats()
	a.log.Warn("reports left in the spool; the executor sends them when it starts again with the same state dir",
		"reports", n, "bytes", size, "dir", a.spool.spool.dir)
	return false
}

// deregister tells jobd the executor left, retrying briefly.
func (a *Agent) deregister() {
	id := a.executorID()
	if id == "" {
		return
	}
	timeout := deregisterTimeout
	if a.aborted() {
		timeout = hardStopTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	bo := newBackoff()
	for {
		err := a.tr.post(ctx, "/executor/"+url.PathEscape(id)+"/deregister", struct{}{}, nil)
		if err == nil || isNotFound(err) {
			a.log.Info("executor deregistered", logKeyExecutor, id)
			return
		}
		if !isRetryable(err) || !sleepCtx(ctx, bo.delay()) {
			a.log.Warn("deregister", logKeyExecutor, id, "err", err)
			return
		}
	}
}

func (a *Agent) executorID() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.id
}

// waitExecutorID returns the executor id, waiting while the agent is not
// registered; it fails only when ctx is done.
func (a *Agent) waitExecutorID(ctx context.Context) (string, error) {
	for {
		a.mu.Lock()
		id, changed := a.id, a.idChanged
		a.mu.Unlock()
		if id != "" {
			return id, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
}

// heldIDs returns the ids of every run the agent holds: queued, executing,
// or finished with reports still to deliver. jobd must not consider any of
// them lost.
//
// The runs whose reports wait in the spool are over for the agent (they
// hold no slot and are not waited for on shutdown), but they are listed
// until jobd has their result: jobd ends a run an executor stops listing
// as lost.
func (a *Agent) heldIDs() []string {
	var ids []string
	if a.spool != nil {
		ids = a.spool.spool.heldRuns()
	}
	a.mu.Lock()
	for id := range a.runs {
		ids = append(ids, id)
	}
	a.mu.Unlock()
	if ids == nil {
		return []string{}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func (a *Agent) heldCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.runs)
}

// freeSlots is how many more runs the agent accepts: slots minus the runs
// queued or executing, and none while it drains.
func (a *Agent) freeSlots() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return 0
	}
	busy := 0
	for _, r := range a.runs {
		if !r.finished {
			busy++
		}
	}
	return max(0, a.cfg.Slots-busy)
}

// stopRun asks one run to stop; it reports whether the agent holds it.
func (a *Agent) stopRun(id, state, reason string) bool {
	a.mu.Lock()
	r, ok := a.runs[id]
	a.mu.Unlock()
	if ok {
		r.requestStop(state, reason)
	}
	return ok
}

// stopAll asks every run to stop.
func (a *Agent) stopAll(state, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runs {
		r.requestStop(state, reason)
	}
}

// stopQueued fails the runs still waiting for a slot: a stopping agent
// starts nothing new.
func (a *Agent) stopQueued() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runs {
		if !r.executing && !r.finished {
			r.requestStop(api.RunFailed, "executor stopping before the run started")
		}
	}
}
