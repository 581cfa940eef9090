package jobctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// execJSON is executor e1 (w1) in state with left runs left; deadline, when
// not empty, is the drain's deadline.
func execJSON(state string, left int, deadline string) string {
	drain := ""
	if state == "draining" || state == "suspect" {
		dl := "null"
		if deadline != "" {
			dl = `"` + deadline + `"`
		}
		drain = fmt.Sprintf(`,"drain":{"runs_left":%d,"deadline":%s,"on_timeout":"requeue","started_at":"2024-06-01T02:00:00.000Z"}`, left, dl)
	}
	return fmt.Sprintf(`{"id":"e1","name":"w1","group":"g","state":%q,"running":%d,"slots":4%s}`, state, left, drain)
}

// sequence answers each request with the next of bodies, then the last one
// for ever; after is called with the number of the request (1-based)
// after it was answered.
func sequence(bodies []string, after func(n int)) answer {
	var mu sync.Mutex
	n := 0
	return answer{handler: func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		n++
		i := n
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, bodies[min(i, len(bodies))-1])
		if after != nil {
			after(i)
		}
	}}
}

// fastDrain polls at once and gives up quickly.
func fastDrain(o *executorDrainOptions) {
	o.Interval, o.GiveUp = 2*time.Millisecond, 200*time.Millisecond
}

// startDrain runs "jobctl args..." against socket in the background with
// drain's options changed by tweak, and returns a func that waits for its
// exit code.
func startDrain(ctx context.Context, socket string, ios *IOStreams, tweak func(*executorDrainOptions), args ...string) func() int {
	f := &Factory{IO: ios, GetenvFunc: func(string) string { return "" }, NowFunc: time.Now}
	root := newCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() != "executor" {
			continue
		}
		for _, sub := range c.Commands() {
			if sub.Name() == "drain" {
				c.RemoveCommand(sub)
			}
		}
		c.AddCommand(newCmdExecutorDrain(f, func(o *executorDrainOptions) error {
			tweak(o)
			return runExecutorDrain(o)
		}))
	}
	done := make(chan int, 1)
	go func() { done <- execute(ctx, f, root, append([]string{"--socket", socket}, args...)) }()
	return func() int { return <-done }
}

// runDrain is startDrain waited for, with plain (non-terminal) streams.
func runDrain(t *testing.T, socket string, tweak func(*executorDrainOptions), args ...string) result {
	t.Helper()
	stdout, stderr := newSyncBuffer(), newSyncBuffer()
	ios := &IOStreams{In: strings.NewReader(""), Out: stdout, ErrOut: stderr}
	code := startDrain(t.Context(), socket, ios, tweak, args...)()
	return result{out: stdout.String(), err: stderr.String(), code: code}
}

