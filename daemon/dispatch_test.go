package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

func TestDispatcher_RestartQueuesUntilExecutorsReturn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	id := b.executor(t, "g", "e1", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "j", Group: "g", Every: dur(time.Second), Command: []string{"true"}})
	require.NoError(t, err)
	b.step(t, s, start)
	// jobd restarts; the executor has not polled the new process yet.
	s = b.restart(t)
	b.step(t, s, start.Add(time.Second))
	require.Empty(t, missedRows(t, b.st, "j"), "an executor reconnecting after a restart is not 'no executor'")
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "j", Limit: 10})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, api.RunPending, runs[0].State)
	// It polls, saying it holds the first run: it gets the second.
	poll, err := b.disp.Poll(ctx, id, api.PollRequest{Running: []string{idStr(runs[1].ID)}, FreeSlots: 3})
	require.NoError(t, err)
	require.Len(t, poll.Assignments, 1)
	require.Equal(t, idStr(runs[0].ID), poll.Assignments[0].RunID)
}

func TestDispatcher_UndeliveredRunIsSentAgain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	id := b.executor(t, "g", "e1", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "j", Group: "g", Manual: true, Command: []string{"true"}})
	require.NoError(t, err)
	res, _, err := s.TriggerNow(ctx, "j", map[string]string{"x": "1"})
	require.NoError(t, err)
	runID := idStr(res.Runs[0].ID)
	first, err := b.disp.Poll(ctx, id, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Len(t, first.Assignments, 1)
	require.Equal(t, map[string]string{"x": "1"}, first.Assignments[0].Params, "the trigger's params reach the run")
	// That answer never reached the executor: its next poll does not list
	// the run, so jobd hands it out again.
	second, err := b.disp.Poll(ctx, id, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Len(t, second.Assignments, 1)
	require.Equal(t, runID, second.Assignments[0].RunID)
	// Once the executor lists it, it is not sent a third time.
	third, err := b.disp.Poll(ctx, id, api.PollRequest{Running: []string{runID}, FreeSlots: 3})
	require.NoError(t, err)
	require.Empty(t, third.Assignments)
	run, err := b.st.RunGet(ctx, res.Runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, api.RunAssigned, run.State)
}

func TestDispatcher_DeadExecutorRunsLostWithinLostAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1, e2 := b.twoExecutors(t, start)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "long", Group: "g", Manual: true, Command: []string{"sleep", "60"},
		Route: "first", Retries: 1, Backoff: dur(0), BackoffPolicy: api.BackoffFixed})
	require.NoError(t, err)
	res, _, err := s.TriggerNow(ctx, "long", nil)
	require.NoError(t, err)
	run := res.Runs[0]
	p, err := b.disp.Poll(ctx, e1, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Len(t, p.Assignments, 1)

	// e1's next poll is open when its process dies: the connection drops.
	pollCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = b.disp.Poll(pollCtx, e1, api.PollRequest{Running: []string{idStr(run.ID)}, Wait: api.Duration(time.Minute)})
	}()
	require.Eventually(t, func() bool {
		b.disp.mu.Lock()
		defer b.disp.mu.Unlock()
		return b.disp.execs[e1].polling == 1
	}, 5*time.Second, time.Millisecond)
	cancel()
	<-done
	dropAt := b.clock.Now()

	b.clock.Set(dropAt.Add(b.disp.LostAfter - 100*time.Millisecond))
	b.disp.check(ctx, b.clock.Now())
	got, err := b.st.RunGet(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunAssigned, got.State, "not yet: it may be reconnecting")

	b.clock.Set(dropAt.Add(b.disp.LostAfter))
	b.disp.check(ctx, b.clock.Now())
	got, err = b.st.RunGet(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunLost, got.State, "lost LostAfter after the connection dropped")
	require.Less(t, b.disp.LostAfter, time.Second)
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "long"})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	require.Equal(t, api.RunAssigned, runs[0].State)
	require.Equal(t, e2, runs[0].ExecutorID, "the retry went to the live executor")
}

func TestDispatcher_Quarantine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1, e2 := b.twoExecutors(t, start)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "q", Group: "g", Manual: true, Command: []string{"nope"}, Route: "first"})
	require.NoError(t, err)
	trigger := func() *store.Run {
		t.Helper()
		res, _, err := s.TriggerNow(ctx, "q", nil)
		require.NoError(t, err)
		return res.Runs[0]
	}
	// Three runs on e1 fail without starting (the binary is missing).
	for range 3 {
		r := trigger()
		require.Equal(t, e1, r.ExecutorID)
		b.endRun(t, s, r.ID, api.RunFailed)
	}
	xs, err := b.disp.Executors(ctx)
	require.NoError(t, err)
	states := map[string]string{}
	for _, x := range xs {
		states[x.ID] = x.State
	}
	require.Equal(t, api.ExecutorQuarantined, states[e1])
	require.Equal(t, api.ExecutorOnline, states[e2])
	require.Equal(t, e2, trigger().ExecutorID, "a quarantined executor gets no runs")

	// After the probe wait, e1 gets one probe run; it starts: e1 is back.
	b.clock.Set(b.clock.Now().Add(30 * time.Second))
	probe := trigger()
	require.Equal(t, e1, probe.ExecutorID)
	require.Equal(t, e2, trigger().ExecutorID, "one probe at a time")
	res, err := b.st.RunReport(ctx, store.ReportParams{RunID: probe.ID, Attempt: 1, Seq: 1,
		Transition: &store.RunTransition{From: []string{api.RunAssigned}, To: api.RunRunning, Set: store.RunFields{StartedAt: b.clock.Now()}}})
	require.NoError(t, err)
	b.disp.Started(res.Run)
	x, err := b.disp.Executor(ctx, e1)
	require.NoError(t, err)
	require.Equal(t, api.ExecutorOnline, x.State)
}

