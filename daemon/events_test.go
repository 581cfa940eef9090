package daemon

import (
	"context"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/testutil"
)

func TestServer_Events(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	d := New(DefaultConfig(), testutil.NewStore(t), testutil.Logger(t), SystemClock{}, "test", nil)
	srv := httptest.NewServer(d.server.AdminHandler())
	defer srv.Close()
	defer cancel() // first: ends the stream so the server can close
	go d.watchExecutors(ctx)

	events := make(chan api.Event, 100)
	errs := make(chan error, 1)
	c := &api.Client{Addr: srv.URL}
	go func() {
		for ev, err := range c.Events(ctx) {
			if err != nil {
				errs <- err
				return
			}
			events <- ev
		}
	}()
	// next returns the next event of type typ, skipping others.
	next := func(typ string) api.Event {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case ev := <-events:
				if ev.Type == typ {
					return ev
				}
			case err := <-errs:
				t.Fatalf("event stream: %v", err)
			case <-deadline:
				t.Fatalf("no %s event", typ)
			}
		}
	}
	hello := next(api.EventHello)
	require.NotNil(t, hello.Status)
	require.Equal(t, "test", hello.Status.Version)

	reg, err := d.disp.Register(ctx, api.RegisterRequest{Group: "g", Name: "e1", Slots: 2})
	require.NoError(t, err)
	x := next(api.EventExecutor)
	require.Equal(t, reg.ID, x.Executor.ID)
	require.Equal(t, "e1", x.Executor.Name)

	_, err = d.sched.CreateJob(ctx, api.JobSpec{Name: "ev", Group: "g", Manual: true, Command: []string{"x"}})
	require.NoError(t, err)
	require.Equal(t, "ev", next(api.EventJob).Job.Name)

	res, _, err := d.sched.TriggerNow(ctx, "ev", nil)
	require.NoError(t, err)
	id := strconv.FormatInt(res.Runs[0].ID, 10)
	created := next(api.EventRun).Run
	require.Equal(t, id, created.ID)
	require.Equal(t, "ev", created.Job)
	require.Contains(t, []string{api.RunPending, api.RunAssigned}, created.State, "stored pending, or assigned at once to the idle executor")

	for seq, st := range []string{"", api.RunSucceeded} {
		typ := api.ReportStart
		if st != "" {
			typ = api.ReportResult
		}
		_, err := d.Reports(ctx, api.ReportBatch{Reports: []api.RunReport{{RunID: id, Report: api.Report{
			ExecutorID: reg.ID, Attempt: 1, Seq: int64(seq + 1), Type: typ, State: st}}}})
		require.NoError(t, err)
	}
	// The run goes through assigned (when a poll took it) or straight to
	// running on the start report; it ends succeeded.
	for {
		r := next(api.EventRun).Run
		require.Equal(t, id, r.ID)
		if r.State == api.RunSucceeded {
			break
		}
	}
	j, err := c.JobGet(ctx, "ev")
	require.NoError(t, err)
	require.Equal(t, api.RunSucceeded, j.LastState, "a job shows its newest run's state")
	js, err := c.JobList(ctx, api.JobListOptions{})
	require.NoError(t, err)
	require.Len(t, js, 1)
	require.Equal(t, api.RunSucceeded, js[0].LastState)

	st, err := d.Status(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, st.RunsPerMinute)
	require.Equal(t, int64(1), st.RunsPerMinute[len(st.RunsPerMinute)-1].Succeeded)

	_, err = d.sched.SetPaused(ctx, "ev", true)
	require.NoError(t, err)
	require.Equal(t, "ev", next(api.EventJob).Job.Name)
	require.NoError(t, d.sched.DeleteJob(ctx, "ev"))
	gone := next(api.EventJob).Job
	require.Equal(t, "ev", gone.Name)
	require.True(t, gone.Deleted)

	// A stream ends when jobd stops; the client tells it as an error.
	close(d.stopping)
	select {
	case err := <-errs:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end when jobd stopped")
	}
}

func TestEventHub_OverflowResyncs(t *testing.T) {
	t.Parallel()
	h := newEventHub(SystemClock{})
	require.False(t, h.active())
	h.publish(api.Event{Type: api.EventRun}) // nobody listens: dropped
	s := h.subscribe()
	require.True(t, h.active())
	require.Empty(t, s.take(time.Now()))

	h.publish(api.Event{Type: api.EventJob, Job: &api.JobEvent{Name: "a"}})
	got := s.take(time.Now())
	require.Len(t, got, 1)
	require.Equal(t, "a", got[0].Job.Name)
	require.False(t, got[0].Time.IsZero(), "events carry their time")

	for range maxPendingEvents + 1 {
		h.publish(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "1"}})
	}
	got = s.take(time.Now())
	require.Len(t, got, 1, "a subscriber that fell behind gets one resync, not a flood")
	require.Equal(t, api.EventResync, got[0].Type)
	h.publish(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "2"}})
	got = s.take(time.Now())
	require.Len(t, got, 1)
	require.Equal(t, "2", got[0].Run.ID, "after the resync events flow again")

	h.unsubscribe(s)
	require.False(t, h.active())
}

func TestEventHub_RunMinutes(t *testing.T) {
	t.Parallel()
	clock := &fakeClock{now: time.Date(2026, 3, 1, 10, 0, 30, 0, time.UTC)}
	h := newEventHub(clock)
	h.runEnded(api.RunSucceeded, 2)
	h.runEnded(api.RunFailed, 1)
	h.runEnded(api.RunLost, 1)
	h.runEnded(api.RunKilled, 1)
	h.runEnded(api.RunRunning, 5) // not an end: not counted
	clock.Set(time.Date(2026, 3, 1, 10, 3, 5, 0, time.UTC))
	h.runEnded(api.RunTimedOut, 1)

	ms := h.runMinutes()
	require.Len(t, ms, 4, "minutes without runs are there, empty")
	require.Equal(t, api.RunMinute{Minute: api.NewTime(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)), Succeeded: 2, Failed: 2, Other: 1}, ms[0])
	require.Equal(t, int64(0), ms[1].Succeeded+ms[1].Failed+ms[1].Other)
	require.Equal(t, int64(1), ms[3].Failed)

	clock.Set(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	ms = h.runMinutes()
	require.Len(t, ms, runMinutesKept, "only the last minutes are kept")
	require.True(t, ms[len(ms)-1].Minute.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)))
	for _, m := range ms {
		require.Zero(t, m.Succeeded+m.Failed+m.Other)
	}
}
