package jobctl

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestJobActions(t *testing.T) {
	t.Parallel()
	routes := map[string]answer{
		"POST /api/v1/jobs/{name}/trigger": {status: 200, body: `{"trigger_id":"t1","job":"a","runs":[{"id":"r1"},{"id":"r2"}]}`},
		"POST /api/v1/jobs/{name}/pause":   {status: 200, body: `{"name":"a","paused":true}`},
		"POST /api/v1/jobs/{name}/resume":  {status: 200, body: `{"name":"a","next_fire_at":"2024-06-01T03:00:00Z"}`},
		"DELETE /api/v1/jobs/{name}":       {status: 204},
	}
	tests := []struct {
		name    string
		args    []string
		want    seen
		wantOut string
	}{
		{"Trigger", []string{"job", "trigger", "a", "--param", "day=2024-06-01"},
			seen{Method: "POST", Path: "/api/v1/jobs/a/trigger", Body: `{"params":{"day":"2024-06-01"}}`}, "r1\nr2\n"},
		{"TriggerNoParams", []string{"job", "trigger", "a"},
			seen{Method: "POST", Path: "/api/v1/jobs/a/trigger", Body: `{}`}, "r1\nr2\n"},
		{"Pause", []string{"job", "pause", "a"}, seen{Method: "POST", Path: "/api/v1/jobs/a/pause"}, "paused job a\n"},
		{"Resume", []string{"job", "resume", "a", "-o", "json"}, seen{Method: "POST", Path: "/api/v1/jobs/a/resume"}, ""},
		{"Rm", []string{"job", "rm", "a"}, seen{Method: "DELETE", Path: "/api/v1/jobs/a"}, "deleted job a\n"},
		{"RmJSON", []string{"job", "rm", "a", "-o", "json"}, seen{Method: "DELETE", Path: "/api/v1/jobs/a"}, "{\n  \"deleted\": true,\n  \"name\": \"a\"\n}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, routes)
			res := runCLI(t, fj.socket, cliOptions{}, tt.args...)
			require.Equal(t, 0, res.code, res.err)
			if tt.wantOut != "" {
				require.Equal(t, tt.wantOut, res.out)
			} else {
				require.True(t, json.Valid([]byte(res.out)), res.out)
			}
			require.Equal(t, []seen{tt.want}, fj.requests())
		})
	}
}

