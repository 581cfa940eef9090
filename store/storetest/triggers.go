package storetest

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var triggerTests = []test{
	{"MaterializeInserts", testMaterializeInserts},
	{"MaterializeKeepsStored", testMaterializeKeepsStored},
	{"MaterializeGuardCursorMoved", testMaterializeGuard},
	{"MaterializeWithoutAdvance", testMaterializeWithoutAdvance},
	{"DeletedJobDropped", testDeletedJobDropped},
	{"FireTwiceAppliesOnce", testFireTwice},
	{"FireConcurrentAppliesOnce", testFireConcurrent},
	{"FireManual", testFireManual},
	{"FireManualConflict", testFireManualConflict},
	{"FireMissed", testFireMissed},
	{"FireLastFireAtNeverGoesBack", testFireLastFireAt},
	{"FireRejectsBadState", testFireBadState},
	{"FireBatch", testFireBatch},
	{"List", testTriggerList},
}

func testMaterializeInserts(t *testing.T, s store.Store) {
	j := createJob(t, s, "m", at(0))
	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: j.ID, Expect: at(0), Next: at(3)}},
		Triggers: []*store.Trigger{
			{JobID: j.ID, ScheduledAt: at(2), Origin: store.OriginSchedule},
			{JobID: j.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
			{JobID: j.ID, ScheduledAt: at(1), Origin: store.OriginSchedule},
		},
	})
	require.NoError(t, err)
	require.Len(t, out, 3)
	for i, want := range []time.Time{at(2), at(0), at(1)} {
		require.NotZero(t, out[i].ID)
		require.Equal(t, j.ID, out[i].JobID)
		requireTime(t, want, out[i].ScheduledAt)
		require.Equal(t, store.TriggerPending, out[i].State)
		require.Equal(t, store.OriginSchedule, out[i].Origin)
		require.True(t, out[i].FiredAt.IsZero())
	}
	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(3), got.NextFireAt, "cursor advanced")

	pending := pendingOf(t, s, j.ID)
	require.Len(t, pending, 3)
	for i, want := range []time.Time{at(0), at(1), at(2)} {
		requireTime(t, want, pending[i].ScheduledAt, "earliest first")
	}
}

func testMaterializeKeepsStored(t *testing.T, s store.Store) {
	j := createJob(t, s, "k", at(0))
	first := materialize(t, s, j, at(0), at(1))
	require.Len(t, first, 2)
	// A restart recomputes an overlapping window: stored ones are kept.
	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: j.ID, Expect: at(2), Next: at(4)}},
		Triggers: []*store.Trigger{
			{JobID: j.ID, ScheduledAt: at(1), Origin: store.OriginSchedule},
			{JobID: j.ID, ScheduledAt: at(2), Origin: store.OriginSchedule},
			{JobID: j.ID, ScheduledAt: at(3), Origin: store.OriginSchedule},
		},
	})
	require.NoError(t, err)
	require.Len(t, out, 2, "only the new ones are returned")
	requireTime(t, at(2), out[0].ScheduledAt)
	requireTime(t, at(3), out[1].ScheduledAt)
	pending := pendingOf(t, s, j.ID)
	require.Len(t, pending, 4)
	require.Equal(t, first[1].ID, pending[1].ID, "the stored trigger is unchanged")

	// A fired trigger is not re-created either.
	require.True(t, fire(t, s, j, first[0].ID).Applied)
	out, err = s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: at(0), Origin: store.OriginSchedule}},
	})
	require.NoError(t, err)
	require.Empty(t, out)
	require.Len(t, pendingOf(t, s, j.ID), 3)
}

