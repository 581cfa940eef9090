package jobctl

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// seen is one request the fake jobd received.
type seen struct {
	Method, Path, Query, Body string
}

// answer is a canned answer of the fake jobd: a status and a JSON body, or
// a handler when the answer depends on the request.
type answer struct {
	status  int
	body    string
	handler http.HandlerFunc
}

// fakeJobd is an HTTP server on a real unix socket that answers the routes
// it is given and records every request.
type fakeJobd struct {
	socket string
	// ln is the listener: closing it takes jobd away (new connections
	// fail, the socket file is removed) while open streams go on.
	ln   net.Listener
	mu   sync.Mutex
	reqs []seen
}

// newFakeJobd starts a fake jobd with routes keyed by ServeMux pattern
// ("POST /api/v1/jobs"). Any other request fails the test.
func newFakeJobd(t *testing.T, routes map[string]answer) *fakeJobd {
	t.Helper()
	dir, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	fj := &fakeJobd{socket: filepath.Join(dir, "jobd.sock")}

	mux := http.NewServeMux()
	for pattern, a := range routes {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if a.handler != nil {
				a.handler(w, r)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			_, _ = io.WriteString(w, a.body)
		})
	}
	ln, err := net.Listen("unix", fj.socket)
	require.NoError(t, err)
	fj.ln = ln
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		fj.mu.Lock()
		fj.reqs = append(fj.reqs, seen{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(b)})
		fj.mu.Unlock()
		if _, pattern := mux.Handler(r); pattern == "" {
			t.Errorf("fake jobd: unexpected request %s %s", r.Method, r.URL)
			http.Error(w, `{"error":"no such route"}`, http.StatusTeapot)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return fj
}

func (fj *fakeJobd) requests() []seen {
	fj.mu.Lock()
	defer fj.mu.Unlock()
	return append([]seen(nil), fj.reqs...)
}

// result is the outcome of one jobctl invocation.
type result struct {
	out, err string
	code     int
}

// cliOptions vary one invocation.
type cliOptions struct {
	stdin     string
	canPrompt bool
	env       map[string]string
}

// runCLI runs jobctl in process against socket with args.
func runCLI(t *testing.T, socket string, o cliOptions, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ios := &IOStreams{In: strings.NewReader(o.stdin), Out: &stdout, ErrOut: &stderr, CanPrompt: o.canPrompt}
	env := func(k string) string { return o.env[k] }
	code := run(t.Context(), append([]string{"--socket", socket}, args...), ios, env)
	return result{out: stdout.String(), err: stderr.String(), code: code}
}

// decodeSpec decodes a request body into a JobSpec.
func decodeSpec(t *testing.T, body string) api.JobSpec {
	t.Helper()
	var spec api.JobSpec
	require.NoError(t, json.Unmarshal([]byte(body), &spec), body)
	return spec
}

func dur(d time.Duration) *api.Duration {
	v := api.Duration(d)
	return &v
}

func tm(s string) *api.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	v := api.NewTime(t)
	return &v
}

const jobA = `{"id":"j1","name":"a","group":"g","cron":"0 3 * * *","schedule":"cron 0 3 * * *","kind":"command",
	"command":["true"],"paused":false,"next_fire_at":"2024-06-01T03:00:00.000Z","last_fire_at":null,
	"created_at":"2024-05-01T00:00:00.000Z","updated_at":"2024-05-01T00:00:00.000Z"}`

