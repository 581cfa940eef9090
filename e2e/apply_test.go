package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestApplyExampleFile applies deploy/jobs.example.yaml as a user would:
// a dry run changes nothing, the apply creates every job, a second apply
// changes nothing, and an edited file with --prune updates and deletes.
func TestApplyExampleFile(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	example, err := filepath.Abs("../deploy/jobs.example.yaml")
	require.NoError(t, err)

	var resp api.ApplyResponse
	d.ctlJSON(&resp, "apply", "-f", example, "--dry-run")
	require.ElementsMatch(t, []string{"heartbeat", "nightly-report", "poll-queue", "cleanup"}, resp.Created)
	var jobs []api.Job
	d.ctlJSON(&jobs, "job", "list")
	require.Empty(t, jobs, "a dry run changes nothing")

	d.ctlJSON(&resp, "apply", "-f", example)
	require.Len(t, resp.Created, 4)
	d.ctlJSON(&jobs, "job", "list")
	require.Len(t, jobs, 4)
	var nightly api.Job
	d.ctlJSON(&nightly, "job", "get", "nightly-report")
	require.Equal(t, "Europe/Paris", nightly.TZ)
	require.Equal(t, "script", nightly.Kind)
	require.Equal(t, 2, nightly.NextFireAt.In(mustZone(t, "Europe/Paris")).Hour())

	d.ctlJSON(&resp, "apply", "-f", example)
	require.Empty(t, resp.Created)
	require.Empty(t, resp.Updated)
	require.Len(t, resp.Unchanged, 4)

	// Keep two jobs, change one: --prune deletes the other two.
	b, err := os.ReadFile(example)
	require.NoError(t, err)
	text := string(b)
	cut := strings.Index(text, "  - name: poll-queue")
	require.Positive(t, cut)
	edited := strings.Replace(text[:cut], "every: 1m", "every: 2m", 1)
	file := filepath.Join(t.TempDir(), "jobs.yaml")
	require.NoError(t, os.WriteFile(file, []byte(edited), 0o600))
	d.ctlJSON(&resp, "apply", "-f", file, "--prune", "--dry-run")
	require.Equal(t, []string{"heartbeat"}, resp.Updated)
	require.ElementsMatch(t, []string{"poll-queue", "cleanup"}, resp.Deleted)
	d.ctlJSON(&jobs, "job", "list")
	require.Len(t, jobs, 4, "a dry run changes nothing")
	d.ctlJSON(&resp, "apply", "-f", file, "--prune")
	d.ctlJSON(&jobs, "job", "list")
	require.Len(t, jobs, 2)
	var hb api.Job
	d.ctlJSON(&hb, "job", "get", "heartbeat")
	require.Equal(t, "2m0s", time2s(hb.Every))
}

func time2s(d *api.Duration) string {
	if d == nil {
		return ""
	}
	return d.D().String()
}

func mustZone(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}