func testMaterializeGuard(t *testing.T, s store.Store) {
	moved := createJob(t, s, "moved", at(0))
	ok := createJob(t, s, "ok", at(0))
	// The job was edited after the scheduler read its cursor.
	edit := *moved
	edit.NextFireAt = at(50)
	_, err := s.JobUpdate(ctx(t), store.JobUpdateParams{Job: &edit})
	require.NoError(t, err)

	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{
			{JobID: moved.ID, Expect: at(0), Next: at(2)},
			{JobID: ok.ID, Expect: at(0), Next: at(2)},
		},
		Triggers: []*store.Trigger{
			{JobID: moved.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
			{JobID: ok.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
			{JobID: moved.ID, ScheduledAt: at(1), Origin: store.OriginSchedule},
			{JobID: ok.ID, ScheduledAt: at(1), Origin: store.OriginSchedule},
		},
		Missed: []*store.MissedAppend{
			{Missed: &store.Missed{JobID: moved.ID, JobName: "moved", From: at(-3), To: at(-1), Count: 3, Reason: "down"}},
			{Missed: &store.Missed{JobID: ok.ID, JobName: "ok", From: at(-3), To: at(-1), Count: 3, Reason: "down"}},
		},
	})
	require.NoError(t, err)
	require.Len(t, out, 2)
	for _, tr := range out {
		require.Equal(t, ok.ID, tr.JobID)
	}
	require.Empty(t, pendingOf(t, s, moved.ID))
	got, err := s.JobGetByID(ctx(t), moved.ID)
	require.NoError(t, err)
	requireTime(t, at(50), got.NextFireAt, "the edit wins")
	got, err = s.JobGetByID(ctx(t), ok.ID)
	require.NoError(t, err)
	requireTime(t, at(2), got.NextFireAt)

	missed, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	require.Len(t, missed, 1)
	require.Equal(t, "ok", missed[0].JobName)

	// A NULL cursor is matched by a zero Expect, and can be set to NULL.
	none := createJob(t, s, "none", time.Time{})
	out, err = s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: none.ID, Next: time.Time{}}},
		Triggers: []*store.Trigger{{JobID: none.ID, ScheduledAt: at(5), Origin: store.OriginSchedule}},
	})
	require.NoError(t, err)
	require.Len(t, out, 1)
	out, err = s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: none.ID, Expect: at(5), Next: at(6)}},
		Triggers: []*store.Trigger{{JobID: none.ID, ScheduledAt: at(6), Origin: store.OriginSchedule}},
	})
	require.NoError(t, err)
	require.Empty(t, out, "cursor is NULL, not at(5)")
}

func testMaterializeWithoutAdvance(t *testing.T, s store.Store) {
	j := createJob(t, s, "w", at(100))
	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: at(1), Origin: store.OriginSchedule}},
		Missed:   []*store.MissedAppend{{Missed: &store.Missed{JobID: j.ID, JobName: "w", From: at(0), To: at(0), Count: 1, Reason: "r"}}},
	})
	require.NoError(t, err)
	require.Len(t, out, 1)
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 1, total)
	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(100), got.NextFireAt, "cursor untouched")
}

func testFireTwice(t *testing.T, s store.Store) {
	j := createJob(t, s, "f", at(0))
	tr := materialize(t, s, j, at(0))[0]
	res := fire(t, s, j, tr.ID)
	require.True(t, res.Applied)
	require.Equal(t, tr.ID, res.TriggerID)
	require.Len(t, res.Runs, 1)
	run := res.Runs[0]
	require.NotZero(t, run.ID)
	require.Equal(t, tr.ID, run.TriggerID)
	require.Equal(t, j.ID, run.JobID, "filled from the trigger")
	requireTime(t, at(0), run.ScheduledAt, "filled from the trigger")

	again := fire(t, s, j, tr.ID)
	require.False(t, again.Applied)
	require.Empty(t, again.Runs)

	runs, err := s.RunList(ctx(t), store.RunListParams{JobName: "f"})
	require.NoError(t, err)
	require.Len(t, runs, 1, "no extra run")
	require.Empty(t, pendingOf(t, s, j.ID))

	list, err := s.TriggerList(ctx(t), j.ID, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, store.TriggerFired, list[0].State)
	requireTime(t, at(1000), list[0].FiredAt)

	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(0), got.LastFireAt)

	// Missing trigger ids are not applied either.
	res = fire(t, s, j, 987654)
	require.False(t, res.Applied)
}

func testFireConcurrent(t *testing.T, s store.Store) {
	j := createJob(t, s, "c", at(0))
	trs := materialize(t, s, j, at(0), at(1), at(2), at(3), at(4))
	const firers = 4
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied = map[int64]int{}
	)
	for range firers {
		wg.Go(func() {
			batch := make([]*store.FireParams, 0, len(trs))
			for _, tr := range trs {
				batch = append(batch, &store.FireParams{
					TriggerID: tr.ID, State: store.TriggerFired, FireAt: at(10),
					Runs: []*store.Run{{JobName: "c", Attempt: 1}},
				})
			}
			res, err := s.TriggersFire(ctx(t), batch)
			if !assertNoError(t, err) {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range res {
				if r.Applied {
					applied[r.TriggerID]++
				}
			}
		})
	}
	wg.Wait()
	require.Len(t, applied, len(trs))
	for id, n := range applied {
		require.Equal(t, 1, n, "trigger %d", id)
	}
	runs, err := s.RunList(ctx(t), store.RunListParams{JobName: "c"})
	require.NoError(t, err)
	require.Len(t, runs, len(trs))
}

