package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// request is what the fake server saw of one request.
type request struct {
	Method, Path, Query, Auth, UA, ContentType string
	Body                                       string
}

// serveUnix serves h on a unix socket in a fresh temp dir and returns the
// socket path and the requests seen.
func serveUnix(t *testing.T, status int, answer string) (string, func() []request) {
	t.Helper()
	dir, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	socket := filepath.Join(dir, "s")
	ln, err := net.Listen("unix", socket)
	require.NoError(t, err)

	var mu sync.Mutex
	var seen []request
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, request{
			Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery,
			Auth: r.Header.Get("Authorization"), UA: r.Header.Get("User-Agent"),
			ContentType: r.Header.Get("Content-Type"), Body: string(b),
		})
		mu.Unlock()
		if answer != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return socket, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

func TestClient_Requests(t *testing.T) {
	t.Parallel()
	since := time.Date(2024, 6, 1, 2, 0, 0, 0, time.UTC)

	tests := []struct {
		name   string
		status int
		answer string
		call   func(context.Context, *api.Client) (any, error)
		want   request
		check  func(t *testing.T, got any)
	}{
		{
			name: "Status", status: 200, answer: `{"version":"1.0","leader":true,"jobs":3}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.Status(ctx) },
			want: request{Method: "GET", Path: "/api/v1/status"},
			check: func(t *testing.T, got any) {
				s := got.(*api.Status)
				require.Equal(t, "1.0", s.Version)
				require.True(t, s.Leader)
				require.EqualValues(t, 3, s.Jobs)
			},
		},
		{
			name: "JobListQuery", status: 200, answer: `[{"name":"a","group":"g","next_fire_at":"2024-06-01T02:00:00.000Z"}]`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.JobList(ctx, api.JobListOptions{Group: "g", After: "a0", Limit: 10})
			},
			want: request{Method: "GET", Path: "/api/v1/jobs", Query: "after=a0&group=g&limit=10"},
			check: func(t *testing.T, got any) {
				jobs := got.([]api.Job)
				require.Len(t, jobs, 1)
				require.Equal(t, "a", jobs[0].Name)
				require.True(t, jobs[0].NextFireAt.Equal(since))
			},
		},
		{
			name: "JobListNullIsEmpty", status: 200, answer: `null`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.JobList(ctx, api.JobListOptions{}) },
			want: request{Method: "GET", Path: "/api/v1/jobs"},
			check: func(t *testing.T, got any) {
				require.NotNil(t, got.([]api.Job))
				require.Empty(t, got.([]api.Job))
			},
		},
		{
			name: "JobCreate", status: 201, answer: `{"name":"a","group":"g","cron":"* * * * *"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.JobCreate(ctx, api.JobSpec{Name: "a", Group: "g", Cron: "* * * * *", Command: []string{"true"}})
			},
			want: request{Method: "POST", Path: "/api/v1/jobs", ContentType: "application/json",
				Body: `{"name":"a","group":"g","cron":"* * * * *","command":["true"],"paused":false}`},
		},
		{
			name: "JobPut", status: 200, answer: `{"name":"a"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.JobPut(ctx, "a", api.JobSpec{Name: "a", Group: "g", Manual: true, Handler: "h"})
			},
			want: request{Method: "PUT", Path: "/api/v1/jobs/a", ContentType: "application/json",
				Body: `{"name":"a","group":"g","manual":true,"handler":"h","paused":false}`},
		},
		{
			name: "JobDelete", status: 204,
			call: func(ctx context.Context, c *api.Client) (any, error) { return nil, c.JobDelete(ctx, "a.b") },
			want: request{Method: "DELETE", Path: "/api/v1/jobs/a.b"},
		},
		{
			name: "JobPause", status: 200, answer: `{"name":"a","paused":true}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.JobPause(ctx, "a") },
			want: request{Method: "POST", Path: "/api/v1/jobs/a/pause"},
		},
		{
			name: "JobResume", status: 200, answer: `{"name":"a"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.JobResume(ctx, "a") },
			want: request{Method: "POST", Path: "/api/v1/jobs/a/resume"},
		},
		{
			name: "JobTrigger", status: 200, answer: `{"trigger_id":"t1","runs":[{"id":"r1"}]}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.JobTrigger(ctx, "a", api.TriggerRequest{Params: map[string]string{"k": "v"}})
			},
			want: request{Method: "POST", Path: "/api/v1/jobs/a/trigger", ContentType: "application/json", Body: `{"params":{"k":"v"}}`},
			check: func(t *testing.T, got any) {
				require.Equal(t, "r1", got.(*api.TriggerResponse).Runs[0].ID)
			},
		},
		{
			name: "Apply", status: 200, answer: `{"created":["a"],"dry_run":true}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.Apply(ctx, api.ApplyRequest{Jobs: []api.JobSpec{{Name: "a"}}, Prune: true, DryRun: true})
			},
			want: request{Method: "POST", Path: "/api/v1/apply", ContentType: "application/json",
				Body: `{"jobs":[{"name":"a","group":"","paused":false}],"prune":true,"dry_run":true}`},
		},
		{
			name: "RunList", status: 200, answer: `[]`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.RunList(ctx, api.RunListOptions{Job: "a", State: "failed", Before: "r9", Limit: 50})
			},
			want: request{Method: "GET", Path: "/api/v1/runs", Query: "before=r9&job=a&limit=50&state=failed"},
		},
		{
			name: "RunGetEscapesID", status: 200, answer: `{"id":"x/y"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.RunGet(ctx, "x/y") },
			want: request{Method: "GET", Path: "/api/v1/runs/x%2Fy"},
		},
		{
			name: "RunKill", status: 200, answer: `{"id":"12","state":"killed"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.RunKill(ctx, "12") },
			want: request{Method: "POST", Path: "/api/v1/runs/12/kill"},
			check: func(t *testing.T, got any) {
				require.Equal(t, api.RunKilled, got.(*api.Run).State)
			},
		},
		{
			name: "JobScripts", status: 200,
			answer: `[{"version":2,"created_at":"2024-06-01T02:00:00.000Z","sha256":"ab12","size":30},{"version":1,"sha256":"cd34","size":12}]`,
			call:   func(ctx context.Context, c *api.Client) (any, error) { return c.JobScripts(ctx, "a.b") },
			want:   request{Method: "GET", Path: "/api/v1/jobs/a.b/scripts"},
			check: func(t *testing.T, got any) {
				require.Equal(t, []api.ScriptVersion{
					{Version: 2, CreatedAt: api.NewTime(since), SHA256: "ab12", Size: 30},
					{Version: 1, SHA256: "cd34", Size: 12},
				}, got)
			},
		},
		{
			name: "JobScriptsNullIsEmpty", status: 200, answer: `null`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.JobScripts(ctx, "a") },
			want: request{Method: "GET", Path: "/api/v1/jobs/a/scripts"},
			check: func(t *testing.T, got any) {
				require.NotNil(t, got.([]api.ScriptVersion))
				require.Empty(t, got.([]api.ScriptVersion))
			},
		},
		{
			name: "JobScript", status: 200, answer: "#!/bin/sh\necho {\"not\": json}\n",
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.JobScript(ctx, "a", 3) },
			want: request{Method: "GET", Path: "/api/v1/jobs/a/scripts/3"},
			check: func(t *testing.T, got any) {
				require.Equal(t, "#!/bin/sh\necho {\"not\": json}\n", got, "the source comes back as is")
			},
		},
		{
			name: "MissedList", status: 200, answer: `[{"job":"a","count":3}]`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.MissedList(ctx, api.MissedListOptions{Job: "a", Since: since})
			},
			want: request{Method: "GET", Path: "/api/v1/missed", Query: "job=a&since=2024-06-01T02%3A00%3A00.000Z"},
		},
		{
			name: "Replay", status: 200, answer: `{"count":2,"fired":2}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.Replay(ctx, api.ReplayRequest{Job: "a", Since: api.NewTime(since), Latest: true})
			},
			want: request{Method: "POST", Path: "/api/v1/replay", ContentType: "application/json",
				Body: `{"job":"a","since":"2024-06-01T02:00:00.000Z","until":null,"latest":true}`},
		},
		{
			name: "ExecutorList", status: 200, answer: `[{"id":"e1","state":"online"}]`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.ExecutorList(ctx) },
			want: request{Method: "GET", Path: "/api/v1/executors"},
		},
		{
			name: "ExecutorGet", status: 200, answer: `{"id":"e1"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.ExecutorGet(ctx, "e1") },
			want: request{Method: "GET", Path: "/api/v1/executors/e1"},
		},
		{
			name: "ExecutorDrain", status: 200,
			answer: `{"id":"e1","name":"w1","state":"draining","drain":{"runs_left":3,"deadline":"2024-06-01T02:05:00.000Z","on_timeout":"finish","started_at":"2024-06-01T02:00:00.000Z"}}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.ExecutorDrain(ctx, "e/1", api.DrainRequest{Timeout: api.Duration(5 * time.Minute), OnTimeout: api.DrainFinish})
			},
			want: request{Method: "POST", Path: "/api/v1/executors/e%2F1/drain", ContentType: "application/json",
				Body: `{"timeout":"5m0s","on_timeout":"finish"}`},
			check: func(t *testing.T, got any) {
				e := got.(*api.Executor)
				require.Equal(t, api.ExecutorDraining, e.State)
				require.NotNil(t, e.Drain)
				require.Equal(t, 3, e.Drain.RunsLeft)
				require.Equal(t, api.DrainFinish, e.Drain.OnTimeout)
				require.True(t, e.Drain.Deadline.Equal(since.Add(5*time.Minute)))
			},
		},
		{
			name: "ExecutorDrainDefaults", status: 200, answer: `{"id":"e1","state":"draining","drain":{"runs_left":0}}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.ExecutorDrain(ctx, "e1", api.DrainRequest{})
			},
			want: request{Method: "POST", Path: "/api/v1/executors/e1/drain", ContentType: "application/json", Body: `{}`},
		},
		{
			name: "ExecutorUndrain", status: 200, answer: `{"id":"e1","name":"w1","state":"online"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) { return c.ExecutorUndrain(ctx, "e1") },
			want: request{Method: "POST", Path: "/api/v1/executors/e1/undrain"},
			check: func(t *testing.T, got any) {
				e := got.(*api.Executor)
				require.Equal(t, api.ExecutorOnline, e.State)
				require.Nil(t, e.Drain)
			},
		},
		{
			name: "Register", status: 200, answer: `{"id":"e1","heartbeat_interval":"1s"}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.Register(ctx, api.RegisterRequest{Group: "g", Name: "n", Slots: 4})
			},
			want: request{Method: "POST", Path: "/api/v1/executor/register", ContentType: "application/json",
				Body: `{"group":"g","name":"n","host":"","version":"","slots":4}`},
			check: func(t *testing.T, got any) {
				require.Equal(t, time.Second, got.(*api.RegisterResponse).HeartbeatInterval.D())
			},
		},
		{
			name: "Poll", status: 200, answer: `{"assignments":[{"run_id":"r1","job":"a"}]}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.Poll(ctx, "e1", api.PollRequest{FreeSlots: 2, Wait: api.Duration(25 * time.Second)})
			},
			want: request{Method: "POST", Path: "/api/v1/executor/e1/poll", ContentType: "application/json",
				Body: `{"running":null,"free_slots":2,"wait":"25s"}`},
		},
		{
			name: "Deregister", status: 204,
			call: func(ctx context.Context, c *api.Client) (any, error) { return nil, c.Deregister(ctx, "e1") },
			want: request{Method: "POST", Path: "/api/v1/executor/e1/deregister"},
		},
		{
			name: "Report", status: 200, answer: `{"ok":true}`,
			call: func(ctx context.Context, c *api.Client) (any, error) {
				return c.Report(ctx, "r1", api.Report{ExecutorID: "e1", Attempt: 1, Seq: 1, Type: api.ReportStart})
			},
			want: request{Method: "POST", Path: "/api/v1/runs/r1/report", ContentType: "application/json",
				Body: `{"executor_id":"e1","attempt":1,"seq":1,"type":"start","at":null}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			socket, seen := serveUnix(t, tt.status, tt.answer)
			c := &api.Client{Socket: socket, Token: "s3cret", UserAgent: "test/1"}
			got, err := tt.call(t.Context(), c)
			require.NoError(t, err)

			reqs := seen()
			require.Len(t, reqs, 1)
			want := tt.want
			want.Auth, want.UA = "Bearer s3cret", "test/1"
			require.Equal(t, want, reqs[0])
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestClient_Errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		status      int
		answer      string
		wantMessage string
		wantField   string
		is          func(error) bool
	}{
		{"InvalidWithField", 400, `{"error":"expected 5 to 7 fields","field":"cron"}`, "cron: expected 5 to 7 fields", "cron", api.IsInvalid},
		{"InvalidNamingField", 400, `{"error":"unknown timezone \"Mars/X\" in tz","field":"tz"}`, `unknown timezone "Mars/X" in tz`, "tz", api.IsInvalid},
		{"TooLarge", 413, `{"error":"request body over 1 MiB"}`, "request body over 1 MiB", "", api.IsInvalid},
		{"NotFound", 404, `{"error":"job \"x\" not found"}`, `job "x" not found`, "", api.IsNotFound},
		{"Conflict", 409, `{"error":"job \"x\" exists"}`, `job "x" exists`, "", api.IsConflict},
		{"PlainText", 503, "jobd is shutting down\n", "jobd is shutting down", "", func(err error) bool { return !api.IsInvalid(err) }},
		{"EmptyBody", 500, "", "internal server error", "", func(err error) bool { return !api.IsNotFound(err) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			socket, _ := serveUnix(t, tt.status, tt.answer)
			c := &api.Client{Socket: socket}
			_, err := c.JobGet(t.Context(), "x")
			require.Error(t, err)
			require.True(t, tt.is(err), "%v", err)
			var ae *api.Error
			require.ErrorAs(t, err, &ae)
			require.Equal(t, tt.status, ae.Status)
			require.Equal(t, tt.wantField, ae.Field)
			require.Equal(t, tt.wantMessage, err.Error())
			require.False(t, api.IsUnreachable(err))
		})
	}
}

func TestClient_Unreachable(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	t.Cleanup(func() { _ = os.RemoveAll(dir) })

	// A socket file nobody listens on, and no socket at all.
	stale := filepath.Join(dir, "stale")
	ln, err := net.Listen("unix", stale)
	require.NoError(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	require.NoError(t, ln.Close())

	for _, socket := range []string{filepath.Join(dir, "missing"), stale} {
		c := &api.Client{Socket: socket, Token: "s3cret"}
		_, err := c.Status(t.Context())
		require.Error(t, err)
		require.True(t, api.IsUnreachable(err), "%v", err)
		require.Contains(t, err.Error(), "cannot reach jobd at "+socket+": is jobd running?")
		require.NotContains(t, err.Error(), "s3cret")
	}

	// TCP: a closed loopback port.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := tcp.Addr().String()
	require.NoError(t, tcp.Close())
	c := &api.Client{Addr: "http://" + addr}
	_, err = c.Status(t.Context())
	require.True(t, api.IsUnreachable(err), "%v", err)
	require.Contains(t, err.Error(), "cannot reach jobd at http://"+addr)
}

func TestClient_ContextCancelIsNotUnreachable(t *testing.T) {
	t.Parallel()
	socket, _ := serveUnix(t, 200, `{}`)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := (&api.Client{Socket: socket}).Status(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.False(t, api.IsUnreachable(err))
}

func TestClient_Addr(t *testing.T) {
	t.Parallel()
	var got request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = request{Method: r.Method, Path: r.URL.Path, Auth: r.Header.Get("Authorization")}
		_ = json.NewEncoder(w).Encode(api.Status{Version: "v"})
	}))
	t.Cleanup(srv.Close)

	for _, addr := range []string{srv.URL, srv.URL + "/", srv.Listener.Addr().String()} {
		c := &api.Client{Addr: addr, Token: "tok"}
		s, err := c.Status(t.Context())
		require.NoError(t, err, addr)
		require.Equal(t, "v", s.Version)
		require.Equal(t, request{Method: "GET", Path: "/api/v1/status", Auth: "Bearer tok"}, got)
	}

	_, err := (&api.Client{Addr: "ftp://x"}).Status(t.Context())
	require.ErrorContains(t, err, "want http(s)://host:port")
}

func TestClient_NoTokenNoHeader(t *testing.T) {
	t.Parallel()
	socket, seen := serveUnix(t, 200, `{}`)
	_, err := (&api.Client{Socket: socket}).Status(t.Context())
	require.NoError(t, err)
	require.Empty(t, seen()[0].Auth)
	require.Equal(t, "jobd-api-client", seen()[0].UA)
}

func TestDefaultSocketFor(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	tests := []struct {
		name string
		uid  int
		env  map[string]string
		want string
	}{
		{"Root", 0, map[string]string{"XDG_RUNTIME_DIR": "/run/user/0"}, "/run/jobd/jobd.sock"},
		{"User", 1000, map[string]string{"XDG_RUNTIME_DIR": "/run/user/1000"}, "/run/user/1000/jobd.sock"},
		{"UserWithoutXDG", 1000, nil, "/tmp/jobd-1000/jobd.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, api.DefaultSocketFor(tt.uid, env(tt.env), "/tmp"))
		})
	}
}
