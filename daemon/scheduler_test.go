package daemon

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/testutil"
	"github.com/jobd/jobd/store"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

type testBundle struct {
	st    store.Store
	clock *fakeClock
	disp  *Dispatcher
}

// setup returns a scheduler over a fresh SQLite store at start.
func setup(t *testing.T, start time.Time) (*Scheduler, *testBundle) {
	t.Helper()
	b := &testBundle{st: testutil.NewStore(t), clock: &fakeClock{now: start}}
	return b.restart(t), b
}

// restart builds a new scheduler on the same store, as a new process would,
// and recovers.
func (b *testBundle) restart(t *testing.T) *Scheduler {
	t.Helper()
	log := testutil.Logger(t)
	b.disp = NewDispatcher(b.st, b.clock, log, 2*time.Second)
	s := NewScheduler(b.st, b.clock, log, b.disp, 5*time.Second)
	b.disp.JobFunc = s.jobByID
	b.disp.EndedFunc = func(runs []*store.Run) { s.RunsEnded(context.Background(), runs) }
	require.NoError(t, b.disp.Restore(context.Background(), s.jobByID))
	require.NoError(t, s.Recover(context.Background()))
	return s
}

// executor registers an in-process executor in group.
func (b *testBundle) executor(t *testing.T, group, name string, slots int) string {
	t.Helper()
	resp, err := b.disp.Register(context.Background(), api.RegisterRequest{Group: group, Name: name, Slots: slots})
	require.NoError(t, err)
	return resp.ID
}

// step moves the clock to at, materialises and fires what is due.
func (b *testBundle) step(t *testing.T, s *Scheduler, at time.Time) {
	t.Helper()
	b.clock.Set(at)
	require.NoError(t, s.materialize(context.Background(), at, nil))
	require.NoError(t, s.fireDue(context.Background(), at))
}

func dur(d time.Duration) *api.Duration { v := api.Duration(d); return &v }

func tm(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	require.NoError(t, err)
	return v
}

// firedTimes lists the scheduled times of the job's fired triggers.
func firedTimes(t *testing.T, st store.Store, name string) []time.Time {
	t.Helper()
	j, err := st.JobGet(context.Background(), name)
	require.NoError(t, err)
	ts, err := st.TriggerList(context.Background(), j.ID, time.Time{}, time.Unix(1<<40, 0))
	require.NoError(t, err)
	var out []time.Time
	for _, tr := range ts {
		if tr.State == store.TriggerFired {
			out = append(out, tr.ScheduledAt.UTC())
		}
	}
	return out
}

func missedRows(t *testing.T, st store.Store, name string) []*store.Missed {
	t.Helper()
	ms, err := st.MissedList(context.Background(), store.MissedListParams{JobName: name})
	require.NoError(t, err)
	return ms
}

func TestScheduler_FixedRateGridAcrossRestart(t *testing.T) {
	t.Parallel()
	for _, misfire := range []string{api.MisfireSkip, api.MisfireFireOnce, api.MisfireCatchUp} {
		t.Run(misfire, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, b := setup(t, tm(t, "2026-03-02T08:00:00Z"))
			b.executor(t, "g", "e1", 4)
			anchor := api.NewTime(tm(t, "2026-03-02T08:10:00Z"))
			_, err := s.CreateJob(ctx, api.JobSpec{Name: "hourly", Group: "g", Every: dur(time.Hour), Anchor: &anchor,
				Command: []string{"true"}, Misfire: misfire})
			require.NoError(t, err)
			b.step(t, s, tm(t, "2026-03-02T08:10:00Z"))
			b.step(t, s, tm(t, "2026-03-02T09:10:00.003Z"))
			// Down from 09:30 to 09:45: a new process on the same store.
			b.clock.Set(tm(t, "2026-03-02T09:45:00Z"))
			s = b.restart(t)
			b.executor(t, "g", "e1", 4)
			j, err := b.st.JobGet(ctx, "hourly")
			require.NoError(t, err)
			require.Equal(t, tm(t, "2026-03-02T10:10:00Z"), j.NextFireAt.UTC(), "the grid does not move with a restart")
			b.step(t, s, tm(t, "2026-03-02T10:10:00Z"))
			require.Equal(t, []time.Time{
				tm(t, "2026-03-02T08:10:00Z"), tm(t, "2026-03-02T09:10:00Z"), tm(t, "2026-03-02T10:10:00Z"),
			}, firedTimes(t, b.st, "hourly"))
			require.Empty(t, missedRows(t, b.st, "hourly"))
		})
	}
}

