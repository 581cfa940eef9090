package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var missedTests = []test{
	{"AppendMergesBounded", testMissedMerge},
	{"AppendNoMerge", testMissedNoMerge},
	{"ListFilters", testMissedList},
	{"Replay", testMissedReplay},
	{"ReplayConflict", testMissedReplayConflict},
	{"ReplayExtended", testMissedReplayExtended},
}

func miss(job *store.Job, from, to time.Time, count int64, reason string) *store.Missed {
	return &store.Missed{JobID: job.ID, JobName: job.Name, From: from, To: to, Count: count, Reason: reason, Schedule: "every 1s"}
}

func testMissedMerge(t *testing.T, s store.Store) {
	j := createJob(t, s, "sec", time.Time{})
	// A per-second job missing for an hour, recorded one second at a time:
	// one row.
	const n = 3600
	first := []*store.MissedAppend{{Missed: miss(j, at(0), at(0), 1, "down")}}
	require.NoError(t, s.MissedAppend(ctx(t), first))
	batch := make([]*store.MissedAppend, 0, n)
	for i := 1; i < n; i++ {
		batch = append(batch, &store.MissedAppend{Missed: miss(j, at(i), at(i), 1, "down"), MergeAfter: at(i - 1)})
	}
	require.NoError(t, s.MissedAppend(ctx(t), batch))
	// And a range appended in one go continues it too.
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{
		{Missed: miss(j, at(n), at(n+99), 100, "down"), MergeAfter: at(n - 1)},
	}))

	rows, err := s.MissedList(ctx(t), store.MissedListParams{JobName: "sec"})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	require.EqualValues(t, n+100, rows[0].Count)
	requireTime(t, at(0), rows[0].From)
	requireTime(t, at(n+99), rows[0].To)
	require.Equal(t, "down", rows[0].Reason)
	require.Equal(t, "every 1s", rows[0].Schedule)
	require.False(t, rows[0].RecordedAt.IsZero())
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, n+100, total)
}

func testMissedNoMerge(t *testing.T, s store.Store) {
	j := createJob(t, s, "nm", time.Time{})
	other := createJob(t, s, "other", time.Time{})
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{
		{Missed: miss(j, at(0), at(10), 11, "down")},
		// Another reason: its own row even though it continues.
		{Missed: miss(j, at(11), at(11), 1, "paused"), MergeAfter: at(10)},
		// The newest "down" row ends at 10, not 20: a new row.
		{Missed: miss(j, at(21), at(21), 1, "down"), MergeAfter: at(20)},
		// Another job never merges into this one.
		{Missed: miss(other, at(22), at(22), 1, "down"), MergeAfter: at(21)},
		// Zero MergeAfter never merges.
		{Missed: miss(j, at(22), at(22), 1, "down")},
	}))
	// Only the newest row of the job and reason is extended: merging
	// after 10 (an older row's end) adds a row.
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{
		{Missed: miss(j, at(11), at(11), 1, "down"), MergeAfter: at(10)},
	}))
	// The newest row continues, but the schedule changed: a new row.
	changed := miss(j, at(23), at(23), 1, "down")
	changed.Schedule = "every 2s"
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: changed, MergeAfter: at(22)}}))

	rows, err := s.MissedList(ctx(t), store.MissedListParams{JobName: "nm"})
	require.NoError(t, err)
	require.Len(t, rows, 6)
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 11+1+1+1+1+1+1, total)
}

func testMissedList(t *testing.T, s store.Store) {
	a := createJob(t, s, "a", time.Time{})
	b := createJob(t, s, "b", time.Time{})
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{
		{Missed: miss(b, at(50), at(60), 11, "down")},
		{Missed: miss(a, at(30), at(40), 11, "down")},
		{Missed: miss(a, at(0), at(10), 11, "down")},
		{Missed: miss(b, at(0), at(5), 6, "paused")},
	}))
	type key struct {
		job  string
		from int64
	}
	keys := func(ms []*store.Missed) []key {
		out := []key{}
		for _, m := range ms {
			out = append(out, key{m.JobName, m.From.Sub(base).Milliseconds() / 1000})
		}
		return out
	}
	all, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	require.Equal(t, []key{{"a", 0}, {"a", 30}, {"b", 0}, {"b", 50}}, keys(all), "by job then start")

	onlyA, err := s.MissedList(ctx(t), store.MissedListParams{JobName: "a"})
	require.NoError(t, err)
	require.Equal(t, []key{{"a", 0}, {"a", 30}}, keys(onlyA))

	// Overlap, inclusive at both ends.
	r, err := s.MissedList(ctx(t), store.MissedListParams{Since: at(10), Until: at(30)})
	require.NoError(t, err)
	require.Equal(t, []key{{"a", 0}, {"a", 30}}, keys(r))
	r, err = s.MissedList(ctx(t), store.MissedListParams{Since: at(41)})
	require.NoError(t, err)
	require.Equal(t, []key{{"b", 50}}, keys(r))
	r, err = s.MissedList(ctx(t), store.MissedListParams{Until: at(4)})
	require.NoError(t, err)
	require.Equal(t, []key{{"a", 0}, {"b", 0}}, keys(r))
	r, err = s.MissedList(ctx(t), store.MissedListParams{JobName: "b", Since: at(11), Until: at(49)})
	require.NoError(t, err)
	require.Empty(t, r)

	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 39, total)
}

