package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// Bounds of the event stream.
const (
	// maxPendingEvents is how many events may wait for one subscriber;
	// past it they are dropped and the subscriber gets one resync.
	maxPendingEvents = 2000
	// eventKeepAlive is how often an idle stream sends a comment line.
	eventKeepAlive = 15 * time.Second
	// eventWriteTimeout bounds one write to a subscriber: a client that
	// stops reading is dropped instead of holding its handler.
	eventWriteTimeout = 10 * time.Second
	// executorWatchEvery is how often executors are compared with what
	// subscribers were last told.
	executorWatchEvery = 250 * time.Millisecond
	// runMinutesKept is how many minutes of ended-run counts are kept.
	runMinutesKept = 30
)

// eventHub fans events out to the subscribers of GET /api/v1/events and
// counts ended runs per minute. Publishing costs one atomic load when no
// one is subscribed.
type eventHub struct {
	clock Clock
	nsubs atomic.Int32

	mu   sync.Mutex
	subs map[*subscriber]struct{}

	minMu   sync.Mutex
	minutes []api.RunMinute
}

// subscriber is one open event stream.
type subscriber struct {
	mu       sync.Mutex
	pending  []api.Event
	overflow bool
	wake     chan struct{}
}

func newEventHub(clock Clock) *eventHub {
	return &eventHub{clock: clock, subs: map[*subscriber]struct{}{}}
}

// active tells whether anyone listens; callers skip building events when
// not.
func (h *eventHub) active() bool { return h.nsubs.Load() > 0 }

