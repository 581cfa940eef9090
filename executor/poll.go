package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
)

// pollSlack is added to a poll's wait for its request timeout, so a silent
// network partition ends the poll instead of hanging on it.
const pollSlack = 15 * time.Second

// errDrained ends the poll loop of a draining agent whose runs all ended
// and whose reports were all delivered.
var errDrained = errors.New("executor drained")

// pollLoop registers and polls until ctx is done (nil), the agent drained
// (errDrained) or jobd refuses the registration for good (the error). One
// poll loop runs at a time; it is the only goroutine that accepts runs.
// A stopping agent polls on, without registering again, until its runs
// ended.
func (a *Agent) pollLoop(ctx context.Context) error {
	bo := newBackoff()
	var failing error // the error of the current outage, nil when connected
	failed := func(what string, err error) {
		if failing == nil {
			a.log.Warn("jobd unreachable; retrying", "op", what, "err", err)
		} else {
			a.log.Debug("jobd still unreachable", "op", what, "err", err)
		}
		failing = err
		sleepCtx(ctx, bo.delay())
	}
	for ctx.Err() == nil {
		if a.drainedNow() {
			return errDrained
		}
		fresh := false // registered in this iteration
		if a.executorID() == "" {
			if a.isStopping() {
				return nil
			}
			fresh = true
			if err := a.register(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if refusedForGood(err) {
					return fmt.Errorf("register: %w", a.explainRefusal(err))
				}
				failed("register", err)
				continue
			}
		}
		pollCtx, endPoll := a.pollContext(ctx)
		resp, err := a.poll(pollCtx)
		cut := endPoll()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if cut {
				continue // drained: the loop ends at its top
			}
			if isNotFound(err) || refusedForGood(err) {
				// Registering again either works or says why it cannot.
				a.log.Info("jobd refused the poll; registering again", "err", err)
				a.setID("", 0)
				if fresh {
					// Refused right after registering: do not spin.
					sleepCtx(ctx, bo.delay())
				}
				continue
			}
			failed("poll", err)
			continue
		}
		if failing != nil {
			a.log.Info("jobd reachable again")
			failing = nil
		}
		bo.reset()
		a.handle(resp)
	}
	return nil
}

// refusedForGood reports whether a registration error is a configuration
// problem that retrying cannot fix.
func refusedForGood(err error) bool {
	var se *statusError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Status {
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden:
		return true
	}
	return false
}

// explainRefusal says what a registration refused for good means. It
// never quotes the token.
func (a *Agent) explainRefusal(err error) error {
	var se *statusError
	if !errors.As(err, &se) || (se.Status != http.StatusUnauthorized && se.Status != http.StatusForbidden) {
		return err
	}
	if a.cfg.Token == "" {
		return fmt.Errorf("jobd requires a token for group %q and none is configured: %w", a.cfg.Group, err)
	}
	return fmt.Errorf("jobd refused the token for group %q: %w", a.cfg.Group, err)
}

// register announces the executor and the runs it still holds.
func (a *Agent) register(ctx context.Context) error {
	req := api.RegisterRequest{
		Group:    a.cfg.Group,
		Name:     a.cfg.Name,
		Host:     a.host,
		Labels:   a.cfg.Labels,
		Version:  a.cfg.Version,
		Slots:    a.cfg.Slots,
		Handlers: a.handlerNames(),
		Running:  a.heldIDs(),
	}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	var resp api.RegisterResponse
	if err := a.tr.post(ctx, "/executor/register", &req, &resp); err != nil {
		return err
	}
	if resp.ID == "" {
		return errors.New("jobd answered without an executor id")
	}
	a.setID(resp.ID, resp.HeartbeatInterval.D())
	a.log.Info("executor registered", logKeyExecutor, resp.ID, "running", len(req.Running))
	for _, id := range resp.Lost {
		a.mu.Lock()
		r, ok := a.runs[id]
		a.mu.Unlock()
		if ok {
			a.log.Warn("jobd no longer expects run; stopping it", logKeyRun, id)
			r.reports.discard()
			r.requestStop(api.RunKilled, "jobd no longer expects this run")
		}
	}
	return nil
}

func (a *Agent) setID(id string, heartbeat time.Duration) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.id, a.heartbeat = id, heartbeat
	close(a.idChanged)
	a.idChanged = make(chan struct{})
}

// pollWait is the wait asked of jobd: PollWait, but no longer than the
// heartbeat interval since every poll is a heartbeat.
func (a *Agent) pollWait() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.heartbeat > 0 && a.heartbeat < a.cfg.PollWait {
		return a.heartbeat
	}
	return a.cfg.PollWait
}