func TestDispatcher_Drain(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	b.disp.HandBackFunc = s.HandBack
	e1, e2 := b.twoExecutors(t, start)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "d", Group: "g", Manual: true, Command: []string{"sleep", "60"}, Route: "first"})
	require.NoError(t, err)
	trigger := func() *store.Run {
		t.Helper()
		res, _, err := s.TriggerNow(ctx, "d", nil)
		require.NoError(t, err)
		return res.Runs[0]
	}
	running := trigger()
	p, err := b.disp.Poll(ctx, e1, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Len(t, p.Assignments, 1)
	undelivered := trigger()
	require.Equal(t, e1, undelivered.ExecutorID)

	x, err := b.disp.Drain(ctx, e1, api.DrainRequest{Timeout: api.Duration(10 * time.Second)})
	require.NoError(t, err)
	require.Equal(t, api.ExecutorDraining, x.State)
	require.Equal(t, 1, x.Drain.RunsLeft, "the undelivered run went back to the queue")
	got, err := b.st.RunGet(ctx, undelivered.ID)
	require.NoError(t, err)
	require.Equal(t, e2, got.ExecutorID, "and to another executor")
	require.Equal(t, e2, trigger().ExecutorID, "no run is routed to a draining executor")
	p, err = b.disp.Poll(ctx, e1, api.PollRequest{Running: []string{idStr(running.ID)}})
	require.NoError(t, err)
	require.Equal(t, []api.Command{{Type: api.CommandDrain}}, p.Commands)

	// At the timeout the run still going is handed back. (Both executors
	// heartbeat meanwhile.)
	b.clock.Set(b.clock.Now().Add(10 * time.Second))
	_, err = b.disp.Poll(ctx, e1, api.PollRequest{Running: []string{idStr(running.ID)}})
	require.NoError(t, err)
	_, err = b.disp.Poll(ctx, e2, api.PollRequest{FreeSlots: 2})
	require.NoError(t, err)
	b.disp.check(ctx, b.clock.Now())
	got, err = b.st.RunGet(ctx, running.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunKilled, got.State)
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "d"})
	require.NoError(t, err)
	var handed *store.Run
	for _, r := range runs {
		if r.TriggerID == running.TriggerID && r.Attempt == 2 {
			handed = r
		}
	}
	require.NotNil(t, handed, "a new attempt of the handed-back run")
	require.Equal(t, e2, handed.ExecutorID, "state %s", handed.State)

	require.NoError(t, b.disp.Deregister(ctx, e1))
	x, err = b.disp.Executor(ctx, e1)
	require.NoError(t, err)
	require.Equal(t, api.ExecutorDrained, x.State)
	_, err = b.disp.Undrain(ctx, e1)
	require.ErrorIs(t, err, store.ErrConflict)
}

func TestDispatcher_StopSaysBye(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, b := setup(t, tm(t, "2026-05-01T12:00:00Z"))
	id := b.executor(t, "g", "e1", 1)
	done := make(chan api.PollResponse, 1)
	go func() {
		resp, _ := b.disp.Poll(ctx, id, api.PollRequest{Wait: api.Duration(time.Minute)})
		done <- resp
	}()
	require.Eventually(t, func() bool {
		b.disp.mu.Lock()
		defer b.disp.mu.Unlock()
		return b.disp.execs[id].polling == 1
	}, 5*time.Second, time.Millisecond)
	b.disp.Stop()
	select {
	case resp := <-done:
		require.Equal(t, []api.Command{{Type: api.CommandBye}}, resp.Commands, "an open poll answers at once when jobd stops")
	case <-time.After(5 * time.Second):
		t.Fatal("the open poll did not answer at shutdown")
	}
}

// A drain acknowledged while a run planned for the executor is being
// stored must still see no run reach it: the run goes elsewhere.
func TestDispatcher_DrainDuringCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1, e2 := b.twoExecutors(t, start)
	job, err := s.CreateJob(ctx, api.JobSpec{Name: "j", Group: "g", Manual: true, Command: []string{"true"}})
	require.NoError(t, err)

	ps, ok := b.disp.Plan(job)
	require.True(t, ok)
	require.Len(t, ps, 1)
	require.Equal(t, e1, ps[0].Exec.id, "planned for e1")

	_, err = b.disp.Drain(ctx, e1, api.DrainRequest{})
	require.NoError(t, err)

	// The fire transaction stores the run assigned to e1, then commits.
	run := &store.Run{JobID: job.row.ID, JobName: "j", Attempt: 1, State: api.RunAssigned, Origin: store.OriginManual,
		ExecutorID: e1, ExecutorName: "e1", ScheduledAt: start, AssignedAt: start}
	require.NoError(t, b.st.RunInsert(ctx, []*store.Run{run}))
	b.disp.Commit(job, ps, []*store.Run{run})

	poll, err := b.disp.Poll(ctx, e1, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Empty(t, poll.Assignments, "nothing reaches a drained executor")
	got, err := b.st.RunGet(ctx, run.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunAssigned, got.State)
	require.Equal(t, e2, got.ExecutorID, "the run went to the other executor")
	poll, err = b.disp.Poll(ctx, e2, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	require.Len(t, poll.Assignments, 1)
	require.Equal(t, idStr(run.ID), poll.Assignments[0].RunID)
}
