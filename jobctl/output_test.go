package jobctl

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

const runsJSON = `[
 {"id":"r2","job":"a","trigger_id":"t2","state":"running","origin":"schedule","scheduled_at":"2024-06-01T03:00:00.000Z",
  "started_at":"2024-06-01T03:00:00.012Z","executor":"w1","executor_id":"e1","attempt":1,"exit_code":null,"replay":false},
 {"id":"r1","job":"a","trigger_id":"t1","state":"failed","origin":"replay","scheduled_at":"2024-05-31T03:00:00.000Z",
  "started_at":"2024-05-31T03:00:00.010Z","finished_at":"2024-05-31T03:00:02.510Z","executor":"w1","executor_id":"e1",
  "attempt":2,"exit_code":3,"error":"exit status 3","replay":true}
]`

// rfc3339ms matches a time as jobctl prints it in JSON.
var rfc3339ms = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)

func TestListJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		route    string
		body     string
		args     []string
		wantKeys []string
		timeKeys []string
	}{
		{
			name: "Jobs", route: "GET /api/v1/jobs", body: "[" + jobA + "]", args: []string{"job", "list"},
			wantKeys: []string{"name", "group", "schedule", "paused", "next_fire_at", "last_fire_at"},
			timeKeys: []string{"next_fire_at", "created_at"},
		},
		{
			name: "Runs", route: "GET /api/v1/runs", body: runsJSON, args: []string{"run", "list"},
			wantKeys: []string{"id", "job", "state", "scheduled_at", "started_at", "finished_at", "executor", "executor_id", "attempt", "exit_code", "replay"},
			timeKeys: []string{"scheduled_at", "started_at"},
		},
		{
			name: "Executors", route: "GET /api/v1/executors", args: []string{"executor", "list"},
			body:     `[{"id":"e1","name":"w1","group":"g","state":"online","running":1,"slots":4,"last_seen":"2024-06-01T03:00:00.5Z"}]`,
			wantKeys: []string{"id", "name", "group", "state", "running", "slots", "last_seen"},
			timeKeys: []string{"last_seen"},
		},
		{
			name: "Missed", route: "GET /api/v1/missed", args: []string{"missed", "list"},
			body:     `[{"id":"m1","job":"a","from":"2024-06-01T01:00:00Z","to":"2024-06-01T03:00:00Z","count":3,"reason":"down"}]`,
			wantKeys: []string{"job", "from", "to", "count"},
			timeKeys: []string{"from", "to"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{tt.route: {handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("after") != "" {
					fmt.Fprint(w, "[]") // the last page of jobs
					return
				}
				fmt.Fprint(w, tt.body)
			}}})
			res := runCLI(t, fj.socket, cliOptions{}, append(tt.args, "-o", "json")...)
			require.Equal(t, 0, res.code, res.err)

			var items []map[string]any
			require.NoError(t, json.Unmarshal([]byte(res.out), &items), res.out)
			require.NotEmpty(t, items)
			for _, k := range tt.wantKeys {
				require.Contains(t, items[0], k)
			}
			for k := range items[0] {
				require.Equal(t, strings.ToLower(k), k, "key %q is not snake_case", k)
			}
			for _, k := range tt.timeKeys {
				require.Regexp(t, rfc3339ms, items[0][k])
			}

			// Empty lists are [] (JSON) and [] (YAML), never null.
			empty := newFakeJobd(t, map[string]answer{tt.route: {status: 200, body: "null"}})
			res = runCLI(t, empty.socket, cliOptions{}, append(tt.args, "-o", "json")...)
			require.Equal(t, 0, res.code, res.err)
			require.Equal(t, "[]\n", res.out)
			res = runCLI(t, empty.socket, cliOptions{}, append(tt.args, "-o", "yaml")...)
			require.Equal(t, "[]\n", res.out)
		})
	}
}

func TestRunList(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/runs": {status: 200, body: runsJSON}})

	res := runCLI(t, fj.socket, cliOptions{}, "run", "list", "--job", "a", "--state", "failed")
	require.Equal(t, 0, res.code, res.err)
	lines := strings.Split(strings.TrimSpace(res.out), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `^ID\s+JOB\s+STATE\s+ATTEMPT\s+EXECUTOR\s+SCHEDULED\s+DURATION\s+EXIT$`, lines[0])
	require.Regexp(t, `^r1\s+a\s+failed\s+2\s+w1\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+2\.5s\s+3$`, lines[2])
	require.NotContains(t, res.out, "\x1b[", "no colour without a terminal")

	res = runCLI(t, fj.socket, cliOptions{}, "run", "list", "-o", "wide", "--executor", "e1")
	require.Equal(t, 0, res.code, res.err)
	require.Contains(t, res.out, "ORIGIN")
	require.Contains(t, res.out, "exit status 3")

	reqs := fj.requests()
	require.Equal(t, "job=a&limit=50&state=failed", reqs[0].Query)
	require.Equal(t, "executor=e1&limit=50", reqs[1].Query)
}

