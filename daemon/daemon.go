// Package daemon is jobd serve: the scheduler that stores and fires
// triggers, the dispatcher that keeps the executor registry and routes runs,
// and the HTTP API on the admin unix socket and the executor TCP listener.
package daemon

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// Notifier tells the service manager about the daemon's state
// ("READY=1", "STOPPING=1", "WATCHDOG=1"). It may be nil.
type Notifier func(state string)

// Daemon is one jobd serve process.
type Daemon struct {
	cfg     Config
	store   store.Store
	log     *slog.Logger
	clock   Clock
	version string
	notify  Notifier

	sched     *Scheduler
	disp      *Dispatcher
	server    *Server
	startedAt time.Time
	ready     atomic.Bool
	// logs is notified when run output or run states are stored.
	logs *broadcaster
	// events fans changes out to GET /api/v1/events.
	events *eventHub
	// stopping is closed when shutdown begins: long requests (log
	// follows) end so the listeners can close.
	stopping chan struct{}
}

// New wires a daemon over an open store.
func New(cfg Config, st store.Store, log *slog.Logger, clock Clock, version string, notify Notifier) *Daemon {
	if notify == nil {
		notify = func(string) {}
	}
	events := newEventHub(clock)
	st = eventStore{Store: st, hub: events}
	d := &Daemon{cfg: cfg, store: st, log: log, clock: clock, version: version, notify: notify, logs: newBroadcaster(), events: events, stopping: make(chan struct{})}
	d.disp = NewDispatcher(st, clock, log, cfg.HeartbeatInterval)
	d.sched = NewScheduler(st, clock, log, d.disp, cfg.LookAhead)
	d.disp.EndedFunc = func(runs []*store.Run) { d.sched.RunsEnded(context.Background(), runs) }
	d.sched.EndedFunc = d.logs.Notify
	d.disp.JobFunc = d.sched.jobByID
	d.disp.HandBackFunc = d.sched.HandBack
	d.server = &Server{d: d, log: log}
	return d
}

// Run recovers state, listens, serves and fires triggers until ctx ends,
// then shuts down: it stops firing, lets in-flight store writes finish and
// closes the listeners. It does not close the store.
func (d *Daemon) Run(ctx context.Context) error {
	d.startedAt = d.clock.Now()
	if err := d.disp.Restore(ctx, d.sched.jobByID); err != nil {
		return err
	}
	if err := d.sched.Recover(ctx); err != nil {
		return err
	}
	sockLn, err := listenSocket(d.cfg.Socket, d.cfg.SocketMode)
	if err != nil {
		return err
	}
	var tcpLn net.Listener
	if d.cfg.Listen != "" {
		var tlsCfg *tls.Config
		if d.cfg.TLSCert != "" {
			cert, err := tls.LoadX509KeyPair(d.cfg.TLSCert, d.cfg.TLSKey)
			if err != nil {
				sockLn.Close()
				return fmt.Errorf("load TLS certificate: %w", err)
			}
			tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		}
		tcpLn, err = net.Listen("tcp", d.cfg.Listen)
		if err != nil {
			sockLn.Close()
			return fmt.Errorf("listen %s: %w", d.cfg.Listen, err)
		}
		if tlsCfg != nil {
			tcpLn = tls.NewListener(tcpLn, tlsCfg)
		}
		if len(d.cfg.ExecutorTokens) == 0 {
			d.log.Warn("executors connect without a token: set executor_tokens before listening beyond this host", "listen", d.cfg.Listen)
		}
	}
	base := func(net.Listener) context.Context { return context.WithoutCancel(ctx) }
	admin := &http.Server{Handler: d.server.AdminHandler(), BaseContext: base, ReadHeaderTimeout: 10 * time.Second}
	exec := &http.Server{Handler: d.server.ExecutorHandler(), BaseContext: base, ReadHeaderTimeout: 10 * time.Second}

	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	serve := func(srv *http.Server, ln net.Listener) {
		defer wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("serve %s: %w", ln.Addr(), err)
		}
	}
	wg.Add(1)
	go serve(admin, sockLn)
	if tcpLn != nil {
		wg.Add(1)
		go serve(exec, tcpLn)
	}
	var bg sync.WaitGroup
	bg.Add(4)
	go func() { defer bg.Done(); d.prune(runCtx) }()
	go func() { defer bg.Done(); d.watchExecutors(runCtx) }()
	go func() { defer bg.Done(); d.disp.Monitor(runCtx) }()
	go func() { defer bg.Done(); _ = d.sched.Run(runCtx) }()
	d.ready.Store(true)
	d.notify("READY=1")
	d.log.Info("jobd serving", "socket", d.cfg.Socket, "listen", d.cfg.Listen, "store", d.store.Driver(), "version", d.version)

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
	}
	d.notify("STOPPING=1")
	d.log.Info("jobd stopping")
	close(d.stopping)
	d.disp.Stop()
	// Stop firing first; the fire loop finishes the batch it is settling.
	stopRun()
	bg.Wait()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = exec.Shutdown(shutCtx)
	_ = admin.Shutdown(shutCtx)
	wg.Wait()
	_ = os.Remove(d.cfg.Socket)
	d.log.Info("jobd stopped")
	return runErr
}