func TestScheduler_MisfireAfterDowntime(t *testing.T) {
	t.Parallel()
	start := tm(t, "2026-05-01T12:00:00Z")
	cases := []struct {
		name       string
		misfire    string
		maxCatchUp int
		fired      int
		missed     int64
		reason     string
		firstFired time.Time
	}{
		{name: "Skip", misfire: api.MisfireSkip, fired: 0, missed: 60, reason: api.MissedDown},
		{name: "FireOnce", misfire: api.MisfireFireOnce, fired: 1, missed: 59, reason: api.MissedCoalesced,
			firstFired: start.Add(60 * time.Second)},
		{name: "CatchUp", misfire: api.MisfireCatchUp, maxCatchUp: 10, fired: 10, missed: 50, reason: api.MissedCapped,
			firstFired: start.Add(time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, b := setup(t, start)
			b.executor(t, "g", "e1", 100)
			anchor := api.NewTime(start)
			_, err := s.CreateJob(ctx, api.JobSpec{Name: "persec", Group: "g", Every: dur(time.Second), Anchor: &anchor,
				Command: []string{"true"}, Misfire: tc.misfire, MaxCatchUp: tc.maxCatchUp, MisfireThreshold: dur(time.Second)})
			require.NoError(t, err)
			b.step(t, s, start) // fires 12:00:00
			// Triggers 12:00:01..12:00:05 are stored but jobd dies before
			// they fire; it comes back at 12:01:01.5: times up to 12:01:00
			// are more than 1s late.
			b.clock.Set(start.Add(61500 * time.Millisecond))
			s = b.restart(t)
			b.executor(t, "g", "e1", 100)
			require.NoError(t, s.fireDue(ctx, b.clock.Now()))
			fired := firedTimes(t, b.st, "persec")
			require.Len(t, fired, 1+tc.fired+1, "the first fire, the late ones the policy chose, and 12:01:01 on time")
			require.Equal(t, start.Add(61*time.Second), fired[len(fired)-1])
			if tc.fired > 0 {
				require.Equal(t, tc.firstFired, fired[1])
			}
			var missed int64
			for _, m := range missedRows(t, b.st, "persec") {
				require.Equal(t, tc.reason, m.Reason)
				missed += m.Count
			}
			require.Equal(t, tc.missed, missed)
			require.LessOrEqual(t, len(missedRows(t, b.st, "persec")), 2, "missed times are stored compactly")
			// The next on-time fire is 12:01:02, on the grid.
			j, err := b.st.JobGet(ctx, "persec")
			require.NoError(t, err)
			require.Equal(t, 0, j.NextFireAt.Nanosecond()%int(time.Second))
		})
	}
}

func TestScheduler_PauseDisarmsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	b.executor(t, "g", "e1", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "p", Group: "g", Every: dur(time.Second), Command: []string{"true"}})
	require.NoError(t, err)
	require.NoError(t, s.materialize(ctx, start, nil))
	_, total := s.NextTriggers(0)
	require.Equal(t, 6, total, "12:00:00 to 12:00:05 are armed")
	_, err = s.SetPaused(ctx, "p", true)
	require.NoError(t, err)
	_, total = s.NextTriggers(0)
	require.Equal(t, 0, total)
	b.step(t, s, start.Add(10*time.Second))
	require.Empty(t, firedTimes(t, b.st, "p"))
	// Resuming starts from the next time; nothing was recorded as missed
	// since the job does not ask for it.
	_, err = s.SetPaused(ctx, "p", false)
	require.NoError(t, err)
	b.step(t, s, start.Add(11*time.Second))
	require.Equal(t, []time.Time{start.Add(10 * time.Second), start.Add(11 * time.Second)}, firedTimes(t, b.st, "p"))
	require.Empty(t, missedRows(t, b.st, "p"))
}