func TestExecutorDrain_Request(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		answer   string
		wantBody string
		wantOut  string
	}{
		{"Defaults", nil, execJSON("draining", 3, ""), `{}`, "draining executor w1 (e1): 3 runs left\n"},
		{"Timeout", []string{"--timeout", "90s"}, execJSON("draining", 1, "2024-06-01T02:01:30Z"), `{"timeout":"1m30s"}`,
			"draining executor w1 (e1): 1 run left\n"},
		{"OnTimeoutFinish", []string{"--timeout", "10m", "--on-timeout", "finish"}, execJSON("draining", 0, ""),
			`{"timeout":"10m0s","on_timeout":"finish"}`, "draining executor w1 (e1): 0 runs left\n"},
		{"DrainedAtOnce", nil, execJSON("drained", 0, ""), `{}`, "executor w1 (e1) is drained\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fj := newFakeJobd(t, map[string]answer{"POST /api/v1/executors/{id}/drain": {status: 200, body: tt.answer}})
			res := runCLI(t, fj.socket, cliOptions{}, append([]string{"executor", "drain", "e1"}, tt.args...)...)
			require.Equal(t, 0, res.code, res.err)
			require.Equal(t, tt.wantOut, res.out)
			require.Empty(t, res.err)
			require.Equal(t, []seen{{Method: "POST", Path: "/api/v1/executors/e1/drain", Body: tt.wantBody}}, fj.requests())
		})
	}

	t.Run("JSON", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{"POST /api/v1/executors/{id}/drain": {status: 200,
			body: execJSON("draining", 3, "2024-06-01T02:10:00Z")}})
		res := runCLI(t, fj.socket, cliOptions{}, "executor", "drain", "e1", "--timeout", "10m", "-o", "json")
		require.Equal(t, 0, res.code, res.err)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.out), &m), res.out)
		require.Equal(t, "draining", m["state"])
		require.Equal(t, map[string]any{"runs_left": 3.0, "deadline": "2024-06-01T02:10:00.000Z", "on_timeout": "requeue",
			"started_at": "2024-06-01T02:00:00.000Z"}, m["drain"])
	})

	t.Run("UsageErrors", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			args    []string
			wantErr string
		}{
			{[]string{"e1", "--on-timeout", "finish"}, "--on-timeout goes with --timeout"},
			{[]string{"e1", "--timeout", "1m", "--on-timeout", "later"}, "want one of requeue, finish"},
			{[]string{"e1", "--timeout", "-1s"}, "--timeout must not be negative"},
			{[]string{"e1", "--timeout", "soon"}, `invalid argument "soon" for "--timeout"`},
			{nil, "takes one executor ID (got 0 arguments)"},
		} {
			fj := newFakeJobd(t, nil)
			res := runCLI(t, fj.socket, cliOptions{}, append([]string{"executor", "drain"}, tc.args...)...)
			require.Equal(t, ExitUsage, res.code, res.err)
			require.Contains(t, res.err, tc.wantErr)
			require.Empty(t, fj.requests())
		}
	})

	t.Run("ExitCodes", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			status   int
			body     string
			wantCode int
			wantErr  string
		}{
			{404, `{"error":"not found"}`, ExitNotFound, "jobctl: executor \"e1\": not found\n"},
			{409, `{"error":"executor e1 is offline"}`, ExitError, "jobctl: executor e1 is offline\n"},
			{409, `{"error":"already drained"}`, ExitError, "jobctl: executor \"e1\": already drained\n"},
		} {
			for _, wait := range []bool{false, true} {
				fj := newFakeJobd(t, map[string]answer{"POST /api/v1/executors/{id}/drain": {status: tc.status, body: tc.body}})
				args := []string{"executor", "drain", "e1"}
				if wait {
					args = append(args, "--wait")
				}
				res := runDrain(t, fj.socket, fastDrain, args...)
				require.Equal(t, tc.wantCode, res.code, res.err)
				require.Equal(t, tc.wantErr, res.err)
				require.Empty(t, res.out)
				require.Len(t, fj.requests(), 1, "no polling after a refused drain")
			}
		}
	})
}

