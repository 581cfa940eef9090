package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var jobTests = []test{
	{"CreateFillsIDAndTimes", testJobCreateFills},
	{"CreateDuplicateNameConflict", testJobCreateDuplicate},
	{"GetNotFound", testJobGetNotFound},
	{"ListOrderGroupPaging", testJobList},
	{"Count", testJobCount},
	{"Update", testJobUpdate},
	{"UpdateNotFound", testJobUpdateNotFound},
	{"UpdateClearPending", testJobUpdateClearPending},
	{"Delete", testJobDelete},
	{"Due", testJobsDue},
}

func testJobCreateFills(t *testing.T, s store.Store) {
	in := &store.Job{Name: "a", Group: "g", Spec: []byte("spec"), NextFireAt: at(10).Add(1234567 * time.Nanosecond)}
	j, err := s.JobCreate(ctx(t), in)
	require.NoError(t, err)
	require.NotZero(t, j.ID)
	require.False(t, j.CreatedAt.IsZero())
	requireTime(t, j.CreatedAt, j.UpdatedAt)
	requireTime(t, at(10).Add(time.Millisecond), j.NextFireAt, "kept to the millisecond")
	require.True(t, j.LastFireAt.IsZero())
	require.Zero(t, in.ID, "the argument is not modified")

	got, err := s.JobGet(ctx(t), "a")
	require.NoError(t, err)
	require.Equal(t, j.ID, got.ID)
	require.Equal(t, "g", got.Group)
	require.Equal(t, []byte("spec"), got.Spec)
	require.False(t, got.Paused)
	requireTime(t, j.NextFireAt, got.NextFireAt)
	requireTime(t, j.CreatedAt, got.CreatedAt)

	// Given times are kept.
	j2, err := s.JobCreate(ctx(t), &store.Job{Name: "b", Group: "g", Paused: true, CreatedAt: at(1), UpdatedAt: at(2), LastFireAt: at(3)})
	require.NoError(t, err)
	require.NotEqual(t, j.ID, j2.ID)
	byID, err := s.JobGetByID(ctx(t), j2.ID)
	require.NoError(t, err)
	require.Equal(t, "b", byID.Name)
	require.True(t, byID.Paused)
	require.Empty(t, byID.Spec)
	requireTime(t, at(1), byID.CreatedAt)
	requireTime(t, at(2), byID.UpdatedAt)
	requireTime(t, at(3), byID.LastFireAt)
	require.True(t, byID.NextFireAt.IsZero())
}

func testJobCreateDuplicate(t *testing.T, s store.Store) {
	orig := createJob(t, s, "dup", at(5))
	_, err := s.JobCreate(ctx(t), &store.Job{Name: "dup", Group: "other", NextFireAt: at(99)})
	require.ErrorIs(t, err, store.ErrConflict)
	require.NotErrorIs(t, err, store.ErrNotFound)

	got, err := s.JobGet(ctx(t), "dup")
	require.NoError(t, err)
	require.Equal(t, orig.ID, got.ID)
	require.Equal(t, "default", got.Group)
	requireTime(t, at(5), got.NextFireAt)
	total, _, err := s.JobCount(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 1, total)
}