func TestJobCreate(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "job.sh")
	require.NoError(t, os.WriteFile(script, []byte("#!/bin/bash\necho hi\n"), 0o600))

	tests := []struct {
		name  string
		args  []string
		stdin string
		want  api.JobSpec
	}{
		{
			name: "Cron",
			args: []string{"--cron", "0 3 * * *", "--tz", "Europe/Paris", "--command", `pg_dump -f "/backups/a b.dump" app`},
			want: api.JobSpec{Cron: "0 3 * * *", TZ: "Europe/Paris", Command: []string{"pg_dump", "-f", "/backups/a b.dump", "app"}},
		},
		{
			name: "EveryWithAnchor",
			args: []string{"--every", "5m", "--anchor", "2024-06-01T00:00:00Z", "--handler", "sync"},
			want: api.JobSpec{Every: dur(5 * time.Minute), Anchor: tm("2024-06-01T00:00:00Z"), Handler: "sync"},
		},
		{
			name: "Delay",
			args: []string{"--delay", "30s", "--http", "https://example.com/hook", "--method", "post"},
			want: api.JobSpec{Delay: dur(30 * time.Second), HTTP: &api.HTTPRequest{URL: "https://example.com/hook", Method: "POST"}},
		},
		{
			name: "At",
			args: []string{"--at", "2024-06-01T02:00:00Z", "--script", script, "--interpreter", "bash"},
			want: api.JobSpec{At: tm("2024-06-01T02:00:00Z"), Script: "#!/bin/bash\necho hi\n", Interpreter: "bash"},
		},
		{
			name:  "ManualScriptFromStdin",
			args:  []string{"--manual", "--script", "-"},
			stdin: "echo from stdin\n",
			want:  api.JobSpec{Manual: true, Script: "echo from stdin\n"},
		},
		{
			name: "AllPolicies",
			args: []string{
				"--cron", "@daily", "--command", "true", "--param", "k=v=w", "--param", "x=", "--label", "team=ops",
				"--selector", "region=eu", "--misfire", "catch_up", "--misfire-threshold", "10s", "--max-catch-up", "3",
				"--record-missed", "--overlap", "queue", "--queue-max", "2", "--route", "least_recently_used",
				"--retries", "3", "--backoff", "1m", "--timeout", "2h", "--paused",
			},
			want: api.JobSpec{
				Cron: "@daily", Command: []string{"true"}, Params: map[string]string{"k": "v=w", "x": ""},
				Labels: map[string]string{"team": "ops"}, Selector: map[string]string{"region": "eu"},
				Misfire: "catch_up", MisfireThreshold: dur(10 * time.Second), MaxCatchUp: 3, RecordMissed: true,
				Overlap: "queue", QueueMax: 2, Route: "least_recently_used", Retries: 3,
				Backoff: dur(time.Minute), Timeout: dur(2 * time.Hour), Paused: true,
			},
		},
		{
			name: "ExponentialBackoff",
			args: []string{"--manual", "--handler", "h", "--retries", "5", "--backoff", "10s", "--backoff-policy", "exponential", "--backoff-max", "5m"},
			want: api.JobSpec{Manual: true, Handler: "h", Retries: 5, Backoff: dur(10 * time.Second),
				BackoffPolicy: "exponential", BackoffMax: dur(5 * time.Minute)},
		},
		{
			name: "FixedBackoffZeroIsAtOnce",
			args: []string{"--manual", "--handler", "h", "--retries", "1", "--backoff", "0", "--backoff-policy", "fixed"},
			want: api.JobSpec{Manual: true, Handler: "h", Retries: 1, Backoff: dur(0), BackoffPolicy: "fixed"},
		},
		{
			name: "BackoffMaxZeroIsDefault",
			args: []string{"--manual", "--handler", "h", "--retries", "1", "--backoff-max", "0"},
			want: api.JobSpec{Manual: true, Handler: "h", Retries: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/jobs": {status: 201, body: jobA}})
			res := runCLI(t, fj.socket, cliOptions{stdin: tt.stdin}, append([]string{"job", "create", "a", "--group", "g"}, tt.args...)...)
			require.Equal(t, 0, res.code, res.err)
			require.Equal(t, "created job a (next fire "+time.Date(2024, 6, 1, 3, 0, 0, 0, time.UTC).Local().Format("2006-01-02 15:04:05")+")\n", res.out)

			reqs := fj.requests()
			require.Len(t, reqs, 1)
			require.Equal(t, "POST", reqs[0].Method)
			require.Equal(t, "/api/v1/jobs", reqs[0].Path)
			want := tt.want
			want.Name, want.Group = "a", "g"
			require.Equal(t, want, decodeSpec(t, reqs[0].Body))
		})
	}
}