func TestExecutorDrain_Wait(t *testing.T) {
	t.Parallel()

	t.Run("Drained", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 3, "")},
			"GET /api/v1/executors/{id}": sequence([]string{
				execJSON("draining", 3, ""), execJSON("draining", 2, ""), execJSON("draining", 2, ""),
				execJSON("suspect", 2, ""), execJSON("draining", 0, ""), execJSON("drained", 0, ""),
			}, nil),
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait")
		require.Equal(t, 0, res.code, res.err)
		require.Empty(t, res.err)
		require.Regexp(t, `^draining executor w1 \(e1\): 3 runs left
draining w1: 2 runs left
draining w1: 2 runs left \(suspect: its connection dropped\)
draining w1: 0 runs left
executor w1 \(e1\) is drained \(waited [0-9.]+m?s\)
$`, res.out)
		reqs := fj.requests()
		require.Len(t, reqs, 7)
		require.Equal(t, seen{Method: "POST", Path: "/api/v1/executors/e1/drain", Body: `{}`}, reqs[0])
		for _, r := range reqs[1:] {
			require.Equal(t, seen{Method: "GET", Path: "/api/v1/executors/e1"}, r)
		}
	})

	t.Run("JSONPrintsTheDrainedExecutor", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 1, "")},
			"GET /api/v1/executors/{id}":        sequence([]string{execJSON("draining", 0, ""), execJSON("drained", 0, "")}, nil),
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait", "-o", "json")
		require.Equal(t, 0, res.code, res.err)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(res.out), &m), res.out)
		require.Equal(t, "drained", m["state"])
		require.Equal(t, "draining executor w1 (e1): 1 run left\ndraining w1: 0 runs left\n", res.err, "progress on stderr")
	})

	t.Run("Offline", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}":        sequence([]string{execJSON("draining", 2, ""), `{"id":"e1","name":"w1","state":"offline","running":2}`}, nil),
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait")
		require.Equal(t, ExitError, res.code, res.err)
		require.Equal(t, "draining executor w1 (e1): 2 runs left\n", res.out)
		require.Equal(t, "jobctl: executor w1 (e1) went offline with 2 runs left before it drained\n", res.err)
	})

	t.Run("Undrained", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}":        sequence([]string{execJSON("online", 2, "")}, nil),
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait")
		require.Equal(t, ExitError, res.code, res.err)
		require.Equal(t, "jobctl: executor w1 (e1) is online again: its drain was undone\n", res.err)
	})

	t.Run("TimedOut", func(t *testing.T) {
		t.Parallel()
		// Past the deadline but within the grace, then past the grace.
		recent := time.Now().Add(-5200 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}":        sequence([]string{execJSON("draining", 1, recent), execJSON("draining", 1, past)}, nil),
		})
		res := runDrain(t, fj.socket, func(o *executorDrainOptions) { fastDrain(o); o.TimeoutGrace = 10 * time.Second },
			"executor", "drain", "e1", "--wait", "--timeout", "1m")
		require.Equal(t, ExitError, res.code, res.err)
		require.Regexp(t, `^jobctl: the drain of executor w1 \(e1\) timed out at [0-9-]+ [0-9:]+ with 1 run left; `+
			`it is still draining and its runs left were not handed back\n$`, res.err)
		require.Equal(t, "draining executor w1 (e1): 2 runs left\ndraining w1: 1 run left, timeout passed 5s ago\n", res.out)
	})

	t.Run("GoneMidWait", func(t *testing.T) {
		t.Parallel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}":        {status: 404, body: `{"error":"not found"}`},
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait")
		require.Equal(t, ExitNotFound, res.code, res.err)
		require.Equal(t, "jobctl: executor \"e1\": not found\n", res.err)
	})

	t.Run("UnreachableMidWait", func(t *testing.T) {
		t.Parallel()
		var fj *fakeJobd
		var once sync.Once
		fj = newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}": {handler: func(w http.ResponseWriter, _ *http.Request) {
				// Answer once, then jobd goes away: no new connection, and
				// none kept alive.
				w.Header().Set("Connection", "close")
				_, _ = io.WriteString(w, execJSON("draining", 1, ""))
				once.Do(func() { _ = fj.ln.Close() })
			}},
		})
		res := runDrain(t, fj.socket, fastDrain, "executor", "drain", "e1", "--wait")
		require.Equal(t, ExitUnreachable, res.code, res.err)
		require.Equal(t, "draining executor w1 (e1): 2 runs left\ndraining w1: 1 run left\n", res.out)
		require.Contains(t, res.err, "jobctl: lost jobd for 200ms while waiting for executor w1 to drain: cannot reach jobd at "+fj.socket)
		require.Contains(t, res.err, "hint: start it with 'jobd serve'")
	})

	t.Run("RidesOutABriefOutage", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		n := 0
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 1, "")},
			"GET /api/v1/executors/{id}": {handler: func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				if i <= 3 {
					http.Error(w, `{"error":"store busy"}`, http.StatusServiceUnavailable)
					return
				}
				_, _ = io.WriteString(w, execJSON("drained", 0, ""))
			}},
		})
		res := runDrain(t, fj.socket, func(o *executorDrainOptions) { fastDrain(o); o.GiveUp = 10 * time.Second },
			"executor", "drain", "e1", "--wait")
		require.Equal(t, 0, res.code, res.err)
		require.Contains(t, res.out, "executor w1 (e1) is drained")
	})

	t.Run("CtrlCStopsWaiting", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 2, "")},
			"GET /api/v1/executors/{id}": sequence([]string{execJSON("draining", 2, "")}, func(n int) {
				if n == 3 {
					cancel()
				}
			}),
		})
		stdout, stderr := newSyncBuffer(), newSyncBuffer()
		code := startDrain(ctx, fj.socket, &IOStreams{In: strings.NewReader(""), Out: stdout, ErrOut: stderr}, fastDrain,
			"executor", "drain", "e1", "--wait")()
		require.Equal(t, ExitError, code, stderr.String())
		require.Equal(t, "jobctl: stopped waiting; the drain goes on (executor w1: 2 runs left)\n", stderr.String())
		require.Equal(t, "draining executor w1 (e1): 2 runs left\n", stdout.String())
		for _, r := range fj.requests() {
			require.NotContains(t, r.Path, "undrain", "the drain goes on")
		}
	})

	t.Run("TerminalLineUpdatesInPlace", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		n := 0
		fj := newFakeJobd(t, map[string]answer{
			"POST /api/v1/executors/{id}/drain": {status: 200, body: execJSON("draining", 3, "")},
			"GET /api/v1/executors/{id}": {handler: func(w http.ResponseWriter, _ *http.Request) {
				mu.Lock()
				n++
				i := n
				mu.Unlock()
				deadline := time.Now().Add(42*time.Second + 400*time.Millisecond).UTC().Format(time.RFC3339Nano)
				body := execJSON("draining", 3, deadline)
				switch {
				case i >= 4:
					body = execJSON("drained", 0, "")
				case i >= 2:
					body = execJSON("draining", 2, deadline)
				}
				_, _ = io.WriteString(w, body)
			}},
		})
		stdout, stderr := newSyncBuffer(), newSyncBuffer()
		ios := &IOStreams{In: strings.NewReader(""), Out: stdout, ErrOut: stderr, IsTTY: true}
		code := startDrain(t.Context(), fj.socket, ios, fastDrain, "executor", "drain", "e1", "--wait", "--timeout", "1m")()
		require.Equal(t, 0, code, stderr.String())
		out := stdout.String()
		require.True(t, strings.HasPrefix(out, "draining executor w1 (e1): 3 runs left\n\r\x1b[Kdraining w1: 3 runs left, "), "%q", out)
		require.Contains(t, out, "\r\x1b[Kdraining w1: 3 runs left, 42s left\r\x1b[Kdraining w1: 2 runs left, 42s left"+
			"\r\x1b[Kdraining w1: 2 runs left, 42s left\r\x1b[K")
		require.Regexp(t, `\r\x1b\[Kexecutor w1 \(e1\) is drained \(waited [0-9.]+m?s\)\n$`, out)
		require.Equal(t, 1, strings.Count(out, "\n")-1, "one line kept besides the first: %q", out)
	})
}