// assertNoError reports err from a goroutine without FailNow.
func assertNoError(t *testing.T, err error) bool {
	t.Helper()
	if err != nil {
		t.Errorf("unexpected error: %v", err)
		return false
	}
	return true
}

func testFireManual(t *testing.T, s store.Store) {
	j := createJob(t, s, "man", time.Time{})
	batch := []*store.FireParams{{
		Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(7), Origin: store.OriginManual},
		State:   store.TriggerFired,
		FireAt:  at(7),
		Runs:    []*store.Run{{JobName: "man", Attempt: 1}, {JobName: "man", Attempt: 1, ShardIndex: 1, ShardTotal: 2}},
	}, {
		// The same time again: manual triggers are not unique.
		Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(7), Origin: store.OriginManual},
		State:   store.TriggerFired,
		FireAt:  at(7),
		Runs:    []*store.Run{{JobName: "man", Attempt: 1}},
	}}
	res, err := s.TriggersFire(ctx(t), batch)
	require.NoError(t, err)
	require.Len(t, res, 2)
	require.True(t, res[0].Applied)
	require.True(t, res[1].Applied)
	require.NotZero(t, res[0].TriggerID)
	require.NotEqual(t, res[0].TriggerID, res[1].TriggerID)
	require.Len(t, res[0].Runs, 2)
	for _, r := range res[0].Runs {
		require.Equal(t, res[0].TriggerID, r.TriggerID)
		require.NotZero(t, r.ID)
	}
	list, err := s.TriggerList(ctx(t), j.ID, at(7), at(7))
	require.NoError(t, err)
	require.Len(t, list, 2)
	require.Equal(t, store.TriggerFired, list[0].State)
	require.Equal(t, store.OriginManual, list[0].Origin)
	require.Empty(t, pendingOf(t, s, j.ID))
	run, err := s.RunGet(ctx(t), res[0].Runs[1].ID)
	require.NoError(t, err)
	require.Equal(t, 1, run.ShardIndex)
	require.Equal(t, 2, run.ShardTotal)
}

func testFireManualConflict(t *testing.T, s store.Store) {
	j := createJob(t, s, "mc", at(0))
	materialize(t, s, j, at(0))
	// An inserted fire that collides with the stored schedule trigger.
	res, err := s.TriggersFire(ctx(t), []*store.FireParams{{
		Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
		State:   store.TriggerFired,
		FireAt:  at(0),
		Runs:    []*store.Run{{JobName: "mc", Attempt: 1}},
	}})
	require.NoError(t, err)
	require.False(t, res[0].Applied)
	runs, err := s.RunList(ctx(t), store.RunListParams{})
	require.NoError(t, err)
	require.Empty(t, runs)
	require.Len(t, pendingOf(t, s, j.ID), 1, "the stored trigger is untouched")
}

func testFireMissed(t *testing.T, s store.Store) {
	j := createJob(t, s, "fm", at(0))
	trs := materialize(t, s, j, at(0), at(1))
	mk := func(tr *store.Trigger, after time.Time) *store.FireParams {
		return &store.FireParams{
			TriggerID: tr.ID, State: store.TriggerMissed, FireAt: at(60),
			Missed: &store.MissedAppend{
				Missed:     &store.Missed{JobID: j.ID, JobName: "fm", From: tr.ScheduledAt, To: tr.ScheduledAt, Count: 1, Reason: "late", Schedule: "every 1s"},
				MergeAfter: after,
			},
		}
	}
	res, err := s.TriggersFire(ctx(t), []*store.FireParams{mk(trs[0], time.Time{}), mk(trs[1], at(0))})
	require.NoError(t, err)
	require.True(t, res[0].Applied)
	require.True(t, res[1].Applied)
	require.Empty(t, res[0].Runs)

	missed, err := s.MissedList(ctx(t), store.MissedListParams{JobName: "fm"})
	require.NoError(t, err)
	require.Len(t, missed, 1, "merged")
	require.EqualValues(t, 2, missed[0].Count)
	requireTime(t, at(0), missed[0].From)
	requireTime(t, at(1), missed[0].To)

	list, err := s.TriggerList(ctx(t), j.ID, time.Time{}, time.Time{})
	require.NoError(t, err)
	for _, tr := range list {
		require.Equal(t, store.TriggerMissed, tr.State)
	}
	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	require.True(t, got.LastFireAt.IsZero(), "a missed trigger is not a fire")

	// Settling it again records nothing more.
	res, err = s.TriggersFire(ctx(t), []*store.FireParams{mk(trs[0], time.Time{})})
	require.NoError(t, err)
	require.False(t, res[0].Applied)
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 2, total)
}

