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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
)

// Defaults applied by New to the zero fields of a Config.
const (
	DefaultSlots         = 4
	DefaultPollWait      = 25 * time.Second
	DefaultKillGrace     = 5 * time.Second
	DefaultShutdownGrace = 30 * time.Second
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
// reports of runs it killed at the end of ShutdownGrace.
const flushTimeout = 10 * time.Second

// Config configures an Agent. Zero fields take the defaults documented on
// each field.
type Config struct {
	// Servers are the base URLs of jobd ("https://jobd.example:7070"). The
	// agent talks to the first and fails over to the others in order.
	Servers []string
	// Group is the executor group to join; jobd creates it on first use.
	Group string
	// Name identifies the executor in its group; it defaults to the host name.
	Name string
	// Labels are matched by job selectors (region=eu).
	Labels map[string]string
	// Token is sent as a bearer token when set.
	Token string
	// Slots is how many runs execute at once; 4 by default.
	Slots int
	// StateDir holds the agent's files (scripts being run). Empty means the
	// system temporary directory.
	StateDir string
	// Version is reported to jobd; "dev" by default.
	Version string
	// Logger receives the agent's logs; nothing is logged when nil.
	Logger *slog.Logger
	// PollWait is how long jobd may hold a poll open with nothing to say;
	// 25s by default, and never more than jobd's heartbeat interval.
	PollWait time.Duration
	// KillGrace is how long a process group has to exit after SIGTERM (on
	// timeout or kill) before it gets SIGKILL, and how long a handler has to
	// return after its context is cancelled; 5s by default.
	KillGrace time.Duration
	// ShutdownGrace is how long Run, once its context is done, waits for
	// running runs to finish before it kills them; 30s by default.
	ShutdownGrace time.Duration
	// HTTPClient talks to jobd (TLS settings, proxies); a client with no
	// timeout of its own by default, since every request carries a context.
	// It is not used for http jobs, which must never see the token.
	HTTPClient *http.Client
}

// ConfigError is a Config field that fails validation.
type ConfigError struct {
	Field string
	Err   error
}

// Error implements error.
func (e *ConfigError) Error() string { return e.Field + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *ConfigError) Unwrap() error { return e.Err }

// Validate reports every invalid field of c as a *ConfigError, joined. Zero
// fields are valid: New replaces them with their defaults.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ConfigError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	if len(c.Servers) == 0 {
		bad("servers", "at least one jobd URL is required")
	}
	for i, s := range c.Servers {
		u, err := url.Parse(s)
		switch {
		case err != nil:
			bad(fmt.Sprintf("servers[%d]", i), "%w", err)
		case u.Scheme != "http" && u.Scheme != "https":
			bad(fmt.Sprintf("servers[%d]", i), "%q: want an http or https URL", u.Redacted())
		case u.Host == "":
			bad(fmt.Sprintf("servers[%d]", i), "%q: no host", u.Redacted())
		}
	}
	if strings.TrimSpace(c.Group) == "" {
		bad("group", "required")
	}
	if c.Name != strings.TrimSpace(c.Name) {
		bad("name", "%q has leading or trailing space", c.Name)
	}
	for k := range c.Labels {
		if strings.TrimSpace(k) == "" {
			bad("labels", "empty label name")
		}
	}
	if c.Slots < 0 {
		bad("slots", "%d: must not be negative", c.Slots)
	}
	for field, d := range map[string]time.Duration{
		"poll_wait": c.PollWait, "kill_grace": c.KillGrace, "shutdown_grace": c.ShutdownGrace,
	} {
		if d < 0 {
			bad(field, "%s: must not be negative", d)
		}
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// withDefaults returns c with its zero fields set.
func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		host, err := os.Hostname()
		if err != nil {
			return c, fmt.Errorf("default name: %w", err)
		}
		c.Name = host
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.PollWait == 0 {
		c.PollWait = DefaultPollWait
	}
	if c.KillGrace == 0 {
		c.KillGrace = DefaultKillGrace
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.Version == "" {
		c.Version = "dev"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	c.Servers = slices.Clone(c.Servers)
	return c, nil
}

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
	a.reports = newReportQueue(&httpReporter{tr: a.tr, log: a.log, executorIDFunc: a.waitExecutorID}, a.log)
	return a, nil
}

// Run registers with jobd and executes the runs it hands out until ctx is
// done. Then it stops polling, waits up to Config.ShutdownGrace for running
// runs to finish (killing those that do not), delivers their results,
// deregisters and returns nil. It returns an error when jobd refuses the
// registration for good (bad token, invalid group). Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	if !a.started.CompareAndSwap(false, true) {
		return errors.New("executor: Run called twice")
	}
	// Reports outlive ctx until the final flush.
	reportCtx, cancelReports := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReports()
	reportsDone := make(chan struct{})
	go func() {
		defer close(reportsDone)
		a.reports.loop(reportCtx)
	}()

	a.log.Info("executor starting", "servers", len(a.cfg.Servers), "slots", a.cfg.Slots)
	err := a.pollLoop(ctx)
	a.shutdown(cancelReports, reportsDone)
	return err
}

// shutdown drains the agent: it waits for the runs, kills those still going
// after the grace, flushes their reports and deregisters. A run ends once
// its reports are acknowledged, so when every run ended the report queue is
// empty.
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
	a.deregister()
}

// deregister tells jobd the executor left, retrying briefly.
func (a *Agent) deregister() {
	id := a.executorID()
	if id == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
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
func (a *Agent) heldIDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.runs))
	for id := range a.runs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
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
