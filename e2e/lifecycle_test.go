package e2e

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestSigtermCleanStop stops jobd with SIGTERM: it exits 0 within a few
// seconds and removes its socket; a restart on the same state keeps the
// jobs and goes on firing them.
func TestSigtermCleanStop(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	ex := startExecutor(t, d, "life", "life-1", 4)
	d.ctl("job", "create", "beat", "--group", "life", "--every", "1s", "--command", "true")
	d.ctl("job", "create", "later", "--group", "life", "--cron", "0 0 3 * * *", "--tz", "Europe/Paris", "--command", "true", "--paused")
	eventually(t, 10*time.Second, func() bool { return len(runsIn(d.runs("beat"), api.RunSucceeded)) >= 1 }, "a run of beat")
	var jobsBefore []api.Job
	d.ctlJSON(&jobsBefore, "job", "list")

	fi, err := os.Lstat(d.Socket)
	require.NoError(t, err)
	require.NotZero(t, fi.Mode()&os.ModeSocket, "%s is a socket", d.Socket)

	d.proc.signal(syscall.SIGTERM)
	code, ok := d.proc.wait(5 * time.Second)
	require.True(t, ok, "jobd did not exit within 5s of SIGTERM")
	require.Equal(t, 0, code, "jobd exit code after SIGTERM")
	_, err = os.Lstat(d.Socket)
	require.ErrorIs(t, err, os.ErrNotExist, "the socket is removed on a clean stop")

	_, errOut, code := d.jobctl("status")
	require.Equal(t, 4, code, "jobctl status with jobd stopped: %s", errOut)
	require.Contains(t, errOut, "is jobd running")

	stoppedAt := time.Now()
	d.Start()
	var jobsAfter []api.Job
	d.ctlJSON(&jobsAfter, "job", "list")
	require.Len(t, jobsAfter, len(jobsBefore))
	for i := range jobsBefore {
		b, a := jobsBefore[i], jobsAfter[i]
		require.Equal(t, b.Name, a.Name)
		require.Equal(t, b.ID, a.ID)
		require.Equal(t, b.JobSpec, a.JobSpec, "job %s changed across the restart", b.Name)
	}
	// The executor finds jobd again by itself and runs go on.
	eventually(t, 15*time.Second, func() bool {
		for _, r := range runsIn(d.runs("beat"), api.RunSucceeded) {
			if r.ScheduledAt.After(stoppedAt) {
				return true
			}
		}
		return false
	}, "a run of beat after the restart")

	// The executor stops cleanly too, and jobd sees it go at once.
	ex.Stop()
	out := d.ctl("executor", "list", "-o", "json")
	require.NotContains(t, out, `"state": "online"`, "executor list after the executor stopped:\n%s", out)
}

// TestManualTrigger: a manual job never fires by itself; jobctl job trigger
// fires it now.
func TestManualTrigger(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	startExecutor(t, d, "man", "man-1", 4)
	var j api.Job
	d.ctlJSON(&j, "job", "create", "by-hand", "--group", "man", "--manual", "--command", `sh -c "echo manual $JOBD_RUN_ID"`)
	require.True(t, j.NextFireAt.IsZero(), "a manual job has no next fire")
	// A manual job in a group nobody serves, for the error case.
	d.ctl("job", "create", "by-hand-nobody", "--group", "nobody", "--manual", "--command", "true")

	time.Sleep(3 * time.Second)
	require.Empty(t, d.runs("by-hand"), "a manual job fired by itself")
	require.Empty(t, d.missed("by-hand"))

	out := d.ctl("job", "trigger", "by-hand")
	id := strings.TrimSpace(out)
	require.Regexp(t, `^[0-9]+$`, id, "job trigger prints the run id")
	var r api.Run
	eventually(t, 10*time.Second, func() bool {
		d.ctlJSON(&r, "run", "get", id)
		return r.State == api.RunSucceeded
	}, "the triggered run succeeds")
	require.Equal(t, "by-hand", r.Job)
	require.Equal(t, api.OriginManual, r.Origin)
	require.False(t, r.Replay)
	require.Equal(t, "man-1", r.Executor)
	require.Contains(t, r.Output, "manual "+id)
	require.Len(t, d.runs("by-hand"), 1)

	// Twice in a row: two runs, both fire (manual triggers are not unique).
	d.ctl("job", "trigger", "by-hand")
	eventually(t, 10*time.Second, func() bool {
		return len(runsIn(d.runs("by-hand"), api.RunSucceeded)) == 2
	}, "a second manual run")

	_, errOut, code := d.jobctl("job", "trigger", "by-hand-nobody")
	require.Equal(t, 1, code, "trigger with no executor online: %s", errOut)
	require.Contains(t, errOut, "no online executor")
	require.Empty(t, d.runs("by-hand-nobody"))
}
