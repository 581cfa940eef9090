package jobctl

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// syncBuffer is an output stream that several goroutines may use, and
// that signals each write so a test can wait for output without sleeping.
type syncBuffer struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSyncBuffer() *syncBuffer { return &syncBuffer{wrote: make(chan struct{}, 1)} }

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	n, err := b.buf.Write(p)
	b.mu.Unlock()
	select {
	case b.wrote <- struct{}{}:
	default:
	}
	return n, err
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor blocks until the output contains s. The bound only turns a hang
// into a failure.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	bound := time.NewTimer(10 * time.Second)
	defer bound.Stop()
	for !strings.Contains(b.String(), s) {
		select {
		case <-b.wrote:
		case <-bound.C:
			t.Fatalf("output never contained %q; it is %q", s, b.String())
		}
	}
}

// fastReconnect makes logs -f reconnect at once and give up after giveUp.
func fastReconnect(giveUp time.Duration) reconnectPolicy {
	return reconnectPolicy{Initial: time.Millisecond, Max: 5 * time.Millisecond, GiveUp: giveUp}
}

// startLogs runs "jobctl logs args..." against socket in the background,
// with the reconnect policy rp, and returns its streams and a func that
// waits for its exit code.
func startLogs(ctx context.Context, socket string, rp reconnectPolicy, args ...string) (stdout, stderr *syncBuffer, wait func() int) {
	stdout, stderr = newSyncBuffer(), newSyncBuffer()
	ios := &IOStreams{In: strings.NewReader(""), Out: stdout, ErrOut: stderr}
	f := &Factory{IO: ios, GetenvFunc: func(string) string { return "" }, NowFunc: time.Now}
	root := newCmdRoot(f)
	for _, c := range root.Commands() {
		if c.Name() == "logs" {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(newCmdLogs(f, func(o *logsOptions) error {
		o.Reconnect = rp
		return runLogs(o)
	}))
	done := make(chan int, 1)
	go func() { done <- execute(ctx, f, root, append([]string{"--socket", socket, "logs"}, args...)) }()
	return stdout, stderr, func() int { return <-done }
}

// logsHandler answers GET .../logs with state and then calls body.
func logsHandler(state string, body func(w http.ResponseWriter, r *http.Request)) answer {
	return answer{handler: func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set(api.RunStateHeader, state)
		body(w, r)
	}}
}

func flushed(w http.ResponseWriter, s string) {
	_, _ = io.WriteString(w, s)
	w.(http.Flusher).Flush()
}

const logsRoute = "GET /api/v1/runs/{id}/logs"

func TestLogs_Stored(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{
		logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "line 1\n\x1b[31mred\x1b[0m\n[jobd: output truncated]\n")
		}),
	})
	res := runCLI(t, fj.socket, cliOptions{}, "logs", "12")
	require.Equal(t, 0, res.code, res.err)
	require.Equal(t, "line 1\n\x1b[31mred\x1b[0m\n[jobd: output truncated]\n", res.out, "piped, the output is copied as is")
	require.Empty(t, res.err, "without -f, no word on how the run ended")
	require.Equal(t, []seen{{Method: "GET", Path: "/api/v1/runs/12/logs", Query: "follow=false&offset=0"}}, fj.requests(),
		"without -f, the run is not fetched")
}

func TestLogs_FollowStreams(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	fj := newFakeJobd(t, map[string]answer{
		logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, r *http.Request) {
			flushed(w, "first\n")
			select {
			case <-release:
			case <-r.Context().Done():
				return
			}
			flushed(w, "second\n")
		}),
		"GET /api/v1/runs/{id}": {status: 200, body: `{"id":"12","state":"failed","exit_code":3}`},
	})
	stdout, stderr, wait := startLogs(t.Context(), fj.socket, defaultReconnect, "12", "-f")

	stdout.waitFor(t, "first\n")
	require.Equal(t, "first\n", stdout.String(), "the first chunk is out while jobd holds the rest")
	close(release)

	require.Equal(t, 0, wait(), stderr.String())
	require.Equal(t, "first\nsecond\n", stdout.String())
	require.Equal(t, "run 12 ended failed (exit 3)\n", stderr.String())
	require.Equal(t, []seen{
		{Method: "GET", Path: "/api/v1/runs/12/logs", Query: "follow=true&offset=0"},
		{Method: "GET", Path: "/api/v1/runs/12"},
	}, fj.requests())
}

