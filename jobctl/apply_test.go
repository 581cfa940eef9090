package jobctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

const jobsYAML = `# jobs of the ops team
jobs:
  - name: backup
    group: db
    cron: "0 3 * * *"
    tz: Europe/Paris
    command: [pg_dump, -f, /backups/app.dump, app]
    retries: 3
    backoff: 1m
    timeout: 2h
    misfire: fire_once
  - name: ping
    group: web
    every: 30s
    anchor: 2024-06-01T00:00:00Z
    http: {url: "https://example.com/health", method: GET}
    overlap: skip
    params: {region: eu}
  - name: once
    group: web
    at: "2024-06-01T02:00:00.000Z"
    handler: report
    paused: true
`

var wantJobs = []api.JobSpec{
	{Name: "backup", Group: "db", Cron: "0 3 * * *", TZ: "Europe/Paris", Command: []string{"pg_dump", "-f", "/backups/app.dump", "app"},
		Retries: 3, Backoff: dur(time.Minute), Timeout: dur(2 * time.Hour), Misfire: "fire_once"},
	{Name: "ping", Group: "web", Every: dur(30 * time.Second), Anchor: tm("2024-06-01T00:00:00Z"),
		HTTP: &api.HTTPRequest{URL: "https://example.com/health", Method: "GET"}, Overlap: "skip", Params: map[string]string{"region": "eu"}},
	{Name: "once", Group: "web", At: tm("2024-06-01T02:00:00Z"), Handler: "report", Paused: true},
}

func TestApply(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	mapping := filepath.Join(dir, "jobs.yaml")
	require.NoError(t, os.WriteFile(mapping, []byte(jobsYAML), 0o600))
	bare := filepath.Join(dir, "bare.yaml")
	require.NoError(t, os.WriteFile(bare, []byte(`- {name: a, group: g, manual: true, command: ["true"]}`), 0o600))

	tests := []struct {
		name     string
		args     []string
		stdin    string
		answer   string
		wantReq  api.ApplyRequest
		wantOut  string
		wantJSON bool
	}{
		{
			name:    "DryRunPrune",
			args:    []string{"-f", mapping, "--dry-run", "--prune"},
			answer:  `{"created":["ping"],"updated":["backup"],"unchanged":["once"],"deleted":["old"],"dry_run":true}`,
			wantReq: api.ApplyRequest{Jobs: wantJobs, Prune: true, DryRun: true},
			wantOut: "job ping would be created\njob backup would be updated\njob old would be deleted\n" +
				"1 created, 1 updated, 1 unchanged, 1 deleted (dry run: nothing changed)\n",
		},
		{
			name:    "FromStdin",
			args:    []string{"-f", "-"},
			stdin:   jobsYAML,
			answer:  `{"created":["backup","ping","once"]}`,
			wantReq: api.ApplyRequest{Jobs: wantJobs},
			wantOut: "job backup created\njob ping created\njob once created\n3 created, 0 updated, 0 unchanged, 0 deleted\n",
		},
		{
			name:    "BareList",
			args:    []string{"-f", bare, "-o", "json"},
			answer:  `{"unchanged":["a"]}`,
			wantReq: api.ApplyRequest{Jobs: []api.JobSpec{{Name: "a", Group: "g", Manual: true, Command: []string{"true"}}}},
			wantOut: "{\n  \"created\": [],\n  \"updated\": [],\n  \"unchanged\": [\n    \"a\"\n  ],\n  \"deleted\": [],\n  \"dry_run\": false\n}\n",
		},
		{
			name:    "EmptyFileWithoutPrune",
			args:    []string{"-f", "-"},
			stdin:   "# nothing yet\n",
			answer:  `{}`,
			wantReq: api.ApplyRequest{Jobs: []api.JobSpec{}},
			wantOut: "0 created, 0 updated, 0 unchanged, 0 deleted\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/apply": {status: 200, body: tt.answer}})
			res := runCLI(t, fj.socket, cliOptions{stdin: tt.stdin}, append([]string{"apply"}, tt.args...)...)
			require.Equal(t, 0, res.code, res.err)
			require.Equal(t, tt.wantOut, res.out)

			reqs := fj.requests()
			require.Len(t, reqs, 1)
			var got api.ApplyRequest
			require.NoError(t, json.Unmarshal([]byte(reqs[0].Body), &got))
			require.Equal(t, tt.wantReq, got)
		})
	}
}

func TestApply_BadFiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		yaml    string
		args    []string
		wantErr string
	}{
		{"Malformed", "jobs:\n  - name: a\n   group: g\n", nil, "stdin: line 1: did not find expected"},
		{"Tabs", "jobs:\n\t- name: a\n", nil, "stdin: line 2"},
		{"UnknownField", "jobs:\n  - name: a\n    group: g\n    crontab: '* * * * *'\n", nil, "field crontab not found"},
		{"UnknownTopLevel", "job:\n  - name: a\n", nil, "field job not found"},
		{"BadDuration", "- name: a\n  group: g\n  every: often\n", nil, `duration "often"`},
		{"BadTime", "- name: a\n  group: g\n  at: tomorrow\n", nil, "stdin:"},
		{"Scalar", "hello\n", nil, "want a list of jobs"},
		{"NoName", "- group: g\n  manual: true\n", nil, "job 1 has no name"},
		{"BadName", "- name: Backup\n", nil, `job 1: job name "Backup"`},
		{"Duplicate", "- name: a\n- name: b\n- name: a\n", nil, `job "a" is declared twice (jobs 1 and 3)`},
		{"TwoDocuments", "- name: a\n---\n- name: b\n", nil, "more than one YAML document"},
		{"PruneEverything", "jobs: []\n", []string{"--prune"}, "refusing to --prune every job"},
		{"NoFile", "", []string{"--dry-run"}, "-f FILE is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, nil)
			args := []string{"apply"}
			if tt.name != "NoFile" {
				args = append(args, "-f", "-")
			}
			res := runCLI(t, fj.socket, cliOptions{stdin: tt.yaml}, append(args, tt.args...)...)
			require.Equal(t, ExitUsage, res.code, res.err)
			require.Contains(t, res.err, tt.wantErr)
			require.Empty(t, fj.requests(), "nothing is sent")
		})
	}

	t.Run("MissingFile", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, nil)
		res := runCLI(t, fj.socket, cliOptions{}, "apply", "-f", filepath.Join(t.TempDir(), "nope.yaml"))
		require.Equal(t, ExitError, res.code)
		require.Contains(t, res.err, "no such file")
		require.Empty(t, fj.requests())
	})

	t.Run("ServerRejectsField", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{"POST /api/v1/apply": {status: 400, body: `{"error":"unknown time zone Mars/Olympus","field":"jobs[0].tz"}`}})
		res := runCLI(t, fj.socket, cliOptions{stdin: "- {name: a, group: g, manual: true, handler: h, tz: Mars/Olympus}"}, "apply", "-f", "-")
		require.Equal(t, ExitUsage, res.code)
		require.Equal(t, "jobctl: jobs[0].tz: unknown time zone Mars/Olympus\n", res.err)
	})
}
