package e2e

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
	"github.com/jobd/jobd/store/sqlite"
)

// TestAuditJob checks the oracle of the crash test on a hand-made store: a
// clean history passes, and a time fired and missed, a time neither fired
// nor missed and a miscounted missed row are each reported.
func TestAuditJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "jobd.db"))
	require.NoError(t, err)
	t.Cleanup(func() { _ = st.Close() })

	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(i int) time.Time { return t0.Add(time.Duration(i) * time.Second) }
	// Each job has times 0..5 stored, 5 still pending, cursor at 6.
	mkJob := func(name string) *store.Job {
		j, err := st.JobCreate(ctx, &store.Job{Name: name, Group: "g", Spec: []byte(`{"name":"` + name + `","every":"1s"}`),
			NextFireAt: at(0), CreatedAt: t0, UpdatedAt: t0})
		require.NoError(t, err)
		var trs []*store.Trigger
		for i := 0; i <= 5; i++ {
			trs = append(trs, &store.Trigger{JobID: j.ID, ScheduledAt: at(i), Origin: store.OriginSchedule, State: store.TriggerPending})
		}
		_, err = st.TriggersMaterialize(ctx, store.MaterializeParams{
			Advances: []store.JobAdvance{{JobID: j.ID, Expect: at(0), Next: at(6)}}, Triggers: trs})
		require.NoError(t, err)
		return j
	}
	triggerAt := func(j *store.Job, i int) int64 {
		trs, err := st.TriggerList(ctx, j.ID, at(i), at(i))
		require.NoError(t, err)
		require.Len(t, trs, 1)
		return trs[0].ID
	}
	fire := func(j *store.Job, i int) *store.FireParams {
		return &store.FireParams{TriggerID: triggerAt(j, i), State: store.TriggerFired, FireAt: at(i),
			Runs: []*store.Run{{JobName: j.Name, Attempt: 1, State: store.RunSucceeded, ShardTotal: 1}}}
	}
	miss := func(j *store.Job, i int, count int64) *store.FireParams {
		return &store.FireParams{TriggerID: triggerAt(j, i), State: store.TriggerMissed, FireAt: at(i),
			Missed: &store.MissedAppend{Missed: &store.Missed{JobID: j.ID, JobName: j.Name, From: at(i), To: at(i),
				Count: count, Reason: "down", Schedule: "{}"}}}
	}

	clean := mkJob("clean")
	_, err = st.TriggersFire(ctx, []*store.FireParams{fire(clean, 0), fire(clean, 1), miss(clean, 2, 1), fire(clean, 3), miss(clean, 4, 1)})
	require.NoError(t, err)

	bad := mkJob("bad")
	hole := miss(bad, 3, 1)
	hole.Missed = nil // settled as missed without a record
	_, err = st.TriggersFire(ctx, []*store.FireParams{fire(bad, 0), fire(bad, 1), miss(bad, 2, 2), hole, fire(bad, 4)})
	require.NoError(t, err)
	require.NoError(t, st.MissedAppend(ctx, []*store.MissedAppend{{Missed: &store.Missed{JobID: bad.ID, JobName: "bad",
		From: at(1), To: at(1), Count: 1, Reason: "coalesced", Schedule: "{}"}}}))

	a := auditJob(t, st, "clean")
	require.Empty(t, a.Problems)
	require.Len(t, a.Expected, 5)
	require.Equal(t, []int64{at(5).UnixMilli()}, a.Pending)

	a = auditJob(t, st, "bad")
	all := strings.Join(a.Problems, "\n")
	require.Contains(t, all, "time 2026-01-01T00:00:01.000Z both fired and missed")
	require.Contains(t, all, "time 2026-01-01T00:00:03.000Z neither fired nor missed")
	require.Contains(t, all, "has count 2 but covers 1 times")
	require.Len(t, a.Problems, 3, all)
}
