package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestNoExecutorMissed fires a job whose group has no executor: each time
// is recorded as missed (no_executor), compactly in one row, and nothing
// piles up.
func TestNoExecutorMissed(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	var j api.Job
	d.ctlJSON(&j, "job", "create", "orphan", "--group", "nobody", "--every", "1s", "--command", "true")
	first := j.NextFireAt
	require.False(t, first.IsZero())

	start := time.Now()
	time.Sleep(4 * time.Second)
	var ms []api.Missed
	eventually(t, 5*time.Second, func() bool {
		ms = d.missed("orphan")
		return len(ms) > 0 && ms[0].Count >= 3
	}, "3 missed times of orphan")
	elapsed := time.Since(start)

	require.Len(t, ms, 1, "one compact row, not one per second: %+v", ms)
	m := ms[0]
	require.Equal(t, api.MissedNoExecutor, m.Reason)
	require.Equal(t, "orphan", m.Job)
	require.Equal(t, first.UnixMilli(), m.From.UnixMilli(), "from: the job's first fire time")
	require.Equal(t, int64(m.To.Sub(m.From.Time)/time.Second)+1, m.Count, "count of %s..%s", m.From, m.To)
	secs := int64(elapsed / time.Second)
	require.GreaterOrEqual(t, m.Count, secs-2, "count %d after %s", m.Count, elapsed)
	require.LessOrEqual(t, m.Count, secs+1, "count %d after %s", m.Count, elapsed)

	require.Empty(t, d.runs("orphan"), "runs piled up for a group without executors")
	var st api.Status
	d.ctlJSON(&st, "status")
	require.GreaterOrEqual(t, st.Missed, m.Count)
}

// TestReplay records missed times (no executor), then replays them: a dry
// run lists them and changes nothing, a script without --yes is refused,
// --latest fires the newest, and a full replay fires the rest with their
// original scheduled times, marked as replays.
func TestReplay(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	d.ctl("job", "create", "rp", "--group", "late", "--every", "1s", "--command", "true")
	eventually(t, 10*time.Second, func() bool {
		ms := d.missed("rp")
		return len(ms) == 1 && ms[0].Count >= 3
	}, "3 missed times of rp")
	startExecutor(t, d, "late", "late-1", 4)
	// From here on it fires; the missed row stops growing.
	eventually(t, 10*time.Second, func() bool { return len(runsIn(d.runs("rp"), api.RunSucceeded)) >= 1 }, "a run of rp")

	ms := d.missed("rp")
	require.Len(t, ms, 1, "missed rows %+v", ms)
	m := ms[0]
	require.Equal(t, api.MissedNoExecutor, m.Reason)
	var missedTimes []int64
	for tm := m.From.Time; !tm.After(m.To.Time); tm = tm.Add(time.Second) {
		missedTimes = append(missedTimes, tm.UnixMilli())
	}
	require.Len(t, missedTimes, int(m.Count))
	replayed := func() []api.Run {
		var out []api.Run
		for _, r := range d.runs("rp") {
			if r.Replay {
				out = append(out, r)
			}
		}
		return out
	}

	t.Run("DryRun", func(t *testing.T) {
		var res api.ReplayResponse
		d.ctlJSON(&res, "replay", "--job", "rp", "--dry-run")
		require.True(t, res.DryRun)
		require.Equal(t, m.Count, res.Count)
		require.Zero(t, res.Fired)
		var listed []int64
		for _, tr := range res.Triggers {
			require.Equal(t, "rp", tr.Job)
			listed = append(listed, tr.ScheduledAt.UnixMilli())
		}
		require.Equal(t, missedTimes, listed, "the dry run lists the missed times")
		require.Equal(t, ms, d.missed("rp"), "a dry run changed the missed list")
		require.Empty(t, replayed(), "a dry run fired")
	})

	t.Run("NoTerminalNoYes", func(t *testing.T) {
		out, errOut, code := d.jobctl("replay", "--job", "rp")
		require.Equal(t, 2, code, "stdout %s\nstderr %s", out, errOut)
		require.Contains(t, errOut, "--yes")
		time.Sleep(500 * time.Millisecond)
		require.Equal(t, ms, d.missed("rp"), "a refused replay changed the missed list")
		require.Empty(t, replayed(), "a refused replay fired")
	})

	t.Run("Latest", func(t *testing.T) {
		var res api.ReplayResponse
		d.ctlJSON(&res, "replay", "--job", "rp", "--latest", "--yes")
		require.EqualValues(t, 1, res.Fired)
		var rs []api.Run
		eventually(t, 10*time.Second, func() bool {
			rs = replayed()
			return len(rs) == 1 && rs[0].State == api.RunSucceeded
		}, "the latest missed time replayed")
		require.Equal(t, m.To.UnixMilli(), rs[0].ScheduledAt.UnixMilli(), "--latest fires the newest missed time")
		require.Equal(t, api.OriginReplay, rs[0].Origin)
		left := d.missed("rp")
		if m.Count == 1 {
			require.Empty(t, left)
			return
		}
		require.Len(t, left, 1)
		require.Equal(t, m.From.UnixMilli(), left[0].From.UnixMilli())
		require.Equal(t, m.To.Add(-time.Second).UnixMilli(), left[0].To.UnixMilli())
		require.Equal(t, m.Count-1, left[0].Count)
	})

	t.Run("All", func(t *testing.T) {
		var res api.ReplayResponse
		d.ctlJSON(&res, "replay", "--job", "rp", "--yes")
		require.Equal(t, m.Count-1, res.Fired)
		var rs []api.Run
		eventually(t, 10*time.Second, func() bool {
			rs = replayed()
			return len(runsIn(rs, api.RunSucceeded)) == int(m.Count)
		}, "every missed time replayed and succeeded")
		var got []int64
		for _, r := range rs {
			require.True(t, r.Replay)
			require.Equal(t, api.OriginReplay, r.Origin, "run %s", r.ID)
			got = append(got, r.ScheduledAt.UnixMilli())
		}
		slices.Sort(got)
		require.Equal(t, missedTimes, got, "replayed runs keep the original scheduled times, once each")
		require.Empty(t, d.missed("rp"), "replayed times are no longer missed")

		// Nothing left: a second replay fires nothing.
		d.ctlJSON(&res, "replay", "--job", "rp", "--yes")
		require.Zero(t, res.Fired)
		require.Len(t, replayed(), int(m.Count))
	})
}
