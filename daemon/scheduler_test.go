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

// twoExecutors registers e1 then, a millisecond later, e2 in group "g"
// (4 slots each), so that e1 comes first in routing order.
func (b *testBundle) twoExecutors(t *testing.T, start time.Time) (e1, e2 string) {
	t.Helper()
	e1 = b.executor(t, "g", "e1", 4)
	b.clock.Set(start.Add(time.Millisecond))
	return e1, b.executor(t, "g", "e2", 4)
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
	e1, e2 := b.twoExecutors(t, start)
	_, err := s.CreateJob(ctx, api.JobSpec{Name: "flaky", Group: "g", Manual: true, Command: []string{"false"},
		Route: "first", Retries: 2, Backoff: dur(10 * time.Second), BackoffPolicy: api.BackoffFixed})
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
	spec.BackoffPolicy = api.BackoffFixed
	require.Equal(t, time.Second, backoffFor(spec, 7))
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
