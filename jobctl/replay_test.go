package jobctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// replayJobd answers replays: a dry run lists two triggers of two jobs, a
// real one fires them.
func replayJobd(t *testing.T) *fakeJobd {
	return newFakeJobd(t, map[string]answer{"POST /api/v1/replay": {handler: func(w http.ResponseWriter, r *http.Request) {
		var req api.ReplayRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, `{"error":"bad json"}`, http.StatusBadRequest)
			return
		}
		fired := 2
		if req.DryRun {
			fired = 0
		}
		fmt.Fprintf(w, `{"count":2,"fired":%d,"dry_run":%t,"triggers":[
			{"job":"backup","scheduled_at":"2024-06-01T03:00:00.000Z"},
			{"job":"report","scheduled_at":"2024-06-01T04:00:00.000Z"}]}`, fired, req.DryRun)
	}}})
}

func replayBodies(t *testing.T, fj *fakeJobd) []api.ReplayRequest {
	var out []api.ReplayRequest
	for _, r := range fj.requests() {
		require.Equal(t, "POST", r.Method)
		require.Equal(t, "/api/v1/replay", r.Path)
		var req api.ReplayRequest
		require.NoError(t, json.Unmarshal([]byte(r.Body), &req))
		out = append(out, req)
	}
	return out
}

func TestReplay(t *testing.T) {
	t.Parallel()

	t.Run("NoYesWithoutTerminal", func(t *testing.T) {
		t.Parallel()
		fj := replayJobd(t)
		res := runCLI(t, fj.socket, cliOptions{stdin: "y\n"}, "replay", "--job", "backup")
		require.Equal(t, ExitUsage, res.code)
		require.Contains(t, res.err, "pass --yes")
		require.Empty(t, fj.requests(), "no replay is sent, not even a dry run")
	})

	t.Run("Yes", func(t *testing.T) {
		t.Parallel()
		fj := replayJobd(t)
		res := runCLI(t, fj.socket, cliOptions{}, "replay", "--job", "backup", "--since", "2024-06-01T00:00:00Z", "--latest", "--yes")
		require.Equal(t, 0, res.code, res.err)
		require.Equal(t, "replayed 2 missed triggers\n", res.out)
		since, _ := time.Parse(time.RFC3339, "2024-06-01T00:00:00Z")
		require.Equal(t, []api.ReplayRequest{{Job: "backup", Since: api.NewTime(since), Latest: true}}, replayBodies(t, fj))
	})

	t.Run("DryRun", func(t *testing.T) {
		t.Parallel()
		fj := replayJobd(t)
		res := runCLI(t, fj.socket, cliOptions{}, "replay", "--dry-run")
		require.Equal(t, 0, res.code, res.err)
		require.Regexp(t, `(?s)^JOB\s+SCHEDULED\nbackup\s+\S+ \S+\nreport\s+\S+ \S+\n2 missed triggers would be replayed \(dry run: nothing fired\)\n$`, res.out)
		require.Equal(t, []api.ReplayRequest{{DryRun: true}}, replayBodies(t, fj))
	})

	t.Run("ConfirmedOnTerminal", func(t *testing.T) {
		t.Parallel()
		fj := replayJobd(t)
		res := runCLI(t, fj.socket, cliOptions{stdin: "y\n", canPrompt: true}, "replay")
		require.Equal(t, 0, res.code, res.err)
		require.Equal(t, "Replay 2 missed triggers of jobs backup, report? [y/N] ", res.err)
		require.Equal(t, "replayed 2 missed triggers\n", res.out)
		bodies := replayBodies(t, fj)
		require.Len(t, bodies, 2)
		require.True(t, bodies[0].DryRun)
		require.False(t, bodies[1].DryRun)
		require.False(t, bodies[0].Until.IsZero(), "the preview is bounded by now")
		require.Equal(t, bodies[0].Until, bodies[1].Until, "the replay fires no more than was confirmed")
	})

	t.Run("DeclinedOnTerminal", func(t *testing.T) {
		t.Parallel()
		fj := replayJobd(t)
		res := runCLI(t, fj.socket, cliOptions{stdin: "n\n", canPrompt: true}, "replay", "--job", "backup")
		require.Equal(t, ExitUsage, res.code)
		require.Contains(t, res.err, "Replay 2 missed triggers of job backup? [y/N] ")
		require.Contains(t, res.err, "jobctl: replay not confirmed: cancelled")
		bodies := replayBodies(t, fj)
		require.Len(t, bodies, 1)
		require.True(t, bodies[0].DryRun)
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		for _, args := range [][]string{
			{"--dry-run", "--yes"},
			{"--since", "yesterday", "--yes"},
			{"--since", "2024-06-02", "--until", "2024-06-01", "--yes"},
			{"--job", "Bad Name", "--yes"},
		} {
			fj := replayJobd(t)
			res := runCLI(t, fj.socket, cliOptions{}, append([]string{"replay"}, args...)...)
			require.Equal(t, ExitUsage, res.code, "%v: %s", args, res.err)
			require.Empty(t, fj.requests())
		}
	})
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	loc := time.FixedZone("X", 2*3600)
	tests := []struct {
		in   string
		want time.Time
	}{
		{"now", now},
		{"+10m", now.Add(10 * time.Minute)},
		{"-2h", now.Add(-2 * time.Hour)},
		{"2024-06-01T02:00:00Z", time.Date(2024, 6, 1, 2, 0, 0, 0, time.UTC)},
		{"2024-06-01T02:00:00.250+02:00", time.Date(2024, 6, 1, 0, 0, 0, 250e6, time.UTC)},
		{"2024-06-01 02:00", time.Date(2024, 6, 1, 2, 0, 0, 0, loc)},
		{"2024-06-01T02:00:30", time.Date(2024, 6, 1, 2, 0, 30, 0, loc)},
		{"2024-06-01", time.Date(2024, 6, 1, 0, 0, 0, 0, loc)},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := parseTime(tt.in, now, loc)
			require.NoError(t, err)
			require.True(t, tt.want.Equal(got), "got %v want %v", got, tt.want)
		})
	}
	_, err := parseTime("2h", now, loc)
	require.Error(t, err, "a bare duration is not a time")

	ago, err := parseTimeFlag("since", "2h", now, true)
	require.NoError(t, err)
	require.Equal(t, now.Add(-2*time.Hour), ago)
}