func TestJobList_Pages(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/jobs": {handler: func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("after") {
		case "":
			fmt.Fprint(w, `[{"name":"a","group":"g","manual":true},{"name":"b","group":"g","every":"1m","paused":true}]`)
		case "b":
			fmt.Fprint(w, `[{"name":"c","group":"h","delay":"30s"}]`)
		default:
			fmt.Fprint(w, `[]`)
		}
	}}})
	res := runCLI(t, fj.socket, cliOptions{}, "job", "list", "--group", "g")
	require.Equal(t, 0, res.code, res.err)
	require.Regexp(t, `(?m)^NAME\s+GROUP\s+SCHEDULE\s+PAUSED\s+NEXT\s+LAST\n`+
		`a\s+g\s+manual\s+no\s+-\s+-\n`+
		`b\s+g\s+every 1m0s\s+yes\s+-\s+-\n`+
		`c\s+h\s+delay 30s\s+no\s+-\s+-\n$`, res.out)

	var queries []string
	for _, r := range fj.requests() {
		queries = append(queries, r.Query)
	}
	require.Equal(t, []string{"group=g&limit=500", "after=b&group=g&limit=500", "after=c&group=g&limit=500"}, queries)

	res = runCLI(t, fj.socket, cliOptions{}, "job", "list", "--limit", "1", "-o", "json")
	require.Equal(t, 0, res.code, res.err)
	var jobs []map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.out), &jobs))
	require.Len(t, jobs, 1)
}

func TestJobGetYAML(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/jobs/{name}": {status: 200, body: jobA}})
	res := runCLI(t, fj.socket, cliOptions{}, "job", "get", "a", "-o", "yaml")
	require.Equal(t, 0, res.code, res.err)
	var m map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(res.out), &m))
	require.Equal(t, "a", m["name"])
	require.Equal(t, "2024-06-01T03:00:00.000Z", m["next_fire_at"])
	require.Nil(t, m["last_fire_at"])

	res = runCLI(t, fj.socket, cliOptions{}, "job", "get", "a")
	require.Equal(t, 0, res.code, res.err)
	require.Contains(t, res.out, "Schedule:")
	require.Contains(t, res.out, "cron 0 3 * * *")
	require.Contains(t, res.out, "command true")
}

func TestStatus(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/status": {status: 200, body: `{"version":"1.2.3","leader":true,
		"store":"sqlite","jobs":10,"jobs_paused":2,"executors":{"online":3,"draining":1},"runs":{"running":4},
		"next_triggers":[{"job":"a","scheduled_at":"2024-06-01T03:00:00Z"}]}`}})
	res := runCLI(t, fj.socket, cliOptions{}, "status")
	require.Equal(t, 0, res.code, res.err)
	require.Contains(t, res.out, "leader")
	require.Contains(t, res.out, "10 (2 paused)")
	require.Contains(t, res.out, "1 draining, 3 online")

	res = runCLI(t, fj.socket, cliOptions{}, "status", "-o", "json")
	require.Equal(t, 0, res.code, res.err)
	require.Contains(t, res.out, `"jobs_paused": 2`)
}

func TestColor(t *testing.T) {
	t.Parallel()
	p := func(isTTY bool, env map[string]string, args ...string) string {
		f := &Factory{IO: &IOStreams{IsTTY: isTTY}, GetenvFunc: func(k string) string { return env[k] }}
		f.global.noColor = len(args) > 0
		return fmt.Sprint(f.colorEnabled())
	}
	require.Equal(t, "true", p(true, nil))
	require.Equal(t, "false", p(false, nil))
	require.Equal(t, "false", p(true, map[string]string{"NO_COLOR": "1"}))
	require.Equal(t, "false", p(true, nil, "--no-color"))

	// Colour never shifts the columns.
	var plain, color strings.Builder
	for _, out := range []struct {
		b     *strings.Builder
		color bool
	}{{&plain, false}, {&color, true}} {
		pr := &printer{format: formatTable, out: out.b, color: out.color}
		require.NoError(t, pr.table([]string{"ID", "STATE", "X"}, [][]cell{
			{{text: "r1"}, colored("failed", colorRed), {text: "1"}},
			{{text: "r22"}, colored("succeeded", colorGreen), {text: "2"}},
		}))
	}
	stripped := regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(color.String(), "")
	require.Equal(t, plain.String(), stripped)
	require.Contains(t, color.String(), colorRed+"failed"+colorReset)
}
