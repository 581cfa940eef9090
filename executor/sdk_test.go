package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func handlerJob(runID, handler string) api.Assignment {
	asg := commandJob(runID)
	asg.Kind, asg.Handler, asg.Command = api.KindHandler, handler, nil
	return asg
}

func TestAgent_Handler(t *testing.T) {
	t.Parallel()
	var got *Run
	b := setup(t, func(_ *Config, _ *fakeJobd) {})
	b.agent.Handle("greet", func(ctx context.Context, r *Run) error {
		got = r
		fmt.Fprintf(r.Log, "hello %s\n", r.Params["who"])
		return nil
	})
	b.agent.Handle("fail", func(context.Context, *Run) error { return errors.New("no invoices today") })
	b.agent.Handle("panic", func(context.Context, *Run) error { panic("boom") })
	b.agent.Handle("stuck", func(ctx context.Context, _ *Run) error {
		<-ctx.Done()
		return context.Cause(ctx)
	})

	asg := handlerJob("ok", "greet")
	asg.Params = map[string]string{"who": "world"}
	asg.ShardIndex, asg.ShardTotal = 2, 3
	b.jobd.assign(asg)
	require.Equal(t, api.RunSucceeded, b.jobd.result("ok").State)
	require.Equal(t, "hello world\n", b.jobd.log("ok"))
	require.Equal(t, "ok", got.ID)
	require.Equal(t, "job-ok", got.Job)
	require.Equal(t, 1, got.Attempt)
	require.Equal(t, "trig-ok", got.TriggerID)
	require.Equal(t, 2, got.ShardIndex)
	require.Equal(t, 3, got.ShardTotal)
	require.Equal(t, asg.ScheduledAt.Time, got.ScheduledAt)
	_, err := got.Log.Write([]byte("late"))
	require.ErrorIs(t, err, errLogClosed)

	b.jobd.assign(handlerJob("err", "fail"))
	res := b.jobd.result("err")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, "no invoices today", res.Error)

	b.jobd.assign(handlerJob("panic", "panic"))
	res = b.jobd.result("panic")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, "handler panic panicked: boom", res.Error)
	require.Contains(t, b.jobd.log("panic"), "panic: boom")

	b.jobd.assign(handlerJob("unknown", "nope"))
	res = b.jobd.result("unknown")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, `no handler "nope" is registered on this executor`, res.Error)

	stuck := handlerJob("timeout", "stuck")
	stuck.Timeout = api.Duration(100 * time.Millisecond)
	b.jobd.assign(stuck)
	res = b.jobd.result("timeout")
	require.Equal(t, api.RunTimedOut, res.State)

	b.jobd.assign(handlerJob("kill", "stuck"))
	b.jobd.waitStarted("kill")
	b.jobd.command(api.Command{Type: api.CommandKill, RunID: "kill"})
	require.Equal(t, api.RunKilled, b.jobd.result("kill").State)
}

func TestAgent_HandleAnnouncedAtRegistration(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	a, err := New(Config{Servers: []string{f.srv.URL}, Group: "g", Token: "test-token", Logger: testLogger(t)})
	require.NoError(t, err)
	noop := func(context.Context, *Run) error { return nil }
	a.Handle("b", noop)
	a.Handle("a", noop)
	require.Panics(t, func() { a.Handle("a", noop) })
	require.Panics(t, func() { a.Handle("", noop) })
	require.Panics(t, func() { a.Handle("c", nil) })

	startAgent(t, f, a)
	f.waitFor("registration", func() bool { return len(f.registers) > 0 })
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, []string{"a", "b"}, f.registers[0].Handlers)
}

func TestAgent_Slots(t *testing.T) {
	t.Parallel()
	for _, ignoreFreeSlots := range []bool{false, true} {
		name := "ServerRespectsFreeSlots"
		if ignoreFreeSlots {
			name = "ServerOverfills"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var active, peak atomic.Int32
			started := make(chan string, 10)
			release := make(chan struct{})
			b := setup(t, func(c *Config, f *fakeJobd) {
				c.Slots = 2
				f.ignoreFreeSlots = ignoreFreeSlots
			})
			b.agent.Handle("block", func(ctx context.Context, r *Run) error {
				n := active.Add(1)
				defer active.Add(-1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				started <- r.ID
				<-release
				return nil
			})
			const runs = 5
			for i := range runs {
				b.jobd.assign(handlerJob(fmt.Sprintf("r%d", i), "block"))
			}
			<-started
			<-started
			b.jobd.waitFor("a full executor to say so", func() bool {
				for _, p := range b.jobd.polls {
					if p.FreeSlots == 0 && len(p.Running) >= 2 {
						return true
					}
				}
				return false
			})
			for range runs - 2 {
				release <- struct{}{}
				<-started
			}
			close(release)
			for i := range runs {
				require.Equal(t, api.RunSucceeded, b.jobd.result(fmt.Sprintf("r%d", i)).State)
			}
			require.Equal(t, int32(2), peak.Load())
			b.jobd.mu.Lock()
			defer b.jobd.mu.Unlock()
			for _, p := range b.jobd.polls {
				require.GreaterOrEqual(t, p.FreeSlots, 0)
				require.LessOrEqual(t, p.FreeSlots, 2)
			}
		})
	}
}