func (h *eventHub) subscribe() *subscriber {
	s := &subscriber{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	h.subs[s] = struct{}{}
	h.mu.Unlock()
	h.nsubs.Add(1)
	return s
}

func (h *eventHub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	delete(h.subs, s)
	h.mu.Unlock()
	h.nsubs.Add(-1)
}

// publish queues evs for every subscriber, stamping their time.
func (h *eventHub) publish(evs ...api.Event) {
	if len(evs) == 0 || !h.active() {
		return
	}
	now := api.NewTime(h.clock.Now())
	for i := range evs {
		evs[i].Time = now
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs {
		s.mu.Lock()
		switch {
		case s.overflow:
		case len(s.pending)+len(evs) > maxPendingEvents:
			s.overflow, s.pending = true, nil
		default:
			s.pending = append(s.pending, evs...)
		}
		s.mu.Unlock()
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// take returns what waits for s: the events, or one resync if some were
// dropped.
func (s *subscriber) take(now time.Time) []api.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow {
		s.overflow, s.pending = false, nil
		return []api.Event{{Type: api.EventResync, Time: api.NewTime(now)}}
	}
	evs := s.pending
	s.pending = nil
	return evs
}

// runEnded counts a run that reached a final state.
func (h *eventHub) runEnded(state string, n int64) {
	var succeeded, failed, other int64
	switch state {
	case api.RunSucceeded:
		succeeded = n
	case api.RunFailed, api.RunTimedOut, api.RunLost:
		failed = n
	case api.RunKilled, api.RunSkipped:
		other = n
	default:
		return
	}
	minute := h.clock.Now().Truncate(time.Minute)
	h.minMu.Lock()
	defer h.minMu.Unlock()
	h.rollLocked(minute)
	last := &h.minutes[len(h.minutes)-1]
	last.Succeeded += succeeded
	last.Failed += failed
	last.Other += other
}

// rollLocked makes the last entry of minutes the one for minute, adding
// empty minutes for the gap and keeping runMinutesKept.
func (h *eventHub) rollLocked(minute time.Time) {
	if n := len(h.minutes); n > 0 {
		last := h.minutes[n-1].Minute.Time
		if !minute.After(last) {
			return
		}
		for m := last.Add(time.Minute); m.Before(minute) && len(h.minutes) < 2*runMinutesKept; m = m.Add(time.Minute) {
			h.minutes = append(h.minutes, api.RunMinute{Minute: api.NewTime(m)})
		}
	}
	h.minutes = append(h.minutes, api.RunMinute{Minute: api.NewTime(minute)})
	if extra := len(h.minutes) - runMinutesKept; extra > 0 {
		h.minutes = append(h.minutes[:0], h.minutes[extra:]...)
	}
}

// runMinutes returns the ended-run counts of the last minutes, oldest
// first, ending with the current minute.
func (h *eventHub) runMinutes() []api.RunMinute {
	h.minMu.Lock()
	defer h.minMu.Unlock()
	h.rollLocked(h.clock.Now().Truncate(time.Minute))
	return append([]api.RunMinute(nil), h.minutes...)
}

// watchExecutors publishes an executor event whenever what the API shows
// of an executor changes, while anyone listens, until ctx ends.
func (d *Daemon) watchExecutors(ctx context.Context) {
	t := time.NewTicker(executorWatchEvery)
	defer t.Stop()
	last := map[string]api.Executor{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !d.events.active() {
			clear(last)
			continue
		}
		xs, err := d.disp.Executors(ctx)
		if err != nil {
			continue
		}
		var evs []api.Event
		for _, x := range xs {
			if old, ok := last[x.ID]; ok && reflect.DeepEqual(old, x) {
				continue
			}
			last[x.ID] = x
			evs = append(evs, api.Event{Type: api.EventExecutor, Executor: &x})
		}
		d.events.publish(evs...)
	}
}

// handleEvents streams events as server-sent events until the client goes
// away or jobd stops. The first event is hello, with the status.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	sub := s.d.events.subscribe()
	defer s.d.events.unsubscribe(sub)
	st, err := s.d.Status(r.Context())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	write := func(ev api.Event) error {
		if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		if _, err := w.Write([]byte("event: " + ev.Type + "\ndata: ")); err != nil {
			return err
		}
		if err := enc.Encode(ev); err != nil { // Encode ends the line
			return err
		}
		_, err := w.Write([]byte("\n"))
		return err
	}
	if err := write(api.Event{Type: api.EventHello, Time: api.NewTime(s.d.clock.Now()), Status: &st}); err != nil {
		return
	}
	if rc.Flush() != nil {
		return
	}
	keep := time.NewTicker(eventKeepAlive)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.d.stopping:
			return
		case <-keep.C:
			if err := rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
				return
			}
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
		case <-sub.wake:
			for _, ev := range sub.take(s.d.clock.Now()) {
				if err := write(ev); err != nil {
					return
				}
			}
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// eventStore is the store as the daemon uses it: every committed change to
// runs, jobs and missed triggers is also published on the event hub.
type eventStore struct {
	store.Store
	hub *eventHub
}

func runEvent(r *store.Run) api.Event {
	return api.Event{Type: api.EventRun, Run: &api.RunEvent{
		ID: strconv.FormatInt(r.ID, 10), Job: r.JobName, State: r.State,
		ExecutorID: r.ExecutorID, Attempt: r.Attempt,
	}}
}

// runsChanged counts ended runs and publishes an event per run.
func (s eventStore) runsChanged(runs []*store.Run) {
	for _, r := range runs {
		s.hub.runEnded(r.State, 1)
	}
	if !s.hub.active() {
		return
	}
	evs := make([]api.Event, 0, len(runs))
	for _, r := range runs {
		evs = append(evs, runEvent(r))
	}
	s.hub.publish(evs...)
}

// RunsTransition publishes the transitions that applied.
func (s eventStore) RunsTransition(ctx context.Context, ts []store.RunTransition) ([]bool, error) {
	ok, err := s.Store.RunsTransition(ctx, ts)
	if err != nil {
		return ok, err
	}
	var evs []api.Event
	active := s.hub.active()
	for i, t := range ts {
		if i >= len(ok) || !ok[i] {
			continue
		}
		s.hub.runEnded(t.To, 1)
		if active {
			evs = append(evs, api.Event{Type: api.EventRun, Run: &api.RunEvent{
				ID: strconv.FormatInt(t.RunID, 10), State: t.To, ExecutorID: t.Set.ExecutorID,
			}})
		}
	}
	s.hub.publish(evs...)
	return ok, nil
}

// RunReport publishes the run when the report moved it.
func (s eventStore) RunReport(ctx context.Context, p store.ReportParams) (store.ReportResult, error) {
	res, err := s.Store.RunReport(ctx, p)
	if err == nil && res.Applied && res.Run != nil {
		s.runsChanged([]*store.Run{res.Run})
	}
	return res, err
}

// RunReports publishes the runs the reports moved.
func (s eventStore) RunReports(ctx context.Context, ps []store.ReportParams) ([]store.ReportResult, error) {
	res, err := s.Store.RunReports(ctx, ps)
	if err != nil {
		return res, err
	}
	var runs []*store.Run
	for _, r := range res {
		if r.Err == nil && r.Applied && r.Run != nil {
			runs = append(runs, r.Run)
		}
	}
	s.runsChanged(runs)
	return res, nil
}

// TriggersFire publishes the runs the fired triggers created.
func (s eventStore) TriggersFire(ctx context.Context, batch []*store.FireParams) ([]store.FireResult, error) {
	res, err := s.Store.TriggersFire(ctx, batch)
	if err != nil {
		return res, err
	}
	var runs []*store.Run
	var missed int64
	for i, r := range res {
		if !r.Applied {
			continue
		}
		runs = append(runs, r.Runs...)
		if i < len(batch) && batch[i].Missed != nil {
			missed += batch[i].Missed.Missed.Count
		}
	}
	s.runsChanged(runs)
	if missed > 0 {
		s.hub.publish(api.Event{Type: api.EventMissed, Missed: &api.MissedEvent{Count: missed}})
	}
	return res, nil
}

// RunInsert publishes the inserted runs.
func (s eventStore) RunInsert(ctx context.Context, runs []*store.Run) error {
	if err := s.Store.RunInsert(ctx, runs); err != nil {
		return err
	}
	s.runsChanged(runs)
	return nil
}

// JobCreate publishes the new job.
func (s eventStore) JobCreate(ctx context.Context, job *store.Job) (*store.Job, error) {
	j, err := s.Store.JobCreate(ctx, job)
	if err == nil {
		s.hub.publish(api.Event{Type: api.EventJob, Job: &api.JobEvent{Name: j.Name}})
	}
	return j, err
}

// JobUpdate publishes the changed job.
func (s eventStore) JobUpdate(ctx context.Context, p store.JobUpdateParams) (*store.Job, error) {
	j, err := s.Store.JobUpdate(ctx, p)
	if err == nil {
		s.hub.publish(api.Event{Type: api.EventJob, Job: &api.JobEvent{Name: j.Name}})
	}
	return j, err
}

// JobDelete publishes the deleted job.
func (s eventStore) JobDelete(ctx context.Context, id int64) error {
	var name string
	if s.hub.active() {
		if j, err := s.Store.JobGetByID(ctx, id); err == nil {
			name = j.Name
		}
	}
	if err := s.Store.JobDelete(ctx, id); err != nil {
		return err
	}
	if name != "" {
		s.hub.publish(api.Event{Type: api.EventJob, Job: &api.JobEvent{Name: name, Deleted: true}})
	}
	return nil
}

// MissedAppend publishes the missed triggers recorded.
func (s eventStore) MissedAppend(ctx context.Context, ms []*store.MissedAppend) error {
	if err := s.Store.MissedAppend(ctx, ms); err != nil {
		return err
	}
	s.publishMissed(ms)
	return nil
}

// TriggersMaterialize publishes the missed triggers recorded with the
// batch.
func (s eventStore) TriggersMaterialize(ctx context.Context, p store.MaterializeParams) ([]*store.Trigger, error) {
	ts, err := s.Store.TriggersMaterialize(ctx, p)
	if err == nil {
		s.publishMissed(p.Missed)
	}
	return ts, err
}

// MissedReplay publishes the replayed missed triggers.
func (s eventStore) MissedReplay(ctx context.Context, p store.ReplayParams) ([]*store.Trigger, error) {
	ts, err := s.Store.MissedReplay(ctx, p)
	if err == nil && len(ts) > 0 {
		s.hub.publish(api.Event{Type: api.EventMissed, Missed: &api.MissedEvent{Count: -int64(len(ts))}})
	}
	return ts, err
}

func (s eventStore) publishMissed(ms []*store.MissedAppend) {
	if len(ms) == 0 || !s.hub.active() {
		return
	}
	var evs []api.Event
	for _, m := range ms {
		evs = append(evs, api.Event{Type: api.EventMissed, Missed: &api.MissedEvent{Job: m.Missed.JobName, Count: m.Missed.Count}})
	}
	s.hub.publish(evs...)
}