// prune deletes runs (and their output) older than the retention, an
// hour apart, until ctx ends.
func (d *Daemon) prune(ctx context.Context) {
	if d.cfg.RetentionDays <= 0 {
		return
	}
	wait := time.Minute
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = time.Hour
		before := d.clock.Now().Add(-time.Duration(d.cfg.RetentionDays) * 24 * time.Hour)
		n, err := d.store.RunsPrune(ctx, before)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Error("prune old runs", "err", err)
			}
			continue
		}
		if n > 0 {
			d.log.Info("pruned old runs", "count", n, "before", before)
		}
	}
}

// listenSocket listens on a unix socket at path with the given octal mode,
// removing a stale socket file first (only if it is a socket).
func listenSocket(path, mode string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create socket dir: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("socket path %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
			c.Close()
			return nil, fmt.Errorf("socket %s: another jobd is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on socket %s: %w", path, err)
	}
	c := Config{SocketMode: mode}
	m, err := c.socketMode()
	if err != nil {
		ln.Close()
		return nil, err
	}
	if err := os.Chmod(path, m); err != nil {
		ln.Close()
		return nil, fmt.Errorf("chmod socket: %w", err)
	}
	return ln, nil
}

// Status summarises the daemon.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	total, paused, err := d.store.JobCount(ctx)
	if err != nil {
		return api.Status{}, fmt.Errorf("count jobs: %w", err)
	}
	runs, err := d.store.RunCounts(ctx)
	if err != nil {
		return api.Status{}, fmt.Errorf("count runs: %w", err)
	}
	missed, err := d.store.MissedTotal(ctx)
	if err != nil {
		return api.Status{}, fmt.Errorf("count missed: %w", err)
	}
	execs, err := d.disp.ExecutorCounts(ctx)
	if err != nil {
		return api.Status{}, err
	}
	next, pending := d.sched.NextTriggers(10)
	return api.Status{
		Version: d.version, StartedAt: api.NewTime(d.startedAt), Leader: true,
		Store: d.store.Driver() + " " + d.cfg.DBPath(), Socket: d.cfg.Socket, Listen: d.cfg.Listen,
		Jobs: total, JobsPaused: paused, Executors: execs, Runs: runs, Missed: missed,
		PendingTriggers: pending, NextTriggers: next, RunsPerMinute: d.events.runMinutes(),
	}, nil
}

// Apply makes the stored jobs match req.Jobs: creates, updates and, with
// Prune, deletes. Every spec is validated before anything changes.
func (d *Daemon) Apply(ctx context.Context, req api.ApplyRequest) (api.ApplyResponse, error) {
	resp := api.ApplyResponse{Created: []string{}, Updated: []string{}, Unchanged: []string{}, Deleted: []string{}, DryRun: req.DryRun}
	seen := map[string]bool{}
	for i, spec := range req.Jobs {
		if _, _, err := normalizeSpec(spec); err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return resp, &FieldError{Field: fmt.Sprintf("jobs[%d].%s", i, fe.Field), Err: fmt.Errorf("job %q: %w", spec.Name, fe.Err)}
			}
			return resp, err
		}
		if seen[spec.Name] {
			return resp, fieldErr(fmt.Sprintf("jobs[%d].name", i), "%q: declared twice", spec.Name)
		}
		seen[spec.Name] = true
	}
	existing := map[string]*compiledJob{}
	after := ""
	for {
		rows, err := d.store.JobList(ctx, store.JobListParams{After: after, Limit: 1000})
		if err != nil {
			return resp, fmt.Errorf("list jobs: %w", err)
		}
		for _, row := range rows {
			j, err := compileJob(row)
			if err != nil {
				return resp, err
			}
			existing[row.Name] = j
		}
		if len(rows) < 1000 {
			break
		}
		after = rows[len(rows)-1].Name
	}
	for _, spec := range req.Jobs {
		old, ok := existing[spec.Name]
		if !ok {
			resp.Created = append(resp.Created, spec.Name)
			if !req.DryRun {
				if _, err := d.sched.CreateJob(ctx, spec); err != nil {
					return resp, err
				}
			}
			continue
		}
		norm, _, _ := normalizeSpec(spec)
		if specEqual(old.spec, norm) {
			resp.Unchanged = append(resp.Unchanged, spec.Name)
			continue
		}
		resp.Updated = append(resp.Updated, spec.Name)
		if !req.DryRun {
			if _, _, err := d.sched.UpdateJob(ctx, spec.Name, spec); err != nil {
				return resp, err
			}
		}
	}
	if req.Prune {
		for name := range existing {
			if seen[name] {
				continue
			}
			resp.Deleted = append(resp.Deleted, name)
			if !req.DryRun {
				if err := d.sched.DeleteJob(ctx, name); err != nil {
					return resp, err
				}
			}
		}
		sort.Strings(resp.Deleted)
	}
	return resp, nil
}