func TestJobEdit(t *testing.T) {
	t.Parallel()
	jobWithEvery := `{"name":"a","group":"g","every":"5m","anchor":"2024-06-01T00:00:00.000Z","command":["true"],
		"params":{"k":"v"},"timeout":"1h","schedule":"every 5m","next_fire_at":"2024-06-01T03:00:00.000Z"}`
	base := api.JobSpec{Name: "a", Group: "g", Every: dur(5 * time.Minute), Anchor: tm("2024-06-01T00:00:00Z"),
		Command: []string{"true"}, Params: map[string]string{"k": "v"}, Timeout: dur(time.Hour)}

	routes := map[string]answer{
		"GET /api/v1/jobs/{name}": {status: 200, body: jobWithEvery},
		"PUT /api/v1/jobs/{name}": {status: 200, body: jobWithEvery},
	}

	t.Run("Flags", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name string
			args []string
			want func(s *api.JobSpec)
		}{
			{"Cron", []string{"--cron", "0 * * * *"}, func(s *api.JobSpec) { s.Every, s.Anchor, s.Cron = nil, nil, "0 * * * *" }},
			{"EveryKeepsAnchor", []string{"--every", "10m"}, func(s *api.JobSpec) { s.Every = dur(10 * time.Minute) }},
			{"PausedAndParam", []string{"--paused", "--param", "x=1"}, func(s *api.JobSpec) {
				s.Paused, s.Params = true, map[string]string{"k": "v", "x": "1"}
			}},
			{"ClearTimeout", []string{"--timeout", "0"}, func(s *api.JobSpec) { s.Timeout = nil }},
			{"Kind", []string{"--handler", "h"}, func(s *api.JobSpec) { s.Command, s.Handler = nil, "h" }},
			{"BackoffPolicy", []string{"--retries", "2", "--backoff-policy", "fixed", "--backoff", "15s"}, func(s *api.JobSpec) {
				s.Retries, s.BackoffPolicy, s.Backoff = 2, "fixed", dur(15*time.Second)
			}},
			{"BackoffMax", []string{"--backoff-max", "1h"}, func(s *api.JobSpec) { s.BackoffMax = dur(time.Hour) }},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				fj := newFakeJobd(t, routes)
				res := runCLI(t, fj.socket, cliOptions{}, append([]string{"job", "edit", "a"}, tt.args...)...)
				require.Equal(t, 0, res.code, res.err)
				require.Contains(t, res.out, "updated job a")
				reqs := fj.requests()
				require.Len(t, reqs, 2)
				require.Equal(t, "GET", reqs[0].Method)
				require.Equal(t, "PUT", reqs[1].Method)
				require.Equal(t, "/api/v1/jobs/a", reqs[1].Path)
				want := base
				want.Params = map[string]string{"k": "v"}
				tt.want(&want)
				require.Equal(t, want, decodeSpec(t, reqs[1].Body))
			})
		}
	})

	t.Run("File", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{stdin: "group: g2\nmanual: true\nhandler: h\n"}, "job", "edit", "a", "-f", "-")
		require.Equal(t, 0, res.code, res.err)
		reqs := fj.requests()
		require.Len(t, reqs, 1, "a file replaces the spec: no GET")
		require.Equal(t, api.JobSpec{Name: "a", Group: "g2", Manual: true, Handler: "h"}, decodeSpec(t, reqs[0].Body))
	})

	t.Run("FileRenames", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{stdin: "name: b\ngroup: g\n"}, "job", "edit", "a", "-f", "-")
		require.Equal(t, ExitUsage, res.code)
		require.Contains(t, res.err, "cannot be renamed")
		require.Empty(t, fj.requests())
	})

	t.Run("NoTerminalNoFlags", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{}, "job", "edit", "a")
		require.Equal(t, ExitUsage, res.code)
		require.Contains(t, res.err, "no terminal to run an editor in")
		require.Empty(t, fj.requests())
	})

	t.Run("Editor", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		editor := filepath.Join(dir, "ed.sh")
		// The "editor" changes the timeout and records what it was shown.
		require.NoError(t, os.WriteFile(editor, []byte("#!/bin/sh\ncp \"$1\" "+filepath.Join(dir, "shown")+
			"\nsed -i 's/^timeout: 1h0m0s$/timeout: 2h/' \"$1\"\n"), 0o700))
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{canPrompt: true, env: map[string]string{"EDITOR": editor}}, "job", "edit", "a")
		require.Equal(t, 0, res.code, res.err)

		shown, err := os.ReadFile(filepath.Join(dir, "shown"))
		require.NoError(t, err)
		require.Contains(t, string(shown), "# Edit job \"a\"")
		require.Contains(t, string(shown), "\nanchor: \"2024-06-01T00:00:00.000Z\"\n")

		reqs := fj.requests()
		require.Len(t, reqs, 2)
		want := base
		want.Timeout = dur(2 * time.Hour)
		require.Equal(t, want, decodeSpec(t, reqs[1].Body))
	})

	t.Run("EditorNoChange", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{canPrompt: true, env: map[string]string{"VISUAL": "true"}}, "job", "edit", "a")
		require.Equal(t, 0, res.code, res.err)
		require.Contains(t, res.err, "edit cancelled: no change to job a")
		require.Len(t, fj.requests(), 1, "nothing is PUT")
	})

	t.Run("EditorBadYAMLKeepsFile", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		editor := filepath.Join(dir, "ed.sh")
		require.NoError(t, os.WriteFile(editor, []byte("#!/bin/sh\necho 'bogus_field: 1' >> \"$1\"\n"), 0o700))
		fj := newFakeJobd(t, routes)
		res := runCLI(t, fj.socket, cliOptions{canPrompt: true, env: map[string]string{"EDITOR": editor}}, "job", "edit", "a")
		require.Equal(t, ExitUsage, res.code)
		require.Contains(t, res.err, "field bogus_field not found")
		_, saved, ok := strings.Cut(res.err, "your edit is saved in ")
		require.True(t, ok, res.err)
		saved = strings.TrimSpace(saved)
		t.Cleanup(func() { _ = os.Remove(saved) })
		b, err := os.ReadFile(saved)
		require.NoError(t, err)
		require.Contains(t, string(b), "bogus_field: 1")
		require.Len(t, fj.requests(), 1, "nothing is PUT")
	})
}

func TestSplitCommand(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []string
	}{
		{`echo hi`, []string{"echo", "hi"}},
		{`sh -c 'echo $HOME | wc -c'`, []string{"sh", "-c", "echo $HOME | wc -c"}},
		{`printf '%s\n' "a b" ''`, []string{"printf", `%s\n`, "a b", ""}},
		// go-shellwords turns \n and \t into newline and tab even in double
		// quotes, unlike sh; single quotes keep backslashes.
		{`printf "%s\n"`, []string{"printf", "%s\n"}},
		{`echo $HOME`, []string{"echo", "$HOME"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := splitCommand(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
	for _, bad := range []string{"", "   ", "a && b", "a; b", "a > out", `"open`} {
		_, err := splitCommand(bad)
		require.Error(t, err, bad)
		require.Equal(t, ExitUsage, exitCode(err))
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{
		"GET /api/v1/jobs": {status: 200, body: `[{"name":"backup"},{"name":"backup.db"},{"name":"beta"}]`},
	})
	for _, shell := range []string{"bash", "zsh", "fish"} {
		res := runCLI(t, fj.socket, cliOptions{}, "completion", shell)
		require.Equal(t, 0, res.code, res.err)
		require.Contains(t, res.out, "jobctl")
	}

	res := runCLI(t, fj.socket, cliOptions{}, "__complete", "job", "get", "back")
	require.Equal(t, 0, res.code, res.err)
	require.Equal(t, "backup\nbackup.db\n:4\n", res.out)
	reqs := fj.requests()
	require.Len(t, reqs, 1)
	require.Equal(t, "after=bacj~&limit=200", reqs[0].Query, "starts just before the prefix")

	res = runCLI(t, fj.socket, cliOptions{}, "__complete", "job", "create", "a", "--misfire", "")
	require.Equal(t, "skip\nfire_once\ncatch_up\n:4\n", res.out)

	// Without jobd, completion degrades to nothing, silently.
	res = runCLI(t, filepath.Join(t.TempDir(), "none.sock"), cliOptions{}, "__complete", "run", "list", "--job", "")
	require.Equal(t, 0, res.code)
	require.Equal(t, ":4\n", res.out)
}