func TestAgent_ScriptJob(t *testing.T) {
	t.Parallel()
	scripts := map[string]string{
		"sh":      `echo "sh $JOBD_PARAM_WHO"`,
		"bash":    `echo "bash ${JOBD_PARAM_WHO}"`,
		"python3": `import os; print("python3", os.environ["JOBD_PARAM_WHO"])`,
		"node":    `console.log("node " + process.env.JOBD_PARAM_WHO)`,
	}
	b := setup(t, nil)
	for interp, src := range scripts {
		if _, err := exec.LookPath(interp); err != nil {
			t.Logf("%s not installed; not tested", interp)
			continue
		}
		asg := commandJob("r-" + interp)
		asg.Kind, asg.Command, asg.Script, asg.Interpreter = api.KindScript, nil, src, interp
		asg.Params = map[string]string{"who": "$(id)"}
		b.jobd.assign(asg)
		require.Equal(t, api.RunSucceeded, b.jobd.result(asg.RunID).State)
		require.Equal(t, interp+" $(id)\n", b.jobd.log(asg.RunID))
	}

	asg := commandJob("default")
	asg.Kind, asg.Command, asg.Script = api.KindScript, nil, "exit 7"
	b.jobd.assign(asg)
	res := b.jobd.result("default")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, 7, *res.ExitCode)

	asg = commandJob("perl")
	asg.Kind, asg.Command, asg.Script, asg.Interpreter = api.KindScript, nil, "print 1", "perl"
	b.jobd.assign(asg)
	require.Contains(t, b.jobd.result("perl").Error, `interpreter "perl" is not supported`)

	left, err := os.ReadDir(filepath.Join(b.agent.cfg.StateDir, "scripts"))
	require.NoError(t, err)
	require.Empty(t, left, "script files are removed after their run")
}

func TestAgent_HTTPJob(t *testing.T) {
	t.Parallel()
	var gotAuth, gotHeader, gotBody, gotMethod atomic.Value
	hang := make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			body, _ := io.ReadAll(r.Body)
			gotAuth.Store(r.Header.Get("Authorization"))
			gotHeader.Store(r.Header.Get("X-Job"))
			gotBody.Store(string(body))
			gotMethod.Store(r.Method)
			_, _ = io.WriteString(w, "all good")
		case "/hang":
			_, _ = io.Copy(io.Discard, r.Body) // so the server notices the client leaving
			select {
			case <-r.Context().Done():
			case <-hang:
			}
		default:
			http.Error(w, "nope", http.StatusInternalServerError)
		}
	}))
	t.Cleanup(target.Close)
	t.Cleanup(func() { close(hang) })
	b := setup(t, nil)
	httpJob := func(runID, path string) api.Assignment {
		asg := commandJob(runID)
		asg.Kind, asg.Command = api.KindHTTP, nil
		asg.HTTP = &api.HTTPRequest{
			Method: http.MethodPost, URL: target.URL + path,
			Headers: map[string]string{"X-Job": "yes"}, Body: `{"n":1}`,
		}
		return asg
	}

	b.jobd.assign(httpJob("ok", "/ok"))
	require.Equal(t, api.RunSucceeded, b.jobd.result("ok").State)
	require.Equal(t, "HTTP/1.1 200 OK\nall good", b.jobd.log("ok"))
	require.Equal(t, "", gotAuth.Load(), "the jobd token never reaches a job's URL")
	require.Equal(t, "yes", gotHeader.Load())
	require.Equal(t, `{"n":1}`, gotBody.Load())
	require.Equal(t, http.MethodPost, gotMethod.Load())

	b.jobd.assign(httpJob("bad", "/bad"))
	res := b.jobd.result("bad")
	require.Equal(t, api.RunFailed, res.State)
	require.Equal(t, "http status 500 Internal Server Error", res.Error)
	require.Contains(t, b.jobd.log("bad"), "HTTP/1.1 500 Internal Server Error\nnope")

	asg := httpJob("hang", "/hang")
	asg.Timeout = api.Duration(100 * time.Millisecond)
	b.jobd.assign(asg)
	require.Equal(t, api.RunTimedOut, b.jobd.result("hang").State)
}

func TestAgent_HandlerNotSharded(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	got := make(chan [2]int, 1)
	b.agent.Handle("shard", func(_ context.Context, r *Run) error {
		got <- [2]int{r.ShardIndex, r.ShardTotal}
		return nil
	})
	b.jobd.assign(handlerJob("r1", "shard")) // no shard fields
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	require.Equal(t, [2]int{0, 1}, <-got, "a run that is not part of a broadcast is shard 0 of 1")
}