func TestExecutorUndrain(t *testing.T) {
	t.Parallel()
	route := "POST /api/v1/executors/{id}/undrain"

	fj := newFakeJobd(t, map[string]answer{route: {status: 200, body: execJSON("online", 1, "")}})
	res := runCLI(t, fj.socket, cliOptions{}, "executor", "undrain", "e1")
	require.Equal(t, 0, res.code, res.err)
	require.Equal(t, "executor w1 is online again\n", res.out)
	require.Empty(t, res.err)
	require.Equal(t, []seen{{Method: "POST", Path: "/api/v1/executors/e1/undrain"}}, fj.requests(), "no body")

	res = runCLI(t, fj.socket, cliOptions{}, "executor", "undrain", "e1", "-o", "json")
	require.Equal(t, 0, res.code, res.err)
	var m map[string]any
	require.NoError(t, json.Unmarshal([]byte(res.out), &m), res.out)
	require.Equal(t, "online", m["state"])
	require.Equal(t, "e1", m["id"])

	for _, tc := range []struct {
		status   int
		body     string
		wantCode int
		wantErr  string
	}{
		{409, `{"error":"not draining"}`, ExitError, "jobctl: executor \"e1\": not draining\n"},
		{404, `{"error":"executor e1 not found"}`, ExitNotFound, "jobctl: executor e1 not found\n"},
	} {
		fj := newFakeJobd(t, map[string]answer{route: {status: tc.status, body: tc.body}})
		res := runCLI(t, fj.socket, cliOptions{}, "executor", "undrain", "e1")
		require.Equal(t, tc.wantCode, res.code, res.err)
		require.Equal(t, tc.wantErr, res.err)
		require.Empty(t, res.out)
	}
}