func TestJobCreate_UsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"TwoSchedules", []string{"a", "--group", "g", "--cron", "* * * * *", "--every", "1m", "--command", "true"}, "give one schedule, not --cron, --every"},
		{"NoSchedule", []string{"a", "--group", "g", "--command", "true"}, "give a schedule"},
		{"NoKind", []string{"a", "--group", "g", "--manual"}, "give what the job runs"},
		{"TwoKinds", []string{"a", "--group", "g", "--manual", "--command", "true", "--handler", "h"}, "give one kind of job, not --command, --handler"},
		{"NoGroup", []string{"a", "--manual", "--command", "true"}, "--group is required"},
		{"BadParam", []string{"a", "--group", "g", "--manual", "--command", "true", "--param", "novalue"}, `--param "novalue": want KEY=VALUE`},
		{"DuplicateLabel", []string{"a", "--group", "g", "--manual", "--command", "true", "--label", "a=1", "--label", "a=2"}, `--label: key "a" given twice`},
		{"BadMisfire", []string{"a", "--group", "g", "--manual", "--command", "true", "--misfire", "later"}, "want one of skip, fire_once, catch_up"},
		{"BadOverlap", []string{"a", "--group", "g", "--manual", "--command", "true", "--overlap", "maybe"}, "want one of allow, queue, skip, replace"},
		{"BadRoute", []string{"a", "--group", "g", "--manual", "--command", "true", "--route", "closest"}, "want one of first, last"},
		{"BadName", []string{"Bad_Name", "--group", "g", "--manual", "--command", "true"}, `job name "Bad_Name"`},
		{"AnchorWithoutEvery", []string{"a", "--group", "g", "--cron", "* * * * *", "--anchor", "now", "--command", "true"}, "--anchor goes with --every"},
		{"InterpreterWithoutScript", []string{"a", "--group", "g", "--manual", "--command", "true", "--interpreter", "bash"}, "--interpreter goes with --script"},
		{"ShellOperator", []string{"a", "--group", "g", "--manual", "--command", "ls | wc -l"}, `commands run without a shell, so "|"`},
		{"UnbalancedQuote", []string{"a", "--group", "g", "--manual", "--command", `echo "hi`}, "unbalanced quotes"},
		{"BadURL", []string{"a", "--group", "g", "--manual", "--http", "example.com"}, "want an http(s)://host/... URL"},
		{"BadDuration", []string{"a", "--group", "g", "--every", "often", "--command", "true"}, `invalid argument "often" for "--every"`},
		{"BadBackoffPolicy", []string{"a", "--group", "g", "--manual", "--command", "true", "--backoff-policy", "linear"}, "want one of fixed, exponential"},
		{"BackoffMaxWithFixed", []string{"a", "--group", "g", "--manual", "--command", "true", "--backoff-policy", "fixed", "--backoff-max", "1m"}, "--backoff-max goes with --backoff-policy exponential"},
		{"BackoffMaxUnderBackoff", []string{"a", "--group", "g", "--manual", "--command", "true", "--backoff", "1m", "--backoff-max", "30s"}, "--backoff-max 30s is less than --backoff 1m0s"},
		{"NegativeBackoffMax", []string{"a", "--group", "g", "--manual", "--command", "true", "--backoff-max", "-1s"}, "--backoff-max must not be negative"},
		{"NegativeRetries", []string{"a", "--group", "g", "--manual", "--command", "true", "--retries", "-1"}, "--retries must not be negative"},
		{"BadAt", []string{"a", "--group", "g", "--at", "tomorrow", "--command", "true"}, `--at: time "tomorrow"`},
		{"UnknownFlag", []string{"a", "--group", "g", "--crontab", "x"}, "unknown flag: --crontab"},
		{"NoName", []string{"--group", "g", "--manual", "--command", "true"}, "takes one job NAME (got 0 arguments)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, nil)
			res := runCLI(t, fj.socket, cliOptions{}, append([]string{"job", "create"}, tt.args...)...)
			require.Equal(t, ExitUsage, res.code, res.err)
			require.Contains(t, res.err, tt.wantErr)
			require.True(t, strings.HasPrefix(res.err, "jobctl: "), res.err)
			require.Empty(t, res.out)
			require.Empty(t, fj.requests())
		})
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		status   int
		body     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{
			name: "InvalidNamesField", status: 400, body: `{"error":"expected 5 to 7 fields, got 2","field":"cron"}`,
			args:     []string{"job", "create", "a", "--group", "g", "--cron", "* *", "--command", "true"},
			wantCode: ExitUsage, wantErr: "jobctl: job \"a\": cron: expected 5 to 7 fields, got 2\n",
		},
		{
			name: "TooLarge", status: 413, body: `{"error":"request body over 1 MiB"}`,
			args:     []string{"job", "create", "a", "--group", "g", "--manual", "--command", "true"},
			wantCode: ExitUsage, wantErr: "request body over 1 MiB",
		},
		{
			name: "Conflict", status: 409, body: `{"error":"job \"a\" already exists"}`,
			args:     []string{"job", "create", "a", "--group", "g", "--manual", "--command", "true"},
			wantCode: ExitError, wantErr: "jobctl: job \"a\" already exists (change it with 'jobctl job edit a' or 'jobctl apply')\n",
		},
		{
			name: "ServerError", status: 500, body: `{"error":"store: disk I/O error"}`,
			args:     []string{"job", "create", "a", "--group", "g", "--manual", "--command", "true"},
			wantCode: ExitError, wantErr: "store: disk I/O error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/jobs": {status: tt.status, body: tt.body}})
			res := runCLI(t, fj.socket, cliOptions{}, tt.args...)
			require.Equal(t, tt.wantCode, res.code, res.err)
			require.Contains(t, res.err, tt.wantErr)
			require.Empty(t, res.out)
		})
	}

	notFound := map[string]answer{
		"GET /api/v1/jobs/{name}":        {status: 404, body: `{"error":"not found"}`},
		"DELETE /api/v1/jobs/{name}":     {status: 404, body: `{"error":"job \"nope\" not found"}`},
		"POST /api/v1/jobs/{name}/pause": {status: 404, body: `{"error":"no such job"}`},
		"GET /api/v1/runs/{id}":          {status: 404, body: `{"error":"run not found"}`},
	}
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"job", "get", "nope"}, "jobctl: job \"nope\": not found\n"},
		{[]string{"job", "rm", "nope"}, "jobctl: job \"nope\" not found\n"},
		{[]string{"job", "pause", "nope"}, "jobctl: job \"nope\": no such job\n"},
		{[]string{"run", "get", "r9"}, "jobctl: run \"r9\": run not found\n"},
	} {
		t.Run("NotFound"+strings.Join(tc.args[:2], ""), func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, notFound)
			res := runCLI(t, fj.socket, cliOptions{}, tc.args...)
			require.Equal(t, ExitNotFound, res.code)
			require.Equal(t, tc.wantErr, res.err)
		})
	}

	t.Run("Unreachable", func(t *testing.T) {
		t.Parallel()
		socket := filepath.Join(t.TempDir(), "none.sock")
		for _, args := range [][]string{{"status"}, {"job", "list"}, {"run", "list"}} {
			res := runCLI(t, socket, cliOptions{}, args...)
			require.Equal(t, ExitUnreachable, res.code)
			require.Contains(t, res.err, "jobctl: cannot reach jobd at "+socket+": is jobd running?")
		}
	})

	t.Run("SocketFromEnv", func(t *testing.T) {
		t.Parallel()
		socket := filepath.Join(t.TempDir(), "env.sock")
		var stdout, stderr bytes.Buffer
		ios := &IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr}
		code := run(t.Context(), []string{"status"}, ios, func(k string) string {
			return map[string]string{EnvSocket: socket}[k]
		})
		require.Equal(t, ExitUnreachable, code)
		require.Contains(t, stderr.String(), socket)
	})
}