func testFireLastFireAt(t *testing.T, s store.Store) {
	j := createJob(t, s, "lf", at(0))
	trs := materialize(t, s, j, at(0), at(1), at(2))
	require.True(t, fire(t, s, j, trs[2].ID).Applied)
	require.True(t, fire(t, s, j, trs[0].ID).Applied)
	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(2), got.LastFireAt)

	// Within one batch the latest wins too.
	res, err := s.TriggersFire(ctx(t), []*store.FireParams{{TriggerID: trs[1].ID, State: store.TriggerFired}})
	require.NoError(t, err)
	require.True(t, res[0].Applied)
	got, err = s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(2), got.LastFireAt)

	// A later fire shows at once, however the driver stores it.
	later := materialize(t, s, j, at(3))
	require.True(t, fire(t, s, j, later[0].ID).Applied)
	for _, get := range []func() (*store.Job, error){
		func() (*store.Job, error) { return s.JobGet(ctx(t), "lf") },
		func() (*store.Job, error) { return s.JobGetByID(ctx(t), j.ID) },
		func() (*store.Job, error) {
			js, err := s.JobList(ctx(t), store.JobListParams{})
			if err != nil || len(js) != 1 {
				return nil, err
			}
			return js[0], nil
		},
	} {
		got, err := get()
		require.NoError(t, err)
		require.NotNil(t, got)
		requireTime(t, at(3), got.LastFireAt)
	}
}

func testFireBadState(t *testing.T, s store.Store) {
	j := createJob(t, s, "bad", at(0))
	tr := materialize(t, s, j, at(0))[0]
	_, err := s.TriggersFire(ctx(t), []*store.FireParams{
		{TriggerID: tr.ID, State: store.TriggerFired},
		{TriggerID: tr.ID, State: "bogus"},
	})
	require.Error(t, err)
	require.Len(t, pendingOf(t, s, j.ID), 1, "the whole batch rolled back")
}

func testTriggerList(t *testing.T, s store.Store) {
	j := createJob(t, s, "l", at(0))
	other := createJob(t, s, "o", at(0))
	materialize(t, s, j, at(0), at(1), at(2), at(3))
	materialize(t, s, other, at(1))
	list, err := s.TriggerList(ctx(t), j.ID, at(1), at(2))
	require.NoError(t, err)
	require.Len(t, list, 2)
	requireTime(t, at(1), list[0].ScheduledAt)
	requireTime(t, at(2), list[1].ScheduledAt)
	list, err = s.TriggerList(ctx(t), j.ID, at(2), time.Time{})
	require.NoError(t, err)
	require.Len(t, list, 2)
	list, err = s.TriggerList(ctx(t), j.ID, time.Time{}, at(0))
	require.NoError(t, err)
	require.Len(t, list, 1)
}