// reportParams validates one report and builds what the store applies.
func (d *Daemon) reportParams(runID int64, rep api.Report) (store.ReportParams, error) {
	if rep.Seq < 1 {
		return store.ReportParams{}, fieldErr("seq", "%d: must be 1 or more", rep.Seq)
	}
	at := rep.At.Time
	if at.IsZero() {
		at = d.clock.Now()
	}
	p := store.ReportParams{RunID: runID, Attempt: rep.Attempt, Seq: rep.Seq, Log: rep.Log}
	switch rep.Type {
	case api.ReportStart:
		p.Transition = &store.RunTransition{RunID: runID, From: []string{api.RunAssigned}, To: api.RunRunning,
			Set: store.RunFields{StartedAt: at}}
	case api.ReportLog:
	case api.ReportResult:
		switch rep.State {
		case api.RunSucceeded, api.RunFailed, api.RunTimedOut, api.RunKilled:
		default:
			return p, fieldErr("state", "%q: want succeeded, failed, timed_out or killed", rep.State)
		}
		p.Transition = &store.RunTransition{RunID: runID, From: []string{api.RunAssigned, api.RunRunning}, To: rep.State,
			Set: store.RunFields{FinishedAt: at, ExitCode: rep.ExitCode, Error: rep.Error}}
	default:
		return p, fieldErr("type", "%q: want start, log or result", rep.Type)
	}
	return p, nil
}

// Report applies one executor report to a run; it is acknowledged only
// after the store committed it.
func (d *Daemon) Report(ctx context.Context, runID int64, rep api.Report) (api.ReportResponse, error) {
	resp, errs, err := d.reports(ctx, api.ReportBatch{Reports: []api.RunReport{{RunID: strconv.FormatInt(runID, 10), Report: rep}}})
	if err != nil {
		return api.ReportResponse{}, err
	}
	if errs[0] != nil {
		return api.ReportResponse{}, errs[0]
	}
	return resp.Results[0], nil
}

// Reports applies a batch of executor reports in one commit and answers
// each; runs that ended free their slot and may start queued runs.
func (d *Daemon) Reports(ctx context.Context, batch api.ReportBatch) (api.ReportBatchResponse, error) {
	resp, _, err := d.reports(ctx, batch)
	return resp, err
}

// reports is Reports that also returns each report's own error.
func (d *Daemon) reports(ctx context.Context, batch api.ReportBatch) (api.ReportBatchResponse, []error, error) {
	out := api.ReportBatchResponse{Results: make([]api.ReportResponse, len(batch.Reports))}
	errs := make([]error, len(batch.Reports))
	fail := func(i int, err error) {
		errs[i] = err
		out.Results[i].Error = err.Error()
	}
	var ps []store.ReportParams
	var idx []int
	for i, rr := range batch.Reports {
		id, err := strconv.ParseInt(rr.RunID, 10, 64)
		if err != nil {
			fail(i, fmt.Errorf("run %q: %w", rr.RunID, store.ErrNotFound))
			continue
		}
		p, err := d.reportParams(id, rr.Report)
		if err != nil {
			fail(i, err)
			continue
		}
		ps = append(ps, p)
		idx = append(idx, i)
	}
	if len(ps) == 0 {
		return out, errs, nil
	}
	res, err := d.store.RunReports(ctx, ps)
	if err != nil {
		return api.ReportBatchResponse{}, nil, fmt.Errorf("store reports: %w", err)
	}
	var ended []*store.Run
	for k, r := range res {
		i := idx[k]
		if r.Err != nil {
			fail(i, r.Err)
			continue
		}
		out.Results[i] = api.ReportResponse{OK: true, Duplicate: r.Duplicate}
		if r.Run != nil && r.Run.State == api.RunRunning {
			d.disp.Started(r.Run)
		}
		if !r.Applied && !r.Duplicate && ps[k].Transition != nil {
			d.log.Debug("report did not match the run's state", LogKeyRun, ps[k].RunID, "seq", ps[k].Seq, "to", ps[k].Transition.To)
		}
		if r.Run != nil && api.RunEnded(r.Run.State) {
			ended = append(ended, r.Run)
		}
	}
	d.logs.Notify()
	for _, run := range ended {
		d.disp.Ended(ctx, run)
	}
	if len(ended) > 0 {
		d.sched.RunsEnded(ctx, ended)
	}
	return out, errs, nil
}
