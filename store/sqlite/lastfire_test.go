package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

// scanRange counts the triggers the last-fire scan of a job covers: those
// of the job from lastFireScanFrom on (the subquery searches triggers_key
// on job_id and that lower bound, see TestLastFireScanPlan).
func scanRange(t *testing.T, s *Store, jobID int64) int {
	t.Helper()
	var n int
	require.NoError(t, s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM jobs JOIN triggers t
ON t.job_id = jobs.id AND t.scheduled_at >= `+lastFireScanFrom+` WHERE jobs.id = ?`, jobID).Scan(&n))
	return n
}

// A job whose triggers all miss (its group has no executor) must not make
// every read and cursor update scan all of them: the scan covers only what
// settled since the materialiser last advanced the job.
func TestLastFireScanBoundedByMissedTriggers(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := t.Context()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	sec := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	j, err := s.JobCreate(ctx, &store.Job{Name: "every-second", Group: "nobody", NextFireAt: sec(0)})
	require.NoError(t, err)

	const chunk, chunks = 500, 20
	var (
		cursor   = sec(0)
		straggle int64 // a pending trigger left behind the scan
	)
	for c := 0; c < chunks; c++ {
		next := sec((c + 1) * chunk)
		var trs []*store.Trigger
		for i := c * chunk; i < (c+1)*chunk; i++ {
			trs = append(trs, &store.Trigger{JobID: j.ID, ScheduledAt: sec(i)})
		}
		got, err := s.TriggersMaterialize(ctx, store.MaterializeParams{
			Advances: []store.JobAdvance{{JobID: j.ID, Expect: cursor, Next: next}},
			Triggers: trs,
		})
		require.NoError(t, err)
		require.Len(t, got, chunk)
		cursor = next
		var batch []*store.FireParams
		for _, tr := range got {
			switch {
			case c == 0 && tr.ScheduledAt.Equal(sec(0)):
				batch = append(batch, &store.FireParams{TriggerID: tr.ID, State: store.TriggerFired})
			case c == 1 && tr.ScheduledAt.Equal(sec(chunk+7)):
				straggle = tr.ID // stays pending for now
			default:
				batch = append(batch, &store.FireParams{TriggerID: tr.ID, State: store.TriggerMissed})
			}
		}
		_, err = s.TriggersFire(ctx, batch)
		require.NoError(t, err)
	}
	// One more advance, as the materialiser makes every few seconds.
	_, err = s.TriggersMaterialize(ctx, store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: j.ID, Expect: cursor, Next: cursor.Add(time.Second)}},
	})
	require.NoError(t, err)

	got, err := s.JobGet(ctx, "every-second")
	require.NoError(t, err)
	require.True(t, got.LastFireAt.Equal(sec(0)), "last fire %v, want %v", got.LastFireAt, sec(0))
	// Only what settled since the last advance (nothing) is left to scan,
	// not the 10,000 missed triggers.
	require.LessOrEqual(t, scanRange(t, s, j.ID), 1)

	// A trigger the scan moved past still counts when it fires later.
	res, err := s.TriggersFire(ctx, []*store.FireParams{{TriggerID: straggle, State: store.TriggerFired}})
	require.NoError(t, err)
	require.True(t, res[0].Applied)
	got, err = s.JobGetByID(ctx, j.ID)
	require.NoError(t, err)
	require.True(t, got.LastFireAt.Equal(sec(chunk+7)), "last fire %v, want %v", got.LastFireAt, sec(chunk+7))
	require.LessOrEqual(t, scanRange(t, s, j.ID), 1)

	// Setting the last fire back lets the fires after it count again.
	upd := *got
	upd.LastFireAt = sec(0)
	got, err = s.JobUpdate(ctx, store.JobUpdateParams{Job: &upd})
	require.NoError(t, err)
	require.True(t, got.LastFireAt.Equal(sec(chunk+7)), "last fire %v, want %v", got.LastFireAt, sec(chunk+7))
}

// The last-fire subqueries search triggers_key by job and the scan's lower
// bound, so the range scanRange counts is what they read.
func TestLastFireScanPlan(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	for name, q := range map[string]string{
		"read":    "SELECT " + jobCols + " FROM jobs WHERE name = 'x'",
		"advance": "UPDATE jobs SET next_fire_at = 1, last_fire_at = " + lastFireSQL + ", fire_scan_at = " + fireScanSQL + " WHERE id = 1 AND next_fire_at IS 0",
	} {
		rows, err := s.w.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		require.NoError(t, rows.Err())
		require.NoError(t, rows.Close())
		var searches int
		for _, d := range plan {
			if strings.Contains(d, " t ") || strings.HasSuffix(d, " t") {
				require.Contains(t, d, "USING INDEX triggers_key (job_id=? AND scheduled_at>?)", "%s: %v", name, plan)
				searches++
			}
		}
		require.NotZero(t, searches, "%s: %v", name, plan)
	}
}
