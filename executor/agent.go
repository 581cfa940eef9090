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

	mu        sync.Mutex
	id        string        // executor id; empty when not registered
	idChanged chan struct{} // closed and replaced when id changes
	heartbeat time.Duration // jobd's heartbeat interval
	runs      map[string]*run
	wg        sync.WaitGroup // one per run in runs
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
	}
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
// done. Then it stops polling, waits up to Config.ShutdownGrace for running
// runs to finish (killing those that do not), delivers their reports,
// deregisters and returns nil. With a StateDir, Run first opens the report
// spool (an error when another agent uses it) and sends what an earlier
// agent left in it before any newer report. It returns an error when jobd
// refuses the registration for good (a refused token, an invalid group).
// Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("executor: Run called twice")
	}
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
	a.shutdown(cancelReports, reportsDone)
	delivered := a.flushSpool()
	cancelResend()
	<-resendDone
	if delivered {
		a.deregister()
	}
	return err
}

// shutdown drains the agent: it waits for the runs, kills those still going
// after the grace and flushes their reports. A run ends once its reports
// are acknowledged (by jobd, or by the spool), so when every run ended the
// report queue is empty.
func (a *Agent) shutdown(cancelReports context.CancelFunc, reportsDone <-chan struct{}) {
	a.stopQueued()
	allDone := make(chan struct{})
	go func() {
		a.wg.Wait()
		close(allDone)
	}()

	if n := a.heldCount(); n > 0 {
		a.log.Info("executor stopping: waiting for runs", "runs", n, "grace", a.cfg.ShutdownGrace)
	}
	grace := time.NewTimer(a.cfg.ShutdownGrace)
	defer grace.Stop()
	select {
	case <-allDone:
	case <-grace.C:
		a.log.Warn("shutdown grace expired: killing runs", "runs", a.heldCount())
		a.stopAll(api.RunKilled, "executor stopping: shutdown grace expired")
		flush := time.NewTimer(a.cfg.KillGrace + flushTimeout)
		defer flush.Stop()
		select {
		case <-allDone:
		case <-flush.C:
			a.log.Error("dropping undelivered reports: jobd did not acknowledge them in time")
			cancelReports()
			select {
			case <-allDone:
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
	if a.executorID() != "" && a.spool.flush(flushTimeout) {
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
	ctx, cancel := context.WithTimeout(context.Background(), deregisterTimeout)
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
// queued or executing.
func (a *Agent) freeSlots() int {
	a.mu.Lock()
	defer a.mu.Unlock()
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