func TestScheduler_PauseWithRecordMissed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	b.executor(t, "g", "e1", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "p", Group: "g", Every: dur(time.Second), Command: []string{"true"}, RecordMissed: true})
	require.NoError(t, err)
	b.step(t, s, start)
	_, err = s.SetPaused(ctx, "p", true)
	require.NoError(t, err)
	b.clock.Set(start.Add(30*time.Second + 500*time.Millisecond))
	_, err = s.SetPaused(ctx, "p", false)
	require.NoError(t, err)
	ms := missedRows(t, b.st, "p")
	require.Len(t, ms, 1)
	require.Equal(t, api.MissedPaused, ms[0].Reason)
	require.Equal(t, int64(30), ms[0].Count, "12:00:01 to 12:00:30")
	require.Equal(t, start.Add(time.Second), ms[0].From.UTC())
	require.Equal(t, start.Add(30*time.Second), ms[0].To.UTC())
}

func TestScheduler_NoExecutorMissedCompactly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "lonely", Group: "nobody", Every: dur(time.Second), Command: []string{"true"}})
	require.NoError(t, err)
	for i := 0; i < 20; i++ {
		b.step(t, s, start.Add(time.Duration(i)*time.Second))
	}
	ms := missedRows(t, b.st, "lonely")
	require.Len(t, ms, 1, "one row, not one per second")
	require.Equal(t, int64(20), ms[0].Count)
	require.Equal(t, api.MissedNoExecutor, ms[0].Reason)
	require.Empty(t, firedTimes(t, b.st, "lonely"))
}

func TestScheduler_Overlap(t *testing.T) {
	t.Parallel()
	start := tm(t, "2026-05-01T12:00:00Z")
	cases := []struct {
		overlap string
		states  []string // of the two runs, oldest first
	}{
		{api.OverlapAllow, []string{api.RunAssigned, api.RunAssigned}},
		{api.OverlapSkip, []string{api.RunAssigned, api.RunSkipped}},
		{api.OverlapQueue, []string{api.RunAssigned, api.RunPending}},
		{api.OverlapReplace, []string{api.RunAssigned, api.RunAssigned}},
	}
	for _, tc := range cases {
		t.Run(tc.overlap, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, b := setup(t, start)
			id := b.executor(t, "g", "e1", 4)
			_, err := s.CreateJob(ctx, api.JobSpec{Name: "o", Group: "g", Every: dur(time.Second), Command: []string{"sleep", "5"}, Overlap: tc.overlap})
			require.NoError(t, err)
			b.step(t, s, start)
			// The executor has the first run when the second fires.
			first, err := b.disp.Poll(ctx, id, api.PollRequest{FreeSlots: 4})
			require.NoError(t, err)
			require.Len(t, first.Assignments, 1)
			b.step(t, s, start.Add(time.Second))
			runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "o", Limit: 10})
			require.NoError(t, err)
			require.Len(t, runs, 2)
			require.Equal(t, tc.states, []string{runs[1].State, runs[0].State})
			poll, err := b.disp.Poll(ctx, id, api.PollRequest{Running: []string{first.Assignments[0].RunID}, FreeSlots: 3})
			require.NoError(t, err)
			if tc.overlap == api.OverlapReplace {
				require.Equal(t, []api.Command{{Type: api.CommandKill, RunID: idStr(runs[1].ID)}}, poll.Commands)
			}
			if tc.overlap == api.OverlapQueue {
				// The queued run starts when the first one ends.
				_, err := b.disp.store.RunReport(ctx, store.ReportParams{RunID: runs[1].ID, Attempt: 1, Seq: 1,
					Transition: &store.RunTransition{RunID: runs[1].ID, From: []string{api.RunAssigned}, To: api.RunSucceeded}})
				require.NoError(t, err)
				first, err := b.st.RunGet(ctx, runs[1].ID)
				require.NoError(t, err)
				b.disp.Ended(ctx, first)
				s.RunsEnded(ctx, []*store.Run{first})
				second, err := b.st.RunGet(ctx, runs[0].ID)
				require.NoError(t, err)
				require.Equal(t, api.RunAssigned, second.State)
			}
		})
	}
}

