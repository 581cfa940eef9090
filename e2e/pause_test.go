package e2e

import (
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// waitMidSecond sleeps until the wall clock is at least 300ms past a whole
// second and at most 600ms past it, so an action on an every-1s grid cannot
// race a fire time.
func waitMidSecond() {
	for {
		ms := time.Now().Nanosecond() / int(time.Millisecond)
		if ms >= 300 && ms <= 600 {
			return
		}
		waitUntil(time.Now().Truncate(time.Second).Add(time.Second + 400*time.Millisecond))
	}
}

func TestPauseIsImmediate(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	startExecutor(t, d, "p", "p-1", 4)
	d.ctl("job", "create", "tick", "--group", "p", "--every", "1s", "--record-missed", "--command", "true")

	// Let it run, then pause it right after a fire (mid-second: the next
	// trigger is stored and armed, due in about half a second).
	eventually(t, 10*time.Second, func() bool { return len(d.runs("tick")) >= 2 }, "2 runs of tick")
	waitMidSecond()
	pauseStart := time.Now()
	var paused api.Job
	d.ctlJSON(&paused, "job", "pause", "tick")
	pauseEnd := time.Now()
	require.True(t, paused.Paused)
	require.True(t, paused.NextFireAt.IsZero(), "a paused job shows no next fire")
	t.Logf("paused between %s and %s", pauseStart.Format(api.TimeFormat), pauseEnd.Format(api.TimeFormat))

	// Three seconds paused: three or four armed or due times pass.
	time.Sleep(3 * time.Second)
	for _, r := range d.runs("tick") {
		require.False(t, r.ScheduledAt.After(pauseEnd), "run %s scheduled at %s fired after pause returned at %s",
			r.ID, r.ScheduledAt, pauseEnd.Format(api.TimeFormat))
		require.False(t, r.CreatedAt.After(pauseEnd), "run %s was created at %s, after pause returned at %s",
			r.ID, r.CreatedAt, pauseEnd.Format(api.TimeFormat))
	}
	var st api.Status
	d.ctlJSON(&st, "status")
	for _, nt := range st.NextTriggers {
		require.NotEqual(t, "tick", nt.Job, "a paused job has an armed trigger at %s", nt.ScheduledAt)
	}
	require.EqualValues(t, 1, st.JobsPaused)

	// Resume mid-second too. Resume starts from the next scheduled time
	// after jobd handled it: the next whole second, read from jobd's answer
	// so that a slow jobctl cannot make the test guess wrong.
	waitMidSecond()
	resumeStart := time.Now()
	var resumed api.Job
	d.ctlJSON(&resumed, "job", "resume", "tick")
	resumeEnd := time.Now()
	require.False(t, resumed.Paused)
	next := resumed.NextFireAt.Time
	require.Zero(t, next.UnixMilli()%1000, "next fire %s on the grid", next)
	require.True(t, next.After(resumeStart) && !next.After(resumeEnd.Add(time.Second)),
		"resume starts from the next scheduled time: next fire %s, resumed between %s and %s",
		next.Format(api.TimeFormat), resumeStart.Format(api.TimeFormat), resumeEnd.Format(api.TimeFormat))
	lastPaused := next.Add(-time.Second)

	// Runs continue.
	eventually(t, 10*time.Second, func() bool {
		for _, r := range runsIn(d.runs("tick"), api.RunSucceeded) {
			if r.ScheduledAt.After(resumeStart) {
				return true
			}
		}
		return false
	}, "a run after resume")

	// The times skipped while paused are one missed row, reason paused,
	// from the first time that did not fire to the last before resume.
	var before, after []time.Time
	for _, r := range d.runs("tick") {
		if r.ScheduledAt.Before(pauseEnd) {
			before = append(before, r.ScheduledAt.Time)
		} else {
			after = append(after, r.ScheduledAt.Time)
		}
	}
	require.NotEmpty(t, before)
	require.NotEmpty(t, after)
	lastFired := slices.MaxFunc(before, time.Time.Compare)
	firstAfter := slices.MinFunc(after, time.Time.Compare)
	require.Equal(t, lastPaused.Add(time.Second).UnixMilli(), firstAfter.UnixMilli(), "first fire after resume")

	ms := d.missed("tick")
	require.Len(t, ms, 1, "missed rows %+v", ms)
	m := ms[0]
	require.Equal(t, api.MissedPaused, m.Reason)
	require.Equal(t, lastFired.Add(time.Second).UnixMilli(), m.From.UnixMilli(), "missed from: the first time that did not fire")
	require.Equal(t, lastPaused.UnixMilli(), m.To.UnixMilli(), "missed to: the last time before resume")
	want := int64(m.To.Sub(m.From.Time)/time.Second) + 1
	require.Equal(t, want, m.Count, "count of %s..%s", m.From, m.To)
	require.GreaterOrEqual(t, m.Count, int64(3), "paused for 3s or more")
	require.LessOrEqual(t, m.Count, int64(resumeEnd.Sub(pauseStart)/time.Second)+1)
}
