package jobctl

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

const scriptJob = `{"name":"s","group":"g","manual":true,"kind":"script","script":"#!/bin/bash\necho \"v3\"\n",
	"interpreter":"bash","script_version":3,"retries":2,"backoff":"30s","backoff_policy":"exponential","backoff_max":"5m"}`

const scriptVersions = `[
	{"version":3,"created_at":"2024-06-03T00:00:00Z","sha256":"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef","size":2048},
	{"version":2,"created_at":"2024-06-02T00:00:00Z","sha256":"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210","size":25}]`

func TestJobScript(t *testing.T) {
	t.Parallel()
	routes := map[string]answer{
		"GET /api/v1/jobs/{name}":                   {status: 200, body: scriptJob},
		"GET /api/v1/jobs/{name}/scripts":           {status: 200, body: scriptVersions},
		"GET /api/v1/jobs/{name}/scripts/{version}": {status: 200, body: "echo v2"},
	}

	t.Run("Current", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "s")
		require.Equal(t, 0, res.code, res.err)
		require.Equal(t, "#!/bin/bash\necho \"v3\"\n", res.out)
		require.Equal(t, []seen{{Method: "GET", Path: "/api/v1/jobs/s"}}, fj.requests())
	})

	t.Run("Version", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "--version", "2")
		require.Equal(t, 0, res.code, res.err)
		require.Equal(t, "echo v2", res.out, "as stored, byte for byte")
		require.Equal(t, []seen{{Method: "GET", Path: "/api/v1/jobs/s/scripts/2"}}, fj.requests())
	})

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "-o", "json")
		require.Equal(t, 0, res.code, res.err)
		require.JSONEq(t, `{"job":"s","version":3,"interpreter":"bash","script":"#!/bin/bash\necho \"v3\"\n"}`, res.out)
	})

	t.Run("List", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "--list")
		require.Equal(t, 0, res.code, res.err)
		lines := strings.Split(strings.TrimSpace(res.out), "\n")
		require.Len(t, lines, 3)
		require.Regexp(t, `^VERSION\s+CREATED\s+SIZE\s+SHA256$`, lines[0])
		require.Regexp(t, `^3\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+2\.0 KiB\s+0123456789ab$`, lines[1])
		require.Regexp(t, `^2\s+.*\s25 B\s+fedcba987654$`, lines[2])
		require.Equal(t, []seen{{Method: "GET", Path: "/api/v1/jobs/s/scripts"}}, fj.requests())

		res = runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "--list", "-o", "wide")
		require.Contains(t, res.out, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "wide shows the whole sum")
	})

	t.Run("ListJSON", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "--list", "-o", "json")
		require.Equal(t, 0, res.code, res.err)
		var items []map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.out), &items), res.out)
		require.Len(t, items, 2)
		require.Equal(t, map[string]any{"version": 3.0, "created_at": "2024-06-03T00:00:00.000Z",
			"sha256": "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "size": 2048.0}, items[0])

		empty := newFakeJobd(t, map[string]answer{"GET /api/v1/jobs/{name}/scripts": {status: 200, body: "null"}})
		res = runCLI(t, empty.socket, cliOptions{}, "job", "script", "s", "--list", "-o", "json")
		require.Equal(t, "[]\n", res.out)
	})

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"GET /api/v1/jobs/{name}":                   {status: 200, body: jobA},
			"GET /api/v1/jobs/{name}/scripts/{version}": {status: 404, body: `{"error":"job \"s\" has no script version 9"}`},
			"GET /api/v1/jobs/{name}/scripts":           {status: 404, body: `{"error":"no such job"}`},
		})
		res := runCLI(t, fj.socket, cliOptions{}, "job", "script", "a")
		require.Equal(t, ExitError, res.code)
		require.Equal(t, "jobctl: job a runs command true, not a script\n", res.err)

		res = runCLI(t, fj.socket, cliOptions{}, "job", "script", "s", "--version", "9")
		require.Equal(t, ExitNotFound, res.code)
		require.Equal(t, "jobctl: job \"s\" has no script version 9\n", res.err)

		res = runCLI(t, fj.socket, cliOptions{}, "job", "script", "nope", "--list")
		require.Equal(t, ExitNotFound, res.code)
		require.Equal(t, "jobctl: job \"nope\": no such job\n", res.err)

		res = runCLI(t, filepath.Join(t.TempDir(), "none.sock"), cliOptions{}, "job", "script", "s", "--list")
		require.Equal(t, ExitUnreachable, res.code)
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, nil)
		for _, tc := range []struct {
			args    []string
			wantErr string
		}{
			{[]string{"s", "--version", "0"}, "--version must be at least 1"},
			{[]string{"s", "--version", "-2"}, "--version must be at least 1"},
			{[]string{"s", "--list", "--version", "2"}, "give --version or --list, not both"},
			{[]string{}, "takes one job NAME"},
		} {
			res := runCLI(t, fj.socket, cliOptions{}, append([]string{"job", "script"}, tc.args...)...)
			require.Equal(t, ExitUsage, res.code, res.err)
			require.Contains(t, res.err, tc.wantErr)
		}
		require.Empty(t, fj.requests())
	})
}

func TestJobGet_ScriptAndRetries(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/jobs/{name}": {status: 200, body: scriptJob}})
	for _, format := range []string{"table", "wide"} {
		res := runCLI(t, fj.socket, cliOptions{}, "job", "get", "s", "-o", format)
		require.Equal(t, 0, res.code, res.err)
		require.Regexp(t, `(?m)^Runs:\s+script \(bash, 2 lines\)$`, res.out)
		require.Regexp(t, `(?m)^Script version:\s+3 \(see 'jobctl job script s --list'\)$`, res.out)
		require.Regexp(t, `(?m)^Retries:\s+2 \(backoff 30s, exponential with jitter up to 5m0s\)$`, res.out)
	}

	// Not a script job: no script version; no retries.
	fj = newFakeJobd(t, map[string]answer{"GET /api/v1/jobs/{name}": {status: 200, body: jobA}})
	res := runCLI(t, fj.socket, cliOptions{}, "job", "get", "a")
	require.Equal(t, 0, res.code, res.err)
	require.NotContains(t, res.out, "Script version")
	require.Regexp(t, `(?m)^Retries:\s+none$`, res.out)
}

func TestRetriesText(t *testing.T) {
	t.Parallel()
	spec := api.JobSpec{Retries: 2}
	require.Equal(t, "2 (backoff default, exponential with jitter up to default)", retriesText(spec))
	spec.BackoffPolicy, spec.Backoff = api.BackoffFixed, dur(0)
	require.Equal(t, "2 (backoff 0s, fixed)", retriesText(spec))
}
