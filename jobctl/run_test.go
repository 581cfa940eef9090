package jobctl

import (
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRunKill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		answer  string
		args    []string
		wantOut string
	}{
		{"NotStarted", `{"id":"12","job":"a","state":"killed"}`, nil, "killed run 12\n"},
		{"Running", `{"id":"12","job":"a","state":"running","executor":"w1"}`, nil, "asked executor to kill run 12\n"},
		{"Assigned", `{"id":"12","job":"a","state":"assigned"}`, nil, "asked executor to kill run 12\n"},
		{"EndedMeanwhile", `{"id":"12","job":"a","state":"failed","exit_code":1}`, nil, "run 12 ended failed (exit 1)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/runs/{id}/kill": {status: 200, body: tt.answer}})
			res := runCLI(t, fj.socket, cliOptions{}, "run", "kill", "12")
			require.Equal(t, 0, res.code, res.err)
			require.Equal(t, tt.wantOut, res.out)
			require.Empty(t, res.err)
			require.Equal(t, []seen{{Method: "POST", Path: "/api/v1/runs/12/kill"}}, fj.requests(), "no body")
		})
	}

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{"POST /api/v1/runs/{id}/kill": {status: 200,
			body: `{"id":"12","job":"a","state":"running","scheduled_at":"2024-06-01T03:00:00Z","attempt":1,"exit_code":null}`}})
		res := runCLI(t, fj.socket, cliOptions{}, "run", "kill", "12", "-o", "json")
		require.Equal(t, 0, res.code, res.err)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.out), &m), res.out)
		require.Equal(t, "12", m["id"])
		require.Equal(t, "running", m["state"])
		require.Equal(t, "2024-06-01T03:00:00.000Z", m["scheduled_at"])
		require.Contains(t, m, "exit_code")
	})

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			status   int
			body     string
			wantCode int
			wantErr  string
		}{
			{404, `{"error":"run 12 not found"}`, ExitNotFound, "jobctl: run 12 not found\n"},
			{404, `{"error":"not found"}`, ExitNotFound, "jobctl: run \"12\": not found\n"},
			{409, `{"error":"run 12 already ended (succeeded)"}`, ExitError, "jobctl: run 12 already ended (succeeded)\n"},
		} {
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/runs/{id}/kill": {status: tc.status, body: tc.body}})
			res := runCLI(t, fj.socket, cliOptions{}, "run", "kill", "12")
			require.Equal(t, tc.wantCode, res.code, res.err)
			require.Equal(t, tc.wantErr, res.err)
			require.Empty(t, res.out)
		}

		res := runCLI(t, filepath.Join(t.TempDir(), "none.sock"), cliOptions{}, "run", "kill", "12")
		require.Equal(t, ExitUnreachable, res.code)
		require.Contains(t, res.err, "is jobd running?")

		res = runCLI(t, filepath.Join(t.TempDir(), "none.sock"), cliOptions{}, "run", "kill")
		require.Equal(t, ExitUsage, res.code)
	})
}

func TestRunList_WideGroupsAttempts(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/runs": {status: 200, body: `[
		{"id":"r3","job":"a","trigger_id":"t1","state":"succeeded","origin":"retry","attempt":3},
		{"id":"r2","job":"a","trigger_id":"t1","state":"failed","origin":"retry","attempt":2},
		{"id":"r1","job":"a","trigger_id":"t1","state":"lost","origin":"schedule","attempt":1}]`}})
	res := runCLI(t, fj.socket, cliOptions{}, "run", "list", "-o", "wide")
	require.Equal(t, 0, res.code, res.err)
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	require.Regexp(t, `^ID\s+JOB\s+STATE\s+ATTEMPT\s+EXECUTOR\s+SCHEDULED\s+DURATION\s+EXIT\s+TRIGGER\s+ORIGIN\s`, lines[0])
	require.Regexp(t, `^r2\s+a\s+failed\s+2\s+-\s+-\s+-\s+-\s+t1\s+retry\s`, lines[2])

	res = runCLI(t, fj.socket, cliOptions{}, "run", "list")
	require.NotContains(t, res.out, "TRIGGER", "only in wide")
}

func TestExecutorList(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/executors": {status: 200, body: `[
		{"id":"e1","name":"w1","group":"g","host":"h1","state":"draining","state_since":"2024-06-01T02:00:00Z",
		 "running":1,"slots":4,"last_seen":"2024-06-01T02:59:59.5Z","labels":{"region":"eu","zone":"b"}},
		{"id":"e2","name":"w2","group":"g","state":"offline","running":0,"slots":2}]`}})
	res := runCLI(t, fj.socket, cliOptions{}, "executor", "list")
	require.Equal(t, 0, res.code, res.err)
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^ID\s+NAME\s+GROUP\s+STATE\s+SINCE\s+RUNNING/SLOTS\s+LAST SEEN$`, lines[0])
	require.Regexp(t, `^e1\s+w1\s+g\s+draining\s+\d+d\d+h ago\s+1/4\s+\d+d\d+h ago$`, lines[1])
	require.Regexp(t, `^e2\s+w2\s+g\s+offline\s+-\s+0/2\s+-$`, lines[2])

	res = runCLI(t, fj.socket, cliOptions{}, "executor", "list", "-o", "wide")
	require.Equal(t, 0, res.code, res.err)
	require.Regexp(t, `(?m)^ID\s+NAME\s+GROUP\s+STATE\s+SINCE\s+RUNNING/SLOTS\s+LAST SEEN\s+HOST\s+VERSION\s+REGISTERED\s+LABELS$`, res.out)
	require.Regexp(t, `(?m)^e1\s.*\sh1\s+-\s+-\s+region=eu,zone=b$`, res.out)
}

func TestPrinterAgo(t *testing.T) {
	t.Parallel()
	now := tm("2024-06-01T03:00:00Z").Time
	p := &printer{now: now}
	for _, tc := range []struct{ at, want string }{
		{"2024-06-01T02:59:57Z", "3s ago"},
		{"2024-06-01T02:55:00Z", "5m0s ago"},
		{"2024-06-01T03:00:00.4Z", "just now"},
		{"2024-06-01T03:00:10Z", "in 10s"},
	} {
		require.Equal(t, tc.want, p.ago(*tm(tc.at)), tc.at)
	}
	require.Equal(t, "-", p.ago(*tm("0001-01-01T00:00:00Z")))
}

func TestCompletion_NewCommands(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, nil)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "create", "a", "--backoff-policy", ""}, "fixed\nexponential\n:4\n"},
		{[]string{"job", "edit", "a", "--backoff-policy", "f"}, "fixed\nexponential\n:4\n"},
		{[]string{"logs", ""}, ":4\n"},
		{[]string{"run", "kill", ""}, ":4\n"},
		{[]string{"job", "script", "a", "--version", ""}, ":4\n"},
	} {
		res := runCLI(t, fj.socket, cliOptions{}, append([]string{"__complete"}, tc.args...)...)
		require.Equal(t, 0, res.code, res.err)
		// Drop cobra's trailing help line on stderr; stdout is what shells read.
		require.Equal(t, tc.want, regexp.MustCompile(`(?m)^Completion ended.*\n`).ReplaceAllString(res.out, ""), tc.args)
	}
	require.Empty(t, fj.requests(), "none of these asks jobd")
}