// poll sends one heartbeat and waits for work.
func (a *Agent) poll(ctx context.Context) (*api.PollResponse, error) {
	wait := a.pollWait()
	req := api.PollRequest{Running: a.heldIDs(), FreeSlots: a.freeSlots(), Wait: api.Duration(wait)}
	if req.Running == nil {
		req.Running = []string{}
	}
	ctx, cancel := context.WithTimeout(ctx, wait+pollSlack)
	defer cancel()
	var resp api.PollResponse
	path := "/executor/" + url.PathEscape(a.executorID()) + "/poll"
	if err := a.tr.post(ctx, path, &req, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// handle carries out drain and undrain first, then starts the assigned runs
// (none while draining), then carries out the kills, so a kill may name a
// run of the same answer.
func (a *Agent) handle(resp *api.PollResponse) {
	for _, c := range resp.Commands {
		switch c.Type {
		case api.CommandDrain:
			a.startDrain()
		case api.CommandUndrain:
			a.undrain()
		}
	}
	for _, asg := range resp.Assignments {
		if a.isDraining() {
			// Not started and not listed to jobd, which requeues it.
			a.log.Warn("executor draining: not starting a run assigned after the drain", logKeyRun, asg.RunID, logKeyJob, asg.Job)
			continue
		}
		a.accept(asg)
	}
	for _, c := range resp.Commands {
		switch c.Type {
		case api.CommandKill:
			if !a.stopRun(c.RunID, api.RunKilled, "killed on request") {
				// Usual for a run that just ended: jobd saw it listed in a poll
				// sent before its result was acknowledged.
				a.log.Debug("kill for a run this executor does not hold", logKeyRun, c.RunID)
			} else {
				a.log.Info("killing run", logKeyRun, c.RunID)
			}
		case api.CommandDrain, api.CommandUndrain:
		case api.CommandBye:
			a.log.Info("jobd is going away; turning to the next server")
			a.tr.skip()
		default:
			a.log.Warn("unknown command from jobd", "type", c.Type)
		}
	}
}

// startDrain carries out jobd's drain command: no new run, and once every
// run ended and every report is delivered, the poll loop ends and Run
// deregisters and returns.
func (a *Agent) startDrain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.draining {
		return
	}
	a.draining = true
	a.drainLeft = -1
	a.log.Info("draining on jobd's command: taking no new runs; finishing those running", "runs", len(a.runs))
}

// undrain carries out jobd's undrain command: the drain is cancelled and
// the agent takes runs again. A stopping agent goes on stopping.
func (a *Agent) undrain() {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.stopping:
		a.log.Info("undrain from jobd ignored: the executor is stopping")
	case a.draining:
		a.draining = false
		a.log.Info("drain cancelled by jobd: taking runs again")
	}
}

func (a *Agent) isDraining() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.draining
}

func (a *Agent) isStopping() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stopping
}

// drainedNow reports whether the agent drains and is done: it holds no run
// and its spool is empty. It logs the runs left when their number changed.
func (a *Agent) drainedNow() bool {
	done, _, _ := a.drainState()
	return done
}

// drainState returns whether a draining agent is done, and what to wait
// on for that to change (nil when it does not drain).
func (a *Agent) drainState() (done bool, runsChanged, spoolChanged <-chan struct{}) {
	if a.spool != nil {
		spoolChanged = a.spool.spool.changedChan()
	}
	left := len(a.heldIDs())
	spoolEmpty := a.spool == nil || a.spool.spool.empty()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.draining {
		return false, nil, nil
	}
	if left != a.drainLeft {
		a.drainLeft = left
		if left > 0 {
			a.log.Info(fmt.Sprintf("draining: %d runs left", left), "runs_left", left)
		}
	}
	return left == 0 && spoolEmpty, a.runsChanged, spoolChanged
}

// pollContext returns the context of one poll: while the agent drains, it
// is cancelled as soon as the drain is done, so that the poll loop ends
// without waiting out a long poll. end releases it and reports whether the
// drain cut the poll.
func (a *Agent) pollContext(ctx context.Context) (_ context.Context, end func() (cut bool)) {
	if !a.isDraining() {
		return ctx, func() bool { return false }
	}
	ctx, cancel := context.WithCancel(ctx)
	var drained atomic.Bool
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			done, runsChanged, spoolChanged := a.drainState()
			if done {
				drained.Store(true)
				cancel()
				return
			}
			if runsChanged == nil {
				return // undrained meanwhile
			}
			select {
			case <-runsChanged:
			case <-spoolChanged:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() bool {
		cancel()
		<-watched
		return drained.Load()
	}
}