func idStr(id int64) string { return strconv.FormatInt(id, 10) }

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

func TestScheduler_FixedDelay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	id := b.executor(t, "g", "e1", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "d", Group: "g", Delay: dur(10 * time.Second), Command: []string{"true"}})
	require.NoError(t, err)
	j, err := b.st.JobGet(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, start.Add(10*time.Second), j.NextFireAt.UTC(), "the first fire is one delay after creation")
	b.step(t, s, start.Add(10*time.Second))
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "d"})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	_, err = b.disp.Poll(ctx, id, api.PollRequest{FreeSlots: 4})
	require.NoError(t, err)
	// The run takes 7s: the next fire is its finish plus the delay.
	finished := start.Add(17 * time.Second)
	res, err := b.st.RunReport(ctx, store.ReportParams{RunID: runs[0].ID, Attempt: 1, Seq: 1,
		Transition: &store.RunTransition{From: []string{api.RunAssigned}, To: api.RunSucceeded, Set: store.RunFields{FinishedAt: finished}}})
	require.NoError(t, err)
	b.disp.Ended(ctx, res.Run)
	s.RunsEnded(ctx, []*store.Run{res.Run})
	j, err = b.st.JobGet(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, finished.Add(10*time.Second), j.NextFireAt.UTC())

	// A missed fire (no executor) still schedules the next one.
	require.NoError(t, b.disp.Deregister(ctx, id))
	b.step(t, s, start.Add(27*time.Second))
	j, err = b.st.JobGet(ctx, "d")
	require.NoError(t, err)
	require.Equal(t, start.Add(37*time.Second), j.NextFireAt.UTC(), "a missed fire does not stop a fixed-delay job")
}

// endRun reports run id ended in state, as an executor would.
func (b *testBundle) endRun(t *testing.T, s *Scheduler, id int64, state string) {
	t.Helper()
	ctx := context.Background()
	res, err := b.st.RunReport(ctx, store.ReportParams{RunID: id, Attempt: 1, Seq: 99,
		Transition: &store.RunTransition{From: []string{api.RunAssigned, api.RunRunning}, To: state,
			Set: store.RunFields{FinishedAt: b.clock.Now()}}})
	require.NoError(t, err)
	require.True(t, res.Applied)
	b.disp.Ended(ctx, res.Run)
	s.RunsEnded(ctx, []*store.Run{res.Run})
}

func TestScheduler_RetryWithBackoffOnAnotherExecutor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1 := b.executor(t, "g", "e1", 4)
	b.clock.Set(start.Add(time.Millisecond)) // e2 registers later: e1 is first
	e2 := b.executor(t, "g", "e2", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "flaky", Group: "g", Manual: true, Command: []string{"false"},
		Route: "first", Retries: 2, Backoff: dur(10 * time.Second), BackoffPolicy: BackoffFixed})
	require.NoError(t, err)
	res, _, err := s.TriggerNow(ctx, "flaky", nil)
	require.NoError(t, err)
	first := res.Runs[0]
	require.Equal(t, e1, first.ExecutorID)

	b.endRun(t, s, first.ID, api.RunFailed)
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "flaky"})
	require.NoError(t, err)
	require.Len(t, runs, 2)
	retry := runs[0]
	require.Equal(t, 2, retry.Attempt)
	require.Equal(t, api.RunPending, retry.State)
	require.Equal(t, first.TriggerID, retry.TriggerID, "every attempt belongs to the trigger")
	require.Equal(t, b.clock.Now().Add(10*time.Second), retry.NotBefore)

	// Not before its backoff...
	b.disp.Dispatch(ctx)
	got, err := b.st.RunGet(ctx, retry.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunPending, got.State)
	// ...then on the other executor, though "first" would pick e1.
	b.clock.Set(retry.NotBefore)
	b.disp.Dispatch(ctx)
	got, err = b.st.RunGet(ctx, retry.ID)
	require.NoError(t, err)
	require.Equal(t, api.RunAssigned, got.State)
	require.Equal(t, e2, got.ExecutorID)

	// The last attempt fails too: no fourth run.
	b.endRun(t, s, retry.ID, api.RunTimedOut)
	runs, err = b.st.RunList(ctx, store.RunListParams{JobName: "flaky"})
	require.NoError(t, err)
	require.Len(t, runs, 3)
	b.clock.Set(runs[0].NotBefore)
	b.disp.Dispatch(ctx)
	b.endRun(t, s, runs[0].ID, api.RunFailed)
	runs, err = b.st.RunList(ctx, store.RunListParams{JobName: "flaky"})
	require.NoError(t, err)
	require.Len(t, runs, 3, "retries 2 means 3 attempts in all")
}

