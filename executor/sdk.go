package executor

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime/debug"
	"slices"
	"time"
)

// HandlerFunc runs one run of a handler job in-process. Its ctx is
// cancelled when the run times out, is killed or the agent stops for good
// (context.Cause says which); a HandlerFunc should then return promptly:
// after Config.KillGrace it is abandoned. Returning nil means the run
// succeeded; an error fails it with the error's text. A panic fails the run
// and is logged with its stack to the run's log.
type HandlerFunc func(ctx context.Context, r *Run) error

// Run describes the run a HandlerFunc executes.
type Run struct {
	// ID is the run id (JOBD_RUN_ID for processes).
	ID string
	// Job is the job's name.
	Job string
	// Attempt counts the runs of the trigger, from 1.
	Attempt int
	// TriggerID identifies the trigger (one scheduled time of the job).
	TriggerID string
	// ScheduledAt is the time the trigger was scheduled for.
	ScheduledAt time.Time
	// Replay is true for a replayed missed trigger.
	Replay bool
	// Params are the run's params; the map is the handler's own copy.
	Params map[string]string
	// ShardIndex and ShardTotal place the run in a sharding broadcast:
	// it is shard ShardIndex (from 0) of ShardTotal. ShardTotal is at least
	// 1; a run that is not part of a broadcast is shard 0 of 1.
	ShardIndex, ShardTotal int
	// Log receives the run's output, which is batched and sent to jobd like
	// a process's stdout. It is safe for concurrent use; writes block while
	// the agent's report queue is full, and fail once the handler has
	// returned.
	Log io.Writer
}

// Handle registers fn to run the handler jobs named name. Register handlers
// before Run: their names are announced to jobd when the agent registers.
// Handle panics if name is empty, fn is nil or name is already registered.
func (a *Agent) Handle(name string, fn HandlerFunc) {
	if name == "" {
		panic("executor: Handle with an empty name")
	}
	if fn == nil {
		panic("executor: Handle " + name + " with a nil HandlerFunc")
	}
	a.handlersMu.Lock()
	defer a.handlersMu.Unlock()
	if _, dup := a.handlers[name]; dup {
		panic("executor: handler " + name + " registered twice")
	}
	a.handlers[name] = fn
}

func (a *Agent) handler(name string) HandlerFunc {
	a.handlersMu.RLock()
	defer a.handlersMu.RUnlock()
	return a.handlers[name]
}

func (a *Agent) handlerNames() []string {
	a.handlersMu.RLock()
	defer a.handlersMu.RUnlock()
	return slices.Sorted(maps.Keys(a.handlers))
}

// runHandler calls the run's HandlerFunc. When the run is stopped the
// handler's context is cancelled; a handler that does not return within the
// kill grace is abandoned (its goroutine cannot be killed) and the run ends
// with the stop's state.
func (a *Agent) runHandler(r *run) outcome {
	fn := a.handler(r.asg.Handler)
	if fn == nil {
		return failed(fmt.Errorf("no handler %q is registered on this executor", r.asg.Handler))
	}
	params := maps.Clone(r.asg.Params)
	if params == nil {
		params = map[string]string{}
	}
	hr := &Run{
		ID:          r.asg.RunID,
		Job:         r.asg.Job,
		Attempt:     r.asg.Attempt,
		TriggerID:   r.asg.TriggerID,
		ScheduledAt: r.asg.ScheduledAt.Time,
		Replay:      r.asg.Replay,
		Params:      params,
		ShardIndex:  r.asg.ShardIndex,
		ShardTotal:  max(r.asg.ShardTotal, 1),
		Log:         r.output,
	}
	r.reportStart()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				fmt.Fprintf(r.output, "panic: %v\n\n%s", p, debug.Stack())
				done <- fmt.Errorf("handler %s panicked: %v", r.asg.Handler, p)
			}
		}()
		done <- fn(r.ctx, hr)
	}()

	select {
	case err := <-done:
		if se := r.stopped(); se != nil {
			return stoppedOutcome(se)
		}
		if err != nil {
			return failed(err)
		}
		return succeeded()
	case <-r.ctx.Done():
		grace := time.NewTimer(a.cfg.KillGrace)
		defer grace.Stop()
		select {
		case <-done:
		case <-grace.C:
			r.log.Warn("handler did not return after its context was cancelled; abandoning it", "handler", r.asg.Handler)
		}
		return stoppedOutcome(r.stopped())
	}
}
