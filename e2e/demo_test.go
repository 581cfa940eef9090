package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/jobd/jobd/api"
)

// wireTimeRE is a time as jobctl prints it in JSON: RFC 3339 in UTC with
// milliseconds (SPEC §5).
var wireTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

// runs lists the runs of job, newest first.
func (d *Jobd) runs(job string) []api.Run {
	d.t.Helper()
	var rs []api.Run
	d.ctlJSON(&rs, "run", "list", "--job", job, "--limit", "10000")
	return rs
}

// runsIn returns the runs of job in state.
func runsIn(rs []api.Run, state string) []api.Run {
	var out []api.Run
	for _, r := range rs {
		if r.State == state {
			out = append(out, r)
		}
	}
	return out
}

// missed lists the missed rows of job.
func (d *Jobd) missed(job string) []api.Missed {
	d.t.Helper()
	var ms []api.Missed
	d.ctlJSON(&ms, "missed", "list", "--job", job)
	return ms
}

func TestDemoFlow(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	startExecutor(t, d, "demo", "local-1", 4)

	d.ctl("job", "create", "hello", "--group", "demo", "--every", "1s",
		"--command", `sh -c "echo hi $JOBD_RUN_ID"`)

	var succeeded []api.Run
	eventually(t, 20*time.Second, func() bool {
		succeeded = runsIn(d.runs("hello"), api.RunSucceeded)
		return len(succeeded) >= 3
	}, "3 succeeded runs of hello")

	// The raw JSON: snake_case keys, string ids, times with milliseconds.
	var raw []map[string]any
	d.ctlJSON(&raw, "run", "list", "--job", "hello")
	require.NotEmpty(t, raw)
	for _, r := range raw {
		for _, key := range []string{"id", "job", "state", "scheduled_at", "started_at", "finished_at",
			"executor", "executor_id", "attempt", "exit_code", "replay"} {
			require.Contains(t, r, key, "run JSON %v", r)
		}
		require.IsType(t, "", r["id"], "run id is a string")
		require.Regexp(t, wireTimeRE, r["scheduled_at"])
	}

	for _, r := range succeeded {
		require.Equal(t, "hello", r.Job)
		require.Equal(t, "local-1", r.Executor, "run %s", r.ID)
		require.NotEmpty(t, r.ExecutorID, "run %s", r.ID)
		require.NotNil(t, r.ExitCode, "run %s", r.ID)
		require.Equal(t, 0, *r.ExitCode, "run %s", r.ID)
		require.Equal(t, 1, r.Attempt, "run %s", r.ID)
		require.False(t, r.Replay, "run %s", r.ID)
		require.Zero(t, r.ScheduledAt.UnixMilli()%1000, "run %s scheduled_at %s is not on a whole second", r.ID, r.ScheduledAt)
		require.False(t, r.StartedAt.IsZero(), "run %s started_at", r.ID)
		require.False(t, r.FinishedAt.Before(r.StartedAt.Time), "run %s finished before it started", r.ID)
	}
	// Each scheduled time fired once.
	seen := map[int64]bool{}
	for _, r := range d.runs("hello") {
		require.False(t, seen[r.ScheduledAt.UnixMilli()], "two runs scheduled at %s", r.ScheduledAt)
		seen[r.ScheduledAt.UnixMilli()] = true
	}

	// run get shows the output, with the run id from JOBD_RUN_ID.
	var got api.Run
	d.ctlJSON(&got, "run", "get", succeeded[0].ID)
	require.Equal(t, succeeded[0].ID, got.ID)
	require.Contains(t, got.Output, "hi "+got.ID)

	// status counts.
	var st api.Status
	d.ctlJSON(&st, "status")
	require.EqualValues(t, 1, st.Jobs)
	require.EqualValues(t, 0, st.JobsPaused)
	require.Equal(t, 1, st.Executors["online"], "executors %v", st.Executors)
	require.GreaterOrEqual(t, st.Runs["succeeded"], int64(3), "runs %v", st.Runs)
	require.True(t, st.Leader)

	// job list shows the cursor, on the whole-second grid.
	var jobs []api.Job
	d.ctlJSON(&jobs, "job", "list")
	require.Len(t, jobs, 1)
	require.Equal(t, "hello", jobs[0].Name)
	require.Equal(t, "demo", jobs[0].Group)
	require.False(t, jobs[0].NextFireAt.IsZero(), "next_fire_at")
	require.Zero(t, jobs[0].NextFireAt.UnixMilli()%1000, "next_fire_at %s", jobs[0].NextFireAt)
	require.False(t, jobs[0].LastFireAt.IsZero(), "last_fire_at")
	var rawJobs []map[string]any
	d.ctlJSON(&rawJobs, "job", "list")
	for _, key := range []string{"name", "group", "schedule", "paused", "next_fire_at", "last_fire_at"} {
		require.Contains(t, rawJobs[0], key)
	}
	require.Regexp(t, wireTimeRE, rawJobs[0]["next_fire_at"])

	// -o yaml parses, and says the same.
	for _, args := range [][]string{{"job", "list"}, {"run", "list", "--job", "hello"}, {"status"}, {"job", "get", "hello"}} {
		out := d.ctl(append(args, "-o", "yaml")...)
		var v any
		require.NoError(t, yaml.Unmarshal([]byte(out), &v), "jobctl %s -o yaml:\n%s", strings.Join(args, " "), out)
		require.NotNil(t, v, "jobctl %s -o yaml printed nothing", strings.Join(args, " "))
	}
	var yjobs []map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(d.ctl("job", "list", "-o", "yaml")), &yjobs))
	require.Len(t, yjobs, 1)
	require.Equal(t, "hello", yjobs[0]["name"])

	// The table output names the job too (a smoke check of the default format).
	require.Contains(t, d.ctl("job", "list"), "hello")
}
