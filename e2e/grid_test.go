package e2e

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// TestFixedRateGridAcrossRestart runs every-3s jobs anchored on odd
// milliseconds, stops jobd for 9s and restarts it. Every fire stays on the
// grid anchor+k·3s (a restart never re-anchors, SPEC §3), and the misfire
// policies decide the three times that passed while jobd was down:
// skip records them, fire_once fires the newest and coalesces the rest,
// catch_up fires them all oldest first, or max_catch_up of them.
func TestFixedRateGridAcrossRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps jobd down for 9s; skipped with -short")
	}
	t.Parallel()
	const anchor = "2026-01-01T00:00:00.250Z"
	anchorT, err := time.Parse(time.RFC3339Nano, anchor)
	require.NoError(t, err)
	const interval = 3 * time.Second

	d := startJobd(t, jobdOpts{})
	ex := startExecutor(t, d, "grid", "grid-1", 8)
	create := func(name string, extra ...string) {
		args := []string{"job", "create", name, "--group", "grid", "--every", "3s", "--anchor", anchor, "--command", "true"}
		d.ctl(append(args, extra...)...)
	}
	create("grid") // default misfire: fire_once, threshold 5s
	create("mf-skip", "--misfire", "skip", "--misfire-threshold", "1s")
	create("mf-once", "--misfire", "fire_once", "--misfire-threshold", "1s")
	create("mf-catchup", "--misfire", "catch_up", "--misfire-threshold", "1s")
	create("mf-capped", "--misfire", "catch_up", "--misfire-threshold", "1s", "--max-catch-up", "1")

	var j api.Job
	d.ctlJSON(&j, "job", "get", "grid")
	require.Equal(t, anchorT.UnixMilli(), j.Anchor.UnixMilli(), "anchor kept to the millisecond")
	require.Zero(t, (j.NextFireAt.Sub(anchorT))%interval, "next fire %s is on the grid", j.NextFireAt)

	// Stop halfway between two grid times (1.5s after one), at least two
	// fires from now, and restart 9s later, also 1.5s after a grid time: the
	// three times in between are 7.5s, 4.5s and 1.5s late at restart, all
	// beyond the 1s threshold, and no time is near the threshold's edge.
	now := time.Now()
	k := now.Sub(anchorT)/interval + 2
	stopAt := anchorT.Add(k*interval + 1500*time.Millisecond)
	downFor := 3 * interval
	waitUntil(stopAt)
	d.Stop()
	t.Logf("stopped at %s", time.Now().Format(api.TimeFormat))
	waitUntil(stopAt.Add(downFor))
	restartAt := time.Now()
	d.Start()
	t.Logf("restarted at %s, serving at %s", restartAt.Format(api.TimeFormat), time.Now().Format(api.TimeFormat))
	var down []int64 // the grid times jobd was down for
	for tm := anchorT.Add(k*interval + interval); tm.Before(restartAt); tm = tm.Add(interval) {
		down = append(down, tm.UnixMilli())
	}
	require.Len(t, down, 3)
	// Two more grid times after the restart.
	after := []int64{down[2] + interval.Milliseconds(), down[2] + 2*interval.Milliseconds()}
	eventually(t, 15*time.Second, func() bool {
		for _, r := range d.runs("grid") {
			if r.ScheduledAt.UnixMilli() == after[1] && r.State == api.RunSucceeded {
				return true
			}
		}
		return false
	}, "the grid job fires at %s", fmtMS(after[1]))

	// The grid job, through jobctl: every run on the grid, none twice, none
	// at the restart time.
	seen := map[int64]bool{}
	for _, r := range d.runs("grid") {
		ms := r.ScheduledAt.UnixMilli()
		require.Zero(t, (ms-anchorT.UnixMilli())%interval.Milliseconds(), "run %s at %s is off the grid", r.ID, r.ScheduledAt)
		require.False(t, seen[ms], "two runs at %s", r.ScheduledAt)
		seen[ms] = true
	}
	require.True(t, seen[after[0]], "fired at %s after the restart", fmtMS(after[0]))

	ex.Stop()
	d.Stop()
	st := openStore(t, d)
	audits := map[string]*jobAudit{}
	for _, name := range []string{"grid", "mf-skip", "mf-once", "mf-catchup", "mf-capped"} {
		a := auditJob(t, st, name)
		audits[name] = a
		t.Run("ExactlyOnce/"+name, func(t *testing.T) { a.requireClean(t) })
		t.Run("OnGridAfterRestart/"+name, func(t *testing.T) {
			for _, tm := range after {
				require.NotNil(t, a.Fired[tm], "%s: no fire at %s after the restart", name, fmtMS(tm))
			}
		})
	}
	reasonsOf := func(a *jobAudit, times []int64) []string {
		var out []string
		for _, tm := range times {
			out = append(out, a.Missed[tm])
		}
		return out
	}
	firedOf := func(a *jobAudit, times []int64) []int64 {
		var out []int64
		for _, tm := range times {
			if a.Fired[tm] != nil {
				out = append(out, tm)
			}
		}
		return out
	}
	t.Logf("down times %s", fmtMSs(down))
	for name, a := range audits {
		t.Logf("%s: fired %s, missed %v", name, fmtMSs(firedOf(a, down)), reasonsOf(a, down))
	}

	// Each policy is checked in two steps: what it decided for the late
	// times (missed rows), then that the times it chose really ran.
	t.Run("Skip", func(t *testing.T) {
		a := audits["mf-skip"]
		require.Empty(t, firedOf(a, down), "skip fired a late time")
		require.Equal(t, []string{api.MissedDown, api.MissedDown, api.MissedDown}, reasonsOf(a, down))
	})
	t.Run("FireOnce/RestCoalesced", func(t *testing.T) {
		require.Equal(t, []string{api.MissedCoalesced, api.MissedCoalesced}, reasonsOf(audits["mf-once"], down[:2]))
	})
	t.Run("FireOnce/NewestFires", func(t *testing.T) {
		a := audits["mf-once"]
		require.Equal(t, []int64{down[2]}, firedOf(a, down), "fire_once fires the newest late time once (missed as %q)", a.Missed[down[2]])
		requireSucceeded(t, a, down[2:])
	})
	t.Run("CatchUp/AllFireOldestFirst", func(t *testing.T) {
		a := audits["mf-catchup"]
		require.Equal(t, down, firedOf(a, down), "catch_up fires every late time (missed as %v)", reasonsOf(a, down))
		requireSucceeded(t, a, down)
		// Oldest first: run ids grow with the scheduled time.
		var last int64
		for _, tm := range down {
			r := a.runAt(tm)[0]
			require.Greater(t, r.ID, last, "run of %s created before the run of an older time", fmtMS(tm))
			last = r.ID
		}
	})
	t.Run("CatchUpCapped/RestCapped", func(t *testing.T) {
		require.Equal(t, []string{api.MissedCapped, api.MissedCapped}, reasonsOf(audits["mf-capped"], down[1:]))
	})
	t.Run("CatchUpCapped/OldestFires", func(t *testing.T) {
		a := audits["mf-capped"]
		require.Equal(t, down[:1], firedOf(a, down), "max_catch_up 1 fires the oldest late time only (missed as %q)", a.Missed[down[0]])
		requireSucceeded(t, a, down[:1])
	})
	// The default job: 5s threshold, so the last two down times were not
	// late at all and fire at once on restart; the first fires (fire_once).
	t.Run("DefaultPolicyFiresAfterRestart", func(t *testing.T) {
		a := audits["grid"]
		require.Equal(t, down, firedOf(a, down), "times within the threshold fire on restart (missed as %v)", reasonsOf(a, down))
	})
}

// requireSucceeded requires one succeeded run at each of times.
func requireSucceeded(t *testing.T, a *jobAudit, times []int64) {
	t.Helper()
	for _, tm := range times {
		rs := a.runAt(tm)
		require.Len(t, rs, 1, "runs at %s", fmtMS(tm))
		require.Equal(t, store.RunSucceeded, rs[0].State, "run at %s", fmtMS(tm))
	}
}