func TestLogs_FollowEndedRun(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		state     string // of the header
		run       string // of GET /runs/12; empty: not asked
		wantErr   string
		wantFetch bool
	}{
		{name: "Succeeded", state: api.RunSucceeded},
		{name: "Killed", state: api.RunRunning, run: `{"id":"12","state":"killed","error":"killed by jobctl run kill"}`,
			wantErr: "run 12 ended killed (killed by jobctl run kill)\n"},
		{name: "TimedOut", state: api.RunTimedOut, run: `{"id":"12","state":"timed_out","exit_code":-1}`,
			wantErr: "run 12 ended timed_out (exit -1)\n"},
		{name: "Lost", state: api.RunRunning, run: `{"id":"12","state":"lost"}`, wantErr: "run 12 ended lost\n"},
		{name: "SucceededAfterFollow", state: api.RunRunning, run: `{"id":"12","state":"succeeded","exit_code":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			routes := map[string]answer{
				logsRoute: logsHandler(tt.state, func(w http.ResponseWriter, _ *http.Request) {
					_, _ = io.WriteString(w, "out") // no final newline
				}),
			}
			if tt.run != "" {
				routes["GET /api/v1/runs/{id}"] = answer{status: 200, body: tt.run}
			}
			fj := newFakeJobd(t, routes)
			res := runCLI(t, fj.socket, cliOptions{}, "logs", "-f", "12")
			require.Equal(t, 0, res.code, "a log viewer exits 0 whatever the run did: %s", res.err)
			require.Equal(t, "out", res.out, "piped, nothing is added")
			require.Equal(t, tt.wantErr, res.err)
		})
	}
}

func TestLogs_FollowReconnects(t *testing.T) {
	t.Parallel()

	t.Run("DroppedConnection", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		fj := newFakeJobd(t, map[string]answer{
			logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					flushed(w, "hello ")
					panic(http.ErrAbortHandler) // jobd dies mid-stream
				}
				flushed(w, "world\n")
			}),
			"GET /api/v1/runs/{id}": {status: 200, body: `{"id":"12","state":"succeeded","exit_code":0}`},
		})
		stdout, stderr, wait := startLogs(t.Context(), fj.socket, fastReconnect(10*time.Second), "-f", "12")
		require.Equal(t, 0, wait(), stderr.String())
		require.Equal(t, "hello world\n", stdout.String(), "nothing lost, nothing twice")
		require.Contains(t, stderr.String(), "jobctl: lost the output of run 12")
		require.Contains(t, stderr.String(), "reconnecting to resume at byte 6")

		require.Equal(t, []seen{
			{Method: "GET", Path: "/api/v1/runs/12/logs", Query: "follow=true&offset=0"},
			{Method: "GET", Path: "/api/v1/runs/12/logs", Query: "follow=true&offset=6"},
			{Method: "GET", Path: "/api/v1/runs/12"},
		}, fj.requests())
	})

	t.Run("StreamEndedBeforeTheRun", func(t *testing.T) {
		// jobd stopping gracefully may end the stream cleanly while the run
		// goes on: the run's state tells.
		t.Parallel()
		var logCalls, runCalls atomic.Int32
		fj := newFakeJobd(t, map[string]answer{
			logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, r *http.Request) {
				if logCalls.Add(1) == 1 {
					_, _ = io.WriteString(w, "a\n")
					return
				}
				_, _ = io.WriteString(w, "b\n")
			}),
			"GET /api/v1/runs/{id}": {handler: func(w http.ResponseWriter, r *http.Request) {
				if runCalls.Add(1) == 1 {
					_, _ = io.WriteString(w, `{"id":"12","state":"running"}`)
					return
				}
				_, _ = io.WriteString(w, `{"id":"12","state":"failed","exit_code":2}`)
			}},
		})
		stdout, stderr, wait := startLogs(t.Context(), fj.socket, fastReconnect(10*time.Second), "-f", "12")
		require.Equal(t, 0, wait(), stderr.String())
		require.Equal(t, "a\nb\n", stdout.String())
		require.True(t, strings.HasSuffix(stderr.String(), "run 12 ended failed (exit 2)\n"), stderr.String())
		reqs := fj.requests()
		require.Len(t, reqs, 4)
		require.Equal(t, "follow=true&offset=2", reqs[2].Query)
	})

	t.Run("GivesUpWhenJobdStaysAway", func(t *testing.T) {
		t.Parallel()
		drop := make(chan struct{})
		fj := newFakeJobd(t, map[string]answer{
			logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, r *http.Request) {
				flushed(w, "partial\n")
				select {
				case <-drop:
					panic(http.ErrAbortHandler)
				case <-r.Context().Done():
				}
			}),
		})
		stdout, stderr, wait := startLogs(t.Context(), fj.socket, fastReconnect(100*time.Millisecond), "-f", "12")
		stdout.waitFor(t, "partial\n")
		require.NoError(t, fj.ln.Close()) // jobd is gone for good...
		close(drop)                       // ...and so is the stream

		require.Equal(t, ExitUnreachable, wait())
		require.Equal(t, "partial\n", stdout.String())
		require.Contains(t, stderr.String(), "jobctl: run 12: lost jobd after 8 bytes of output and could not reconnect for 100ms: cannot reach jobd at "+fj.socket)
		require.Contains(t, stderr.String(), "hint: start it with 'jobd serve'")
		require.Len(t, fj.requests(), 1, "no reconnect got through")
	})

	t.Run("RunGoneAfterReconnect", func(t *testing.T) {
		t.Parallel()
		var calls atomic.Int32
		fj := newFakeJobd(t, map[string]answer{
			logsRoute: {handler: func(w http.ResponseWriter, r *http.Request) {
				if calls.Add(1) == 1 {
					flushed(w, "x")
					panic(http.ErrAbortHandler)
				}
				w.WriteHeader(http.StatusNotFound)
				_, _ = io.WriteString(w, `{"error":"run 12 not found"}`)
			}},
		})
		_, stderr, wait := startLogs(t.Context(), fj.socket, fastReconnect(10*time.Second), "-f", "12")
		require.Equal(t, ExitNotFound, wait(), "a 404 is not worth retrying")
		require.True(t, strings.HasSuffix(stderr.String(), "jobctl: run 12 not found\n"), stderr.String())
	})
}

func TestLogs_InterruptEndsCleanly(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{
		logsRoute: logsHandler(api.RunRunning, func(w http.ResponseWriter, r *http.Request) {
			flushed(w, "tick\n")
			<-r.Context().Done()
		}),
	})
	ctx, cancel := context.WithCancel(t.Context())
	stdout, stderr, wait := startLogs(ctx, fj.socket, defaultReconnect, "-f", "12")
	stdout.waitFor(t, "tick\n")
	cancel() // Ctrl-C

	require.Equal(t, 0, wait())
	require.Equal(t, "tick\n", stdout.String())
	require.Empty(t, stderr.String())
	require.Len(t, fj.requests(), 1, "no reconnect, no fetch of the run")
}

func TestLogs_ExitCodes(t *testing.T) {
	t.Parallel()
	fj := newFakeJobd(t, map[string]answer{logsRoute: {status: 404, body: `{"error":"run 99 not found"}`}})
	for _, args := range [][]string{{"logs", "99"}, {"logs", "-f", "99"}} {
		res := runCLI(t, fj.socket, cliOptions{}, args...)
		require.Equal(t, ExitNotFound, res.code)
		require.Equal(t, "jobctl: run 99 not found\n", res.err)
		require.Empty(t, res.out)
	}

	// Unreachable from the start: no reconnecting (this would take 30s).
	res := runCLI(t, filepath.Join(t.TempDir(), "none.sock"), cliOptions{}, "logs", "-f", "12")
	require.Equal(t, ExitUnreachable, res.code)
	require.Contains(t, res.err, "is jobd running?")

	res = runCLI(t, fj.socket, cliOptions{}, "logs")
	require.Equal(t, ExitUsage, res.code)
	require.Contains(t, res.err, "takes one RUN_ID")
}

func TestTermWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	tw := &termWriter{w: &out}
	s := &streamOut{w: tw}
	// A colour sequence, a bell, and "é" split across two reads.
	for _, chunk := range []string{"a\x1b[31mb\a ", "caf\xc3", "\xa9\n", "end\xe2\x82"} {
		n, readErr, writeErr := s.copy(strings.NewReader(chunk))
		require.NoError(t, readErr)
		require.NoError(t, writeErr)
		require.EqualValues(t, len(chunk), n)
	}
	require.Equal(t, "a?[31mb? café\nend", out.String(), "the split rune is held back until whole")
	require.NoError(t, s.finish(&IOStreams{Out: &out, IsTTY: true}))
	require.Equal(t, "a?[31mb? café\nend\uFFFD\uFFFD\n", out.String(), "an unfinished rune is flushed (a U+FFFD per byte), the line ended")
}

func TestReconnectWait(t *testing.T) {
	t.Parallel()
	p := reconnectPolicy{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		got := p.wait(n)
		require.GreaterOrEqual(t, got, want/2, "attempt %d", n)
		require.LessOrEqual(t, got, want, "attempt %d", n)
	}
}