func testJobGetNotFound(t *testing.T, s store.Store) {
	_, err := s.JobGet(ctx(t), "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.JobGetByID(ctx(t), 12345)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func names(js []*store.Job) []string {
	out := []string{}
	for _, j := range js {
		out = append(out, j.Name)
	}
	return out
}

func testJobList(t *testing.T, s store.Store) {
	for _, j := range []struct{ name, group string }{{"c", "x"}, {"a", "y"}, {"e", "x"}, {"b", "x"}, {"d", "y"}} {
		_, err := s.JobCreate(ctx(t), &store.Job{Name: j.name, Group: j.group})
		require.NoError(t, err)
	}
	all, err := s.JobList(ctx(t), store.JobListParams{})
	require.NoError(t, err)
	require.Equal(t, []string{"a", "b", "c", "d", "e"}, names(all))

	x, err := s.JobList(ctx(t), store.JobListParams{Group: "x"})
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c", "e"}, names(x))

	page, err := s.JobList(ctx(t), store.JobListParams{After: "a", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"b", "c"}, names(page))
	page, err = s.JobList(ctx(t), store.JobListParams{After: "c", Limit: 2})
	require.NoError(t, err)
	require.Equal(t, []string{"d", "e"}, names(page))
	page, err = s.JobList(ctx(t), store.JobListParams{After: "e", Limit: 2})
	require.NoError(t, err)
	require.Empty(t, page)

	page, err = s.JobList(ctx(t), store.JobListParams{Group: "x", After: "b", Limit: 1})
	require.NoError(t, err)
	require.Equal(t, []string{"c"}, names(page))
}

func testJobCount(t *testing.T, s store.Store) {
	total, paused, err := s.JobCount(ctx(t))
	require.NoError(t, err)
	require.Zero(t, total)
	require.Zero(t, paused)
	for i, p := range []bool{true, false, true} {
		_, err := s.JobCreate(ctx(t), &store.Job{Name: string(rune('a' + i)), Group: "g", Paused: p})
		require.NoError(t, err)
	}
	total, paused, err = s.JobCount(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 3, total)
	require.EqualValues(t, 2, paused)

	// Resuming one and deleting another are counted too.
	a, err := s.JobGet(ctx(t), "a")
	require.NoError(t, err)
	a.Paused = false
	_, err = s.JobUpdate(ctx(t), store.JobUpdateParams{Job: a})
	require.NoError(t, err)
	c, err := s.JobGet(ctx(t), "c")
	require.NoError(t, err)
	require.NoError(t, s.JobDelete(ctx(t), c.ID))
	total, paused, err = s.JobCount(ctx(t))
	require.NoError(t, err)
	require.EqualValues(t, 2, total)
	require.EqualValues(t, 0, paused)
}

func testJobUpdate(t *testing.T, s store.Store) {
	j := createJob(t, s, "u", at(10))
	upd := *j
	upd.Name = "renamed-is-ignored"
	upd.Group = "g2"
	upd.Spec = []byte("v2")
	upd.Paused = true
	upd.NextFireAt = time.Time{}
	upd.LastFireAt = at(7)
	upd.UpdatedAt = at(8)
	got, err := s.JobUpdate(ctx(t), store.JobUpdateParams{Job: &upd})
	require.NoError(t, err)
	require.Equal(t, j.ID, got.ID)
	require.Equal(t, "u", got.Name)
	require.Equal(t, "g2", got.Group)
	require.Equal(t, []byte("v2"), got.Spec)
	require.True(t, got.Paused)
	require.True(t, got.NextFireAt.IsZero())
	requireTime(t, at(7), got.LastFireAt)
	requireTime(t, at(8), got.UpdatedAt)
	requireTime(t, j.CreatedAt, got.CreatedAt)

	stored, err := s.JobGet(ctx(t), "u")
	require.NoError(t, err)
	require.Equal(t, got, stored)

	// A zero UpdatedAt means now.
	upd.UpdatedAt = time.Time{}
	got, err = s.JobUpdate(ctx(t), store.JobUpdateParams{Job: &upd})
	require.NoError(t, err)
	require.False(t, got.UpdatedAt.IsZero())
}

func testJobUpdateNotFound(t *testing.T, s store.Store) {
	_, err := s.JobUpdate(ctx(t), store.JobUpdateParams{Job: &store.Job{ID: 999, Name: "x", Group: "g"}, ClearPending: true})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testJobUpdateClearPending(t *testing.T, s store.Store) {
	j := createJob(t, s, "cp", at(0))
	other := createJob(t, s, "other", at(0))
	trs := materialize(t, s, j, at(0), at(1), at(2))
	materialize(t, s, other, at(0))
	fire(t, s, j, trs[0].ID)
	replay, err := s.MissedReplay(ctx(t), store.ReplayParams{Triggers: []*store.Trigger{{JobID: j.ID, ScheduledAt: at(-60), Origin: store.OriginReplay}}})
	require.NoError(t, err)
	require.Len(t, replay, 1)

	cur, err := s.JobGetByID(ctx(t), j.ID)
	require.NoError(t, err)
	// Without ClearPending nothing is deleted.
	_, err = s.JobUpdate(ctx(t), store.JobUpdateParams{Job: cur})
	require.NoError(t, err)
	require.Len(t, pendingOf(t, s, j.ID), 3)

	cur.Paused = true
	_, err = s.JobUpdate(ctx(t), store.JobUpdateParams{Job: cur, ClearPending: true})
	require.NoError(t, err)
	pending := pendingOf(t, s, j.ID)
	require.Len(t, pending, 1, "only the replay trigger stays pending")
	require.Equal(t, store.OriginReplay, pending[0].Origin)
	require.Len(t, pendingOf(t, s, other.ID), 1, "other jobs keep theirs")

	all, err := s.TriggerList(ctx(t), j.ID, time.Time{}, time.Time{})
	require.NoError(t, err)
	require.Len(t, all, 2, "the fired trigger stays")
}

func testJobDelete(t *testing.T, s store.Store) {
	j := createJob(t, s, "del", at(0))
	keep := createJob(t, s, "keep", at(0))
	trs := materialize(t, s, j, at(0), at(1))
	materialize(t, s, keep, at(0))
	res := fire(t, s, j, trs[0].ID)
	require.True(t, res.Applied)
	require.NoError(t, s.MissedAppend(ctx(t), []*store.MissedAppend{
		{Missed: &store.Missed{JobID: j.ID, JobName: j.Name, From: at(-10), To: at(-5), Count: 6, Reason: "down"}},
		{Missed: &store.Missed{JobID: keep.ID, JobName: keep.Name, From: at(-10), To: at(-10), Count: 1, Reason: "down"}},
	}))

	require.NoError(t, s.JobDelete(ctx(t), j.ID))
	_, err := s.JobGetByID(ctx(t), j.ID)
	require.ErrorIs(t, err, store.ErrNotFound)
	require.Empty(t, pendingOf(t, s, j.ID))
	missed, err := s.MissedList(ctx(t), store.MissedListParams{})
	require.NoError(t, err)
	require.Len(t, missed, 1)
	require.Equal(t, "keep", missed[0].JobName)
	require.Len(t, pendingOf(t, s, keep.ID), 1)

	run, err := s.RunGet(ctx(t), res.Runs[0].ID)
	require.NoError(t, err, "runs stay in history")
	require.Equal(t, "del", run.JobName)

	require.ErrorIs(t, s.JobDelete(ctx(t), j.ID), store.ErrNotFound)

	// The name is free again, and the new job does not inherit the old id.
	j2 := createJob(t, s, "del", time.Time{})
	require.NotEqual(t, j.ID, j2.ID)
}

func testJobsDue(t *testing.T, s store.Store) {
	createJob(t, s, "late", at(30))
	createJob(t, s, "early", at(10))
	createJob(t, s, "mid", at(20))
	createJob(t, s, "future", at(100))
	createJob(t, s, "none", time.Time{})
	_, err := s.JobCreate(ctx(t), &store.Job{Name: "paused", Group: "g", Paused: true, NextFireAt: at(5)})
	require.NoError(t, err)

	due, err := s.JobsDue(ctx(t), at(30), 0)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "mid", "late"}, names(due), "at or before, earliest first, unpaused")

	due, err = s.JobsDue(ctx(t), at(30), 2)
	require.NoError(t, err)
	require.Equal(t, []string{"early", "mid"}, names(due))

	due, err = s.JobsDue(ctx(t), at(9), 10)
	require.NoError(t, err)
	require.Empty(t, due)
}
