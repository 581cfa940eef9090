package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// byStart returns the runs that started, oldest start first.
func byStart(rs []api.Run) []api.Run {
	var out []api.Run
	for _, r := range rs {
		if !r.StartedAt.IsZero() {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b api.Run) int { return a.StartedAt.Compare(b.StartedAt.Time) })
	return out
}

// overlapping returns a pair of runs whose executions overlap in time, if
// any (a run still going overlaps every later start).
func overlapping(rs []api.Run) (a, b api.Run, ok bool) {
	started := byStart(rs)
	for i := range started {
		for j := i + 1; j < len(started); j++ {
			if started[i].FinishedAt.IsZero() || started[j].StartedAt.Before(started[i].FinishedAt.Time) {
				return started[i], started[j], true
			}
		}
	}
	return api.Run{}, api.Run{}, false
}

// TestOverlapPolicies runs a 2.5s command every second under each overlap
// policy, each on its own jobd.
func TestOverlapPolicies(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T, policy string) *Jobd {
		d := startJobd(t, jobdOpts{})
		startExecutor(t, d, "ov", "ov-1", 8)
		d.ctl("job", "create", "slow", "--group", "ov", "--every", "1s", "--overlap", policy, "--command", "sleep 2.5")
		return d
	}

	t.Run("Skip", func(t *testing.T) {
		t.Parallel()
		d := setup(t, api.OverlapSkip)
		var rs []api.Run
		eventually(t, 15*time.Second, func() bool {
			rs = d.runs("slow")
			return len(runsIn(rs, api.RunSkipped)) >= 2 && len(runsIn(rs, api.RunSucceeded)) >= 1
		}, "skipped runs while one runs, and one that succeeded")
		for _, r := range runsIn(rs, api.RunSkipped) {
			require.NotEmpty(t, r.Error, "skipped run %s says why", r.ID)
			require.True(t, r.StartedAt.IsZero(), "skipped run %s started", r.ID)
			require.Empty(t, r.Executor, "skipped run %s went to an executor", r.ID)
		}
		var ran []api.Run
		for _, r := range rs {
			if r.State != api.RunSkipped {
				ran = append(ran, r)
			}
		}
		if a, b, ok := overlapping(ran); ok {
			t.Fatalf("runs %s (%s..%s) and %s (from %s) overlap under overlap skip", a.ID, a.StartedAt, a.FinishedAt, b.ID, b.StartedAt)
		}
	})

	t.Run("Queue", func(t *testing.T) {
		t.Parallel()
		d := setup(t, api.OverlapQueue)
		var rs []api.Run
		eventually(t, 20*time.Second, func() bool {
			rs = d.runs("slow")
			return len(runsIn(rs, api.RunSucceeded)) >= 3
		}, "3 queued runs succeeded")
		require.Empty(t, runsIn(rs, api.RunSkipped), "nothing skipped before the queue is full")
		started := byStart(rs)
		for i := 1; i < len(started); i++ {
			prev, cur := started[i-1], started[i]
			require.False(t, prev.FinishedAt.IsZero(), "run %s started at %s while run %s had not finished", cur.ID, cur.StartedAt, prev.ID)
			require.False(t, cur.StartedAt.Before(prev.FinishedAt.Time), "run %s started at %s before run %s finished at %s",
				cur.ID, cur.StartedAt, prev.ID, prev.FinishedAt)
		}
		// Queued in order: scheduled times grow with start times.
		for i := 1; i < len(started); i++ {
			require.True(t, started[i].ScheduledAt.After(started[i-1].ScheduledAt.Time), "queue order")
		}
		// The queue is real: pending runs wait their turn.
		require.NotEmpty(t, runsIn(rs, api.RunPending), "runs waiting in the queue")
	})

	t.Run("Replace", func(t *testing.T) {
		t.Parallel()
		d := setup(t, api.OverlapReplace)
		var rs []api.Run
		eventually(t, 15*time.Second, func() bool {
			rs = d.runs("slow")
			return len(runsIn(rs, api.RunKilled)) >= 2
		}, "2 runs killed by the ones that replaced them")
		require.Empty(t, runsIn(rs, api.RunSucceeded), "a 2.5s run replaced every second never succeeds")
		for _, k := range runsIn(rs, api.RunKilled) {
			// A later run replaced it.
			replaced := false
			for _, r := range rs {
				if r.ScheduledAt.After(k.ScheduledAt.Time) {
					replaced = true
				}
			}
			require.True(t, replaced, "killed run %s has no successor", k.ID)
			require.False(t, k.FinishedAt.IsZero(), "killed run %s has no finish time", k.ID)
		}
	})

	t.Run("Allow", func(t *testing.T) {
		t.Parallel()
		d := setup(t, api.OverlapAllow)
		var rs []api.Run
		eventually(t, 15*time.Second, func() bool {
			rs = d.runs("slow")
			_, _, ok := overlapping(runsIn(rs, api.RunSucceeded))
			return ok
		}, "two succeeded runs that overlapped in time")
		require.Empty(t, runsIn(rs, api.RunSkipped))
		require.Empty(t, runsIn(rs, api.RunKilled))
	})
}