func testMissedReplay(t *testing.T, s store.Store) {
	j := createJob(t, s, "rp", at(100))
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: miss(j, at(0), at(9), 10, "down")}}))
	rows, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	require.Len(t, rows, 1)

	// Replay 3..5: the rest stays recorded as two rows.
	trs, err := s.MissedReplay(ctx(t), store.ReplayParams{
		Delete: []*store.Missed{rows[0]},
		Insert: []*store.Missed{miss(j, at(0), at(2), 3, "down"), miss(j, at(6), at(9), 4, "down")},
		Triggers: []*store.Trigger{
			{JobID: j.ID, ScheduledAt: at(3), Origin: store.OriginReplay},
			{JobID: j.ID, ScheduledAt: at(4), Origin: store.OriginReplay},
			{JobID: j.ID, ScheduledAt: at(5), Origin: store.OriginReplay},
		},
	})
	require.NoError(t, err)
	require.Len(t, trs, 3)
	for i, tr := range trs {
		require.NotZero(t, tr.ID)
		require.Equal(t, store.TriggerPending, tr.State)
		require.Equal(t, store.OriginReplay, tr.Origin)
		requireTime(t, at(3+i), tr.ScheduledAt, "keeps its original time")
	}
	require.Len(t, pendingOf(t, s, j.ID), 3)
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 7, total)

	// A replay trigger is unique per (job, time), apart from the schedule's.
	trs, err = s.MissedReplay(ctx(t), store.ReplayParams{Triggers: []*store.Trigger{
		{JobID: j.ID, ScheduledAt: at(3), Origin: store.OriginReplay},
		{JobID: j.ID, ScheduledAt: at(6), Origin: store.OriginReplay},
	}})
	require.NoError(t, err)
	require.Len(t, trs, 1)
	requireTime(t, at(6), trs[0].ScheduledAt)
	materialize(t, s, j, at(3))
	require.Len(t, pendingOf(t, s, j.ID), 5, "a schedule trigger at a replayed time is its own row")

	// Firing a replay trigger marks its runs as replays.
	res := fire(t, s, j, trs[0].ID)
	require.True(t, res.Applied)
	run, err := s.RunGet(ctx(t), res.Runs[0].ID)
	require.NoError(t, err)
	require.True(t, run.Replay)
	require.Equal(t, store.OriginReplay, run.Origin)
}

func testMissedReplayConflict(t *testing.T, s store.Store) {
	j := createJob(t, s, "rc", time.Time{})
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: miss(j, at(0), at(9), 10, "down")}}))
	rows, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	p := store.ReplayParams{
		Delete:   []*store.Missed{rows[0]},
		Insert:   []*store.Missed{miss(j, at(1), at(9), 9, "down")},
		Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: at(0), Origin: store.OriginReplay}},
	}
	_, err = s.MissedReplay(ctx(t), p)
	require.NoError(t, err)
	// Replaying the same rows again (a second operator, a retry) must not
	// record the remainder twice.
	_, err = s.MissedReplay(ctx(t), p)
	require.ErrorIs(t, err, store.ErrConflict)
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 9, total)
}

func testMissedReplayExtended(t *testing.T, s store.Store) {
	j := createJob(t, s, "rx", time.Time{})
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: miss(j, at(0), at(4), 5, "down")}}))
	rows, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	// The row grows between the read and the replay.
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{{Missed: miss(j, at(5), at(5), 1, "down"), MergeAfter: at(4)}}))
	_, err = s.MissedReplay(ctx(t), store.ReplayParams{
		Delete:   []*store.Missed{rows[0]},
		Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: at(0), Origin: store.OriginReplay}},
	})
	require.ErrorIs(t, err, store.ErrConflict, "a replay planned on a stale row must not drop what was added since")
	total, err := s.MissedTotal(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 6, total)
}