func TestExecutorListGet_DrainProgress(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{
		"GET /api/v1/executors": {status: 200, body: "[" + execJSON("draining", 3, "2024-06-01T02:10:00Z") + "," +
			strings.Replace(execJSON("online", 0, ""), `"e1"`, `"e2"`, 1) + "]"},
		"GET /api/v1/executors/{id}": {status: 200, body: execJSON("draining", 3, "2024-06-01T02:10:00Z")},
	})
	res := runCLI(t, fj.socket, cliOptions{}, "executor", "list")
	require.Equal(t, 0, res.code, res.err)
	require.Regexp(t, `(?m)^e1\s+w1\s+g\s+draining \(3 left\)\s+-\s+3/4\s+-$`, res.out)
	require.Regexp(t, `(?m)^e2\s+w1\s+g\s+online\s+-\s+0/4\s+-$`, res.out)

	res = runCLI(t, fj.socket, cliOptions{}, "executor", "get", "e1")
	require.Equal(t, 0, res.code, res.err)
	local := func(s string) string { return tm(s).Local().Format("2006-01-02 15:04:05") }
	require.Contains(t, res.out, "Runs left:   3 (drain started "+local("2024-06-01T02:00:00Z")+")\n")
	require.Regexp(t, `(?m)^Deadline:    `+regexp.QuoteMeta(local("2024-06-01T02:10:00Z"))+` \(.* ago\), then runs left are requeued$`, res.out)

	fj = newFakeJobd(t, map[string]answer{"GET /api/v1/executors/{id}": {status: 200, body: execJSON("draining", 1, "")}})
	res = runCLI(t, fj.socket, cliOptions{}, "executor", "get", "e1")
	require.Equal(t, 0, res.code, res.err)
	require.Contains(t, res.out, "Deadline:    none (waits for every run to finish)\n")

	fj = newFakeJobd(t, map[string]answer{"GET /api/v1/executors/{id}": {status: 200, body: execJSON("online", 1, "")}})
	res = runCLI(t, fj.socket, cliOptions{}, "executor", "get", "e1")
	require.Equal(t, 0, res.code, res.err)
	require.NotContains(t, res.out, "Runs left")
	require.NotContains(t, res.out, "Deadline")
}

func TestCompletion_Drain(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{"GET /api/v1/executors": {status: 200, body: "[" +
		execJSON("draining", 3, "") + "," +
		strings.Replace(execJSON("online", 0, ""), `"e1"`, `"e2"`, 1) + "," +
		strings.Replace(execJSON("offline", 0, ""), `"e1"`, `"e3"`, 1) + "," +
		strings.Replace(execJSON("drained", 0, ""), `"e1"`, `"e4"`, 1) + "]"}})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"executor", "drain", "e1", "--on-timeout", ""}, "requeue\nfinish\n:4\n"},
		{[]string{"executor", "drain", ""}, "e1\tw1 (g, draining (3 left))\ne2\tw1 (g, online)\n:4\n"},
		{[]string{"executor", "undrain", ""}, "e1\tw1 (g, draining (3 left))\n:4\n"},
		{[]string{"executor", "undrain", "e2"}, ":4\n"},
		{[]string{"executor", "get", ""}, "e1\tw1 (g, draining (3 left))\ne2\tw1 (g, online)\ne3\tw1 (g, offline)\ne4\tw1 (g, drained)\n:4\n"},
		{[]string{"executor", "drain", "e1", ""}, ":4\n"},
	} {
		res := runCLI(t, fj.socket, cliOptions{}, append([]string{"__complete"}, tc.args...)...)
		require.Equal(t, 0, res.code, res.err)
		require.Equal(t, tc.want, regexp.MustCompile(`(?m)^Completion ended.*\n`).ReplaceAllString(res.out, ""), tc.args)
	}
}