func TestCobraUsageErrors(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"frobnicate"},
		{"job", "frobnicate"},
		{"job", "get"},
		{"job", "get", "a", "b"},
		{"run", "list", "--limit", "0"},
		{"run", "list", "--state", "sleeping"},
		{"-o", "xml", "status"},
		{"completion", "powershell"},
		{"status", "extra"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, nil)
			res := runCLI(t, fj.socket, cliOptions{}, args...)
			require.Equal(t, ExitUsage, res.code, res.err)
			require.True(t, strings.HasPrefix(res.err, "jobctl: "), res.err)
			require.Empty(t, fj.requests())
		})
	}
}

func TestWhereIsJobd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		socket     string
		addr       string
		env        map[string]string
		wantSocket string
		wantAddr   string
		wantToken  string
	}{
		{name: "Flag", socket: "/s", env: map[string]string{EnvSocket: "/e", EnvAddr: "http://a"}, wantSocket: "/s"},
		{name: "AddrFlagBeatsEnvSocket", addr: "http://f", env: map[string]string{EnvSocket: "/e"}, wantAddr: "http://f"},
		{name: "EnvSocket", env: map[string]string{EnvSocket: "/e", EnvAddr: "http://a"}, wantSocket: "/e"},
		{name: "EnvAddrAndToken", env: map[string]string{EnvAddr: "http://a", EnvToken: "tok"}, wantAddr: "http://a", wantToken: "tok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &Factory{GetenvFunc: func(k string) string { return tt.env[k] }}
			f.global.socket, f.global.addr = tt.socket, tt.addr
			c := f.Client()
			require.Equal(t, tt.wantSocket, c.Socket)
			require.Equal(t, tt.wantAddr, c.Addr)
			require.Equal(t, tt.wantToken, c.Token)
		})
	}
}

func TestJobCreate_Options(t *testing.T) {
	t.Parallel()
	now := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	f := &Factory{IO: &IOStreams{In: strings.NewReader("")}, NowFunc: func() time.Time { return now }}
	var got *jobCreateOptions
	cmd := newCmdJobCreate(f, func(o *jobCreateOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"a", "--group", "g", "--at", "+90m", "--command", "true"})
	require.NoError(t, cmd.ExecuteContext(t.Context()))
	require.NotNil(t, got)
	require.Equal(t, now.Add(90*time.Minute), got.Spec.At.Time)
	require.Equal(t, t.Context(), got.Ctx)
}