// testDeletedJobDropped: writes for a job deleted meanwhile are dropped
// without failing the rest of their batch.
func testDeletedJobDropped(t *testing.T, s store.Store) {
	gone := createJob(t, s, "gone", time.Time{})
	live := createJob(t, s, "live", time.Time{})
	require.NoError(t, s.JobDelete(ctx(t), gone.ID))

	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Triggers: []*store.Trigger{
			{JobID: gone.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
			{JobID: live.ID, ScheduledAt: at(0), Origin: store.OriginSchedule},
		},
		Missed: []*store.MissedAppend{
			{Missed: miss(gone, at(-1), at(-1), 1, "down")},
			{Missed: miss(live, at(-1), at(-1), 1, "down")},
		},
	})
	require.NoError(t, err)
	require.Len(t, out, 1)
	require.Equal(t, live.ID, out[0].JobID)

	res, err := s.TriggersFire(ctx(t), []*store.FireParams{
		{Trigger: &store.Trigger{JobID: gone.ID, ScheduledAt: at(5), Origin: store.OriginManual}, State: store.TriggerFired,
			Runs: []*store.Run{{JobName: "gone", Attempt: 1}}},
		{TriggerID: out[0].ID, State: store.TriggerFired, Runs: []*store.Run{{JobName: "live", Attempt: 1}}},
	})
	require.NoError(t, err)
	require.False(t, res[0].Applied)
	require.True(t, res[1].Applied)

	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: miss(gone, at(9), at(9), 1, "down")}}))
	replayed, err := s.MissedReplay(ctx(t), store.ReplayParams{Triggers: []*store.Trigger{
		{JobID: gone.ID, ScheduledAt: at(1), Origin: store.OriginReplay},
	}})
	require.NoError(t, err)
	require.Empty(t, replayed)

	missed, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	require.Len(t, missed, 1)
	require.Equal(t, "live", missed[0].JobName)
	runs, err := s.RunList(ctx(t), store.RunListParams{})
	require.NoError(t, err)
	require.Len(t, runs, 1)
	require.Equal(t, "live", runs[0].JobName)
}

// testFireBatch fires many stored triggers in one call, the way the
// scheduler does under load: fired and missed ones, one already settled,
// some with several runs.
func testFireBatch(t *testing.T, s store.Store) {
	j := createJob(t, s, "batch", at(0))
	times := make([]time.Time, 40)
	for i := range times {
		times[i] = at(i)
	}
	trs := materialize(t, s, j, times...)
	require.Len(t, trs, len(times))
	require.True(t, fire(t, s, j, trs[5].ID).Applied)

	batch := make([]*store.FireParams, len(trs))
	for i, tr := range trs {
		switch {
		case i%10 == 9:
			batch[i] = &store.FireParams{TriggerID: tr.ID, State: store.TriggerMissed, FireAt: at(100),
				Missed: &store.MissedAppend{Missed: miss(j, tr.ScheduledAt, tr.ScheduledAt, 1, "down")}}
		case i%2 == 0:
			batch[i] = &store.FireParams{TriggerID: tr.ID, State: store.TriggerFired, FireAt: at(100), Runs: []*store.Run{
				{JobName: j.Name, Attempt: 1, ShardIndex: 0, ShardTotal: 2},
				{JobName: j.Name, Attempt: 1, ShardIndex: 1, ShardTotal: 2}}}
		default:
			batch[i] = &store.FireParams{TriggerID: tr.ID, State: store.TriggerFired, FireAt: at(100),
				Runs: []*store.Run{{JobName: j.Name, Attempt: 1, ShardTotal: 1}}}
		}
	}
	res, err := s.TriggersFire(ctx(t), batch)
	require.NoError(t, err)
	require.Len(t, res, len(batch))
	ids := map[int64]bool{}
	stored := 1 // the run of the single fire above
	for i, r := range res {
		if i == 5 {
			require.False(t, r.Applied, "settled already")
			require.Empty(t, r.Runs)
			continue
		}
		require.True(t, r.Applied, "item %d", i)
		require.Equal(t, trs[i].ID, r.TriggerID)
		require.Len(t, r.Runs, len(batch[i].Runs), "item %d", i)
		for k, run := range r.Runs {
			require.NotZero(t, run.ID)
			require.False(t, ids[run.ID], "run ids are distinct")
			ids[run.ID] = true
			require.Equal(t, trs[i].ID, run.TriggerID)
			require.Equal(t, k, run.ShardIndex)
			requireTime(t, trs[i].ScheduledAt, run.ScheduledAt)
			got, err := s.RunGet(ctx(t), run.ID)
			require.NoError(t, err)
			require.Equal(t, trs[i].ID, got.TriggerID, "run %d is stored under its trigger", run.ID)
			require.Equal(t, k, got.ShardIndex)
			stored++
		}
	}
	require.Empty(t, pendingOf(t, s, j.ID))
	runs, err := s.RunList(ctx(t), store.RunListParams{JobName: j.Name})
	require.NoError(t, err)
	require.Len(t, runs, stored)
	missed, err := s.MissedList(ctx(t), store.MissedListParams{JobName: j.Name})
	require.NoError(t, err)
	var n int64
	for _, m := range missed {
		n += m.Count
	}
	require.EqualValues(t, 4, n)
	got, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	requireTime(t, at(38), got.LastFireAt)
}
