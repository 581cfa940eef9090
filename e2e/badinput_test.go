package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// unixClient is an HTTP client that talks to jobd's admin socket.
func unixClient(socket string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", socket)
			},
		},
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	// Jobs whose listing does not change with time (no cursor moves), so
	// that "the store is unchanged" is a byte comparison of job list.
	d.ctl("job", "create", "keep-manual", "--group", "g", "--manual", "--command", "true")
	d.ctl("job", "create", "keep-paused", "--group", "g", "--cron", "0 3 * * *", "--paused", "--command", "true")
	jobList := func() string { return d.ctl("job", "list", "-o", "json") }
	before := jobList()
	runsBefore := d.ctl("run", "list", "-o", "json")

	dir := t.TempDir()
	writeFile := func(name, content string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
		return p
	}
	badYAML := writeFile("bad.yaml", "jobs:\n  - name: a\n    group: g\n   every: [1s\n")
	mixed := writeFile("mixed.yaml", `jobs:
  - name: fine-one
    group: g
    every: 10s
    command: ["true"]
  - name: broken
    group: g
    cron: "0 0 31 4 *"
    command: ["true"]
  - name: fine-two
    group: g
    manual: true
    command: ["true"]
`)
	mixedTZ := writeFile("mixed-tz.yaml", `- name: fine-three
  group: g
  every: 10s
  command: ["true"]
- name: bad-tz
  group: g
  cron: "0 3 * * *"
  tz: Mars/Base
  command: ["true"]
`)
	// jobctl refuses --every 0s itself; through apply it reaches jobd.
	zero := writeFile("zero.yaml", "- name: zero\n  group: g\n  every: 0s\n  command: [\"true\"]\n")
	huge := writeFile("huge.yaml", fmt.Sprintf("jobs:\n  - name: huge\n    group: g\n    manual: true\n    script: %q\n", strings.Repeat("x", 1<<20+1024)))

	cases := []struct {
		name     string
		args     []string
		wantCode int
		// wantErr are substrings stderr must hold (the field at fault).
		wantErr []string
	}{
		{"InvalidCron", []string{"job", "create", "x", "--group", "g", "--cron", "nope", "--command", "true"}, 2, []string{"cron"}},
		{"ImpossibleCron", []string{"job", "create", "x", "--group", "g", "--cron", "0 0 31 4 *", "--command", "true"}, 2, []string{"cron"}},
		{"UnknownTimezone", []string{"job", "create", "x", "--group", "g", "--cron", "0 3 * * *", "--tz", "Mars/Base", "--command", "true"}, 2, []string{"tz", "Mars/Base"}},
		{"IntervalZero", []string{"job", "create", "x", "--group", "g", "--every", "0s", "--command", "true"}, 2, []string{"every"}},
		{"IntervalBelowOneSecond", []string{"job", "create", "x", "--group", "g", "--every", "500ms", "--command", "true"}, 2, []string{"every"}},
		{"BadName", []string{"job", "create", "Bad_Name", "--group", "g", "--manual", "--command", "true"}, 2, []string{"Bad_Name"}},
		{"BadGroup", []string{"job", "create", "x", "--group", "Bad Group", "--manual", "--command", "true"}, 2, []string{"group"}},
		{"TwoSchedules", []string{"job", "create", "x", "--group", "g", "--manual", "--every", "1s", "--command", "true"}, 2, []string{"--manual", "--every"}},
		{"NoKind", []string{"job", "create", "x", "--group", "g", "--manual"}, 2, []string{"--command"}},
		{"BadMisfire", []string{"job", "create", "x", "--group", "g", "--manual", "--command", "true", "--misfire", "sometimes"}, 2, []string{"misfire"}},
		// A duplicate is a conflict, not invalid input: jobctl maps 409 to
		// exit 1 on purpose (jobctl/jobctl_test.go pins it).
		{"DuplicateName", []string{"job", "create", "keep-manual", "--group", "g", "--manual", "--command", "true"}, 1, []string{"keep-manual"}},
		{"GetUnknownJob", []string{"job", "get", "nosuch"}, 3, []string{"nosuch"}},
		{"RmUnknownJob", []string{"job", "rm", "nosuch"}, 3, []string{"nosuch"}},
		{"PauseUnknownJob", []string{"job", "pause", "nosuch"}, 3, []string{"nosuch"}},
		{"ResumeUnknownJob", []string{"job", "resume", "nosuch"}, 3, []string{"nosuch"}},
		{"TriggerUnknownJob", []string{"job", "trigger", "nosuch"}, 3, []string{"nosuch"}},
		{"ReplayUnknownJob", []string{"replay", "--job", "nosuch", "--dry-run"}, 3, []string{"nosuch"}},
		{"GetUnknownRun", []string{"run", "get", "999999"}, 3, []string{"999999"}},
		{"ApplyMalformedYAML", []string{"apply", "-f", badYAML}, 2, []string{"bad.yaml"}},
		{"ApplyOneInvalidAmongValid", []string{"apply", "-f", mixed}, 2, []string{"jobs[1]", "cron", "broken"}},
		{"ApplyUnknownTimezoneAmongValid", []string{"apply", "-f", mixedTZ}, 2, []string{"jobs[1]", "tz", "bad-tz"}},
		{"ApplyIntervalZero", []string{"apply", "-f", zero}, 2, []string{"jobs[0]", "every"}},
		{"ApplyTooLarge", []string{"apply", "-f", huge}, 2, []string{"body"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := d.jobctl(tc.args...)
			require.Equal(t, tc.wantCode, code, "jobctl %s\nstdout: %s\nstderr: %s", strings.Join(tc.args, " "), out, errOut)
			for _, s := range tc.wantErr {
				require.Contains(t, errOut, s, "stderr of jobctl %s", strings.Join(tc.args, " "))
			}
			require.True(t, strings.HasPrefix(errOut, "jobctl: "), "stderr %q", errOut)
			require.Equal(t, before, jobList(), "job list changed after jobctl %s", strings.Join(tc.args, " "))
		})
	}

	// SPEC §4: bad input gets a clear error naming the field. A taken name
	// should read like jobctl's own fixtures expect (`job "a" already
	// exists`), not like a SQLite constraint.
	t.Run("DuplicateNameMessage", func(t *testing.T) {
		_, errOut, code := d.jobctl("job", "create", "keep-manual", "--group", "g", "--manual", "--command", "true")
		require.Equal(t, 1, code)
		require.Contains(t, errOut, "already exists", "stderr")
		require.NotContains(t, errOut, "constraint", "stderr leaks the SQL error")
	})

	t.Run("OversizedBody", func(t *testing.T) {
		spec := map[string]any{"name": "big", "group": "g", "manual": true,
			"command": []string{"echo", strings.Repeat("x", 1<<20+1)}}
		body, err := json.Marshal(spec)
		require.NoError(t, err)
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://jobd/api/v1/jobs", strings.NewReader(string(body)))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := unixClient(d.Socket).Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		require.Contains(t, resp.Header.Get("Content-Type"), "application/json")
		var eb api.ErrorBody
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&eb))
		require.NotEmpty(t, eb.Error)
		require.Equal(t, "body", eb.Field, "error %q", eb.Error)
		require.Equal(t, before, jobList(), "job list changed after an oversized create")
	})

	t.Run("NothingCreated", func(t *testing.T) {
		for _, name := range []string{"x", "fine-one", "fine-two", "fine-three", "broken", "bad-tz", "zero", "huge", "big"} {
			_, _, code := d.jobctl("job", "get", name)
			require.Equal(t, 3, code, "job %s exists", name)
		}
		require.Equal(t, runsBefore, d.ctl("run", "list", "-o", "json"), "runs appeared")
	})
}
