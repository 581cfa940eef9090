package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/jobd/jobd/api"
)

// pollSlack is added to a poll's wait for its request timeout, so a silent
// network partition ends the poll instead of hanging on it.
const pollSlack = 15 * time.Second

// pollLoop registers and polls until ctx is done (nil) or jobd refuses the
// registration for good (the error). It is the only goroutine that accepts
// runs.
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
		fresh := false // registered in this iteration
		if a.executorID() == "" {
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
		resp, err := a.poll(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
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

// handle starts the assigned runs, then carries out the commands, so a kill
// may name a run of the same answer.
func (a *Agent) handle(resp *api.PollResponse) {
	for _, asg := range resp.Assignments {
		a.accept(asg)
	}
	for _, c := range resp.Commands {
		switch c.Type {
		case api.CommandKill:
			if !a.stopRun(c.RunID, api.RunKilled, "killed on request") {
				a.log.Warn("kill for a run this executor does not hold", logKeyRun, c.RunID)
			} else {
				a.log.Info("killing run", logKeyRun, c.RunID)
			}
		case api.CommandDrain:
			// Draining on jobd's command (stop taking runs, finish,
			// deregister) is not implemented yet; jobd already stops routing
			// to a draining executor, and SIGTERM drains.
			a.log.Info("drain requested by jobd; not supported by this executor yet")
		default:
			a.log.Warn("unknown command from jobd", "type", c.Type)
		}
	}
}