func TestBackoffFor(t *testing.T) {
	t.Parallel()
	spec := &api.JobSpec{Backoff: dur(time.Second), BackoffMax: dur(5 * time.Second)}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 5 * time.Second, 9: 5 * time.Second} {
		for range 50 {
			got := backoffFor(spec, attempt)
			require.GreaterOrEqual(t, got, want/2, "attempt %d", attempt)
			require.LessOrEqual(t, got, want, "attempt %d", attempt)
		}
	}
	spec.BackoffPolicy = BackoffFixed
	require.Equal(t, time.Second, backoffFor(spec, 7))
}

func TestDispatcher_DeadExecutorRunsLostWithinLostAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1 := b.executor(t, "g", "e1", 4)
	b.clock.Set(start.Add(time.Millisecond))
	e2 := b.executor(t, "g", "e2", 4)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "long", Group: "g", Manual: true, Command: []string{"sleep", "60"},
		Route: "first", Retries: 1, Backoff: dur(0), BackoffPolicy: BackoffFixed})
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

func TestScheduler_KillRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	id := b.executor(t, "g", "e1", 1)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "k", Group: "g", Manual: true, Command: []string{"sleep", "60"}, Retries: 3})
	require.NoError(t, err)
	r1, _, err := s.TriggerNow(ctx, "k", nil)
	require.NoError(t, err)
	r2, _, err := s.TriggerNow(ctx, "k", nil)
	require.NoError(t, err)
	require.Equal(t, api.RunPending, r2.Runs[0].State, "one slot: the second run waits in the queue")
	p, err := b.disp.Poll(ctx, id, api.PollRequest{FreeSlots: 1})
	require.NoError(t, err)
	require.Len(t, p.Assignments, 1)

	// A queued run ends killed at once; no retry for a kill.
	got, err := s.KillRun(ctx, r2.Runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, api.RunKilled, got.State)
	// A run on an executor gets a kill command and stays until it reports.
	got, err = s.KillRun(ctx, r1.Runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, api.RunAssigned, got.State)
	p, err = b.disp.Poll(ctx, id, api.PollRequest{Running: []string{idStr(r1.Runs[0].ID)}})
	require.NoError(t, err)
	require.Equal(t, []api.Command{{Type: api.CommandKill, RunID: idStr(r1.Runs[0].ID)}}, p.Commands)
	b.endRun(t, s, r1.Runs[0].ID, api.RunKilled)
	runs, err := b.st.RunList(ctx, store.RunListParams{JobName: "k"})
	require.NoError(t, err)
	require.Len(t, runs, 2, "killed runs are not retried")
	_, err = s.KillRun(ctx, r1.Runs[0].ID)
	require.ErrorIs(t, err, store.ErrConflict, "a run that ended cannot be killed")
}

func TestDispatcher_Quarantine(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	start := tm(t, "2026-05-01T12:00:00Z")
	s, b := setup(t, start)
	e1 := b.executor(t, "g", "e1", 4)
	b.clock.Set(start.Add(time.Millisecond))
	e2 := b.executor(t, "g", "e2", 4)
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
	e1 := b.executor(t, "g", "e1", 4)
	b.clock.Set(start.Add(time.Millisecond))
	e2 := b.executor(t, "g", "e2", 4)
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
