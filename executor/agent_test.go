package executor

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestAgent_CommandJob(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.jobd.assign(commandJob("r1", "sh", "-c", "echo to-stdout; echo to-stderr >&2"))

	res := b.jobd.result("r1")
	require.Equal(t, api.RunSucceeded, res.State)
	require.NotNil(t, res.ExitCode)
	require.Equal(t, 0, *res.ExitCode)
	require.Empty(t, res.Error)

	reps := b.jobd.runReports("r1")
	require.GreaterOrEqual(t, len(reps), 3, "start, log, result")
	require.Equal(t, api.ReportStart, reps[0].Type)
	for i, rep := range reps {
		require.Equal(t, int64(i+1), rep.Seq)
		require.Equal(t, 1, rep.Attempt)
		require.False(t, rep.At.IsZero())
		if i > 0 && i < len(reps)-1 {
			require.Equal(t, api.ReportLog, rep.Type)
		}
	}
	out := b.jobd.log("r1")
	require.Contains(t, out, "to-stdout\n")
	require.Contains(t, out, "to-stderr\n")

	b.jobd.mu.Lock()
	reg := b.jobd.registers[0]
	b.jobd.mu.Unlock()
	require.Equal(t, "test", reg.Group)
	require.Equal(t, "agent-1", reg.Name)
	require.Equal(t, 4, reg.Slots)
	require.Equal(t, "dev", reg.Version)
	require.NotEmpty(t, reg.Host)
}

func TestAgent_EnvAndParams(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	dir := t.TempDir()
	canary := filepath.Join(dir, "canary")
	require.NoError(t, os.WriteFile(canary, nil, 0o600))
	pwned := filepath.Join(dir, "pwned")
	evil := fmt.Sprintf("$(touch %s); rm -rf %s; `touch %s`", pwned, canary, pwned)

	asg := commandJob("r1", "env")
	asg.Attempt = 3
	asg.ShardIndex, asg.ShardTotal = 1, 4
	asg.Params = map[string]string{"evil": evil, "my-param.x": "plain value"}
	b.jobd.assign(asg)
	// argv is never run through a shell either.
	b.jobd.assign(commandJob("r2", "echo", "$(touch "+pwned+")", "$JOBD_RUN_ID"))

	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	env := map[string]string{}
	for line := range strings.Lines(b.jobd.log("r1")) {
		if k, v, ok := strings.Cut(strings.TrimSuffix(line, "\n"), "="); ok {
			env[k] = v
		}
	}
	require.Equal(t, "r1", env["JOBD_RUN_ID"])
	require.Equal(t, "job-r1", env["JOBD_JOB"])
	require.Equal(t, "3", env["JOBD_ATTEMPT"])
	require.Equal(t, "2025-03-04T05:06:07.890Z", env["JOBD_SCHEDULED_AT"])
	require.Equal(t, "trig-r1", env["JOBD_TRIGGER_ID"])
	require.Equal(t, "1", env["JOBD_SHARD_INDEX"])
	require.Equal(t, "4", env["JOBD_SHARD_TOTAL"])
	require.Equal(t, "plain value", env["JOBD_PARAM_MY_PARAM_X"])
	require.Equal(t, evil, env["JOBD_PARAM_EVIL"])
	require.NotEmpty(t, env["PATH"], "the agent's environment is inherited")

	require.Equal(t, api.RunSucceeded, b.jobd.result("r2").State)
	require.Equal(t, "$(touch "+pwned+") $JOBD_RUN_ID\n", b.jobd.log("r2"))

	require.NoFileExists(t, pwned)
	require.FileExists(t, canary)
}

func TestAgent_FailedRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)

	b.jobd.assign(commandJob("exit3", "sh", "-c", "echo failing; exit 3"))
	res := b.jobd.result("exit3")
	require.Equal(t, api.RunFailed, res.State)
	require.NotNil(t, res.ExitCode)
	require.Equal(t, 3, *res.ExitCode)
	require.Equal(t, "exit status 3", res.Error)
	require.Equal(t, api.ReportStart, b.jobd.runReports("exit3")[0].Type)

	b.jobd.assign(commandJob("missing", "/nonexistent/jobd-test-binary"))
	res = b.jobd.result("missing")
	require.Equal(t, api.RunFailed, res.State)
	require.Nil(t, res.ExitCode)
	require.Contains(t, res.Error, "start:")
	require.Len(t, b.jobd.runReports("missing"), 1, "no start report for a process that never started")

	b.jobd.assign(commandJob("empty"))
	require.Equal(t, "command is empty", b.jobd.result("empty").Error)

	asg := commandJob("kind")
	asg.Kind = "carrier-pigeon"
	b.jobd.assign(asg)
	require.Contains(t, b.jobd.result("kind").Error, `job kind "carrier-pigeon" is not supported`)
}

// forkingJob is a shell that forks a child which outlives a plain kill of
// the shell, and prints both pids.
const forkingJob = `sleep 100 & echo "pids $$ $!"; sleep 100`

var pidsRe = regexp.MustCompile(`pids (\d+) (\d+)`)

// requireGone checks that the processes whose pids a forkingJob printed are
// gone (or zombies waiting for a reaper).
func requireGone(t *testing.T, f *fakeJobd, runID string) {
	t.Helper()
	m := pidsRe.FindStringSubmatch(f.log(runID))
	require.NotNil(t, m, "log of %s: %q", runID, f.log(runID))
	for _, s := range m[1:] {
		pid, err := strconv.Atoi(s)
		require.NoError(t, err)
		require.Eventually(t, func() bool {
			_, alive, ok := procStat(pid)
			return !ok || !alive
		}, waitTimeout, 10*time.Millisecond, "process %d survived", pid)
	}
}

func TestAgent_Timeout(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		script string
	}{
		{"GroupExitsOnSIGTERM", forkingJob},
		{"GroupIgnoresSIGTERM", `trap "" TERM; ` + forkingJob},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t, func(c *Config, _ *fakeJobd) { c.KillGrace = 300 * time.Millisecond })
			asg := commandJob("r1", "sh", "-c", tt.script)
			asg.Timeout = api.Duration(2 * time.Second)
			b.jobd.assign(asg)

			res := b.jobd.result("r1")
			require.Equal(t, api.RunTimedOut, res.State)
			require.Nil(t, res.ExitCode)
			require.Equal(t, "timed out after 2s", res.Error)
			requireGone(t, b.jobd, "r1")
		})
	}
}

func TestAgent_KillCommand(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.jobd.assign(commandJob("r1", "sh", "-c", forkingJob))
	b.jobd.waitLog("r1", "pids ")

	b.jobd.command(api.Command{Type: api.CommandKill, RunID: "r1"})
	res := b.jobd.result("r1")
	require.Equal(t, api.RunKilled, res.State)
	require.Equal(t, "killed on request", res.Error)
	requireGone(t, b.jobd, "r1")

	// A kill for a run the executor does not hold changes nothing.
	b.jobd.command(api.Command{Type: api.CommandKill, RunID: "nope"})
	b.jobd.assign(commandJob("r2", "true"))
	require.Equal(t, api.RunSucceeded, b.jobd.result("r2").State)
}

func TestAgent_ReportRetriedWithSameSeq(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		statuses []int
	}{
		{"ServerError", []int{http.StatusInternalServerError, http.StatusInternalServerError}},
		// A jobd without the batch route, or one that does not know the
		// executor any more: retried (after registering again).
		{"NotFound", []int{http.StatusNotFound, http.StatusNotFound}},
	}
	for _, tt := range tests {
		for _, spooled := range []bool{false, true} {
			name := tt.name + "/Memory"
			if spooled {
				name = tt.name + "/Spool"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				b := setup(t, func(c *Config, f *fakeJobd) {
					f.failReports["r1"] = tt.statuses
					if !spooled {
						c.StateDir = ""
					}
				})
				b.jobd.assign(commandJob("r1", "echo", "hello"))

				res := b.jobd.result("r1")
				require.Equal(t, api.RunSucceeded, res.State)
				reps := b.jobd.runReports("r1")
				types := make([]string, len(reps))
				for i, rep := range reps {
					require.Equal(t, int64(i+1), rep.Seq)
					types[i] = rep.Type
				}
				require.Equal(t, []string{api.ReportStart, api.ReportLog, api.ReportResult}, types)
				require.Equal(t, "hello\n", reps[1].Log)

				b.jobd.mu.Lock()
				defer b.jobd.mu.Unlock()
				tries := b.jobd.tries["r1"]
				require.GreaterOrEqual(t, len(tries), 3)
				require.Equal(t, []int64{1}, tries[0])
				if spooled {
					// The first batch failed once and went to the spool with
					// the reports after it; the resender sends the same
					// batch again until it is stored.
					require.Equal(t, int64(1), tries[1][0])
				} else {
					require.Equal(t, tries[0], tries[1], "the refused batch is sent again unchanged")
				}
				require.Equal(t, tries[1], tries[2], "the refused batch is sent again unchanged")
				require.Equal(t, []int64{1, 2, 3}, slices.Concat(tries[2:]...), "then every report once, in order")
			})
		}
	}
}

func TestAgent_ReportsBatched(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, f *fakeJobd) {
		c.Slots = 50
		f.ignoreFreeSlots = true
	})
	b.agent.Handle("noop", func(context.Context, *Run) error { return nil })
	const runs = 200
	asgs := make([]api.Assignment, runs)
	for i := range asgs {
		asgs[i] = handlerJob(fmt.Sprintf("r%03d", i), "noop")
	}
	b.jobd.assign(asgs...)
	for _, asg := range asgs {
		require.Equal(t, api.RunSucceeded, b.jobd.result(asg.RunID).State)
	}

	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	stored := 0
	for _, asg := range asgs {
		reps := b.jobd.reports[asg.RunID]
		require.Len(t, reps, 2)
		require.Equal(t, api.ReportStart, reps[0].Type)
		require.Equal(t, api.ReportResult, reps[1].Type)
		stored += len(reps)
	}
	requests := len(b.jobd.batches)
	t.Logf("%d reports in %d requests", stored, requests)
	require.Less(t, requests, stored/2, "reports are sent in batches")
}

func TestAgent_ReportRefused(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	release := sync.OnceFunc(func() { close(hold) })
	b := setup(t, func(_ *Config, f *fakeJobd) {
		f.refuseRuns["bad"] = "run bad: not found"
		f.holdReports = hold
	})
	t.Cleanup(release)
	b.agent.Handle("noop", func(context.Context, *Run) error { return nil })

	// While jobd holds the first batch, the reports of two more runs queue
	// up and go in the next batch together.
	b.jobd.assign(handlerJob("first", "noop"))
	b.jobd.waitFor("a report request", func() bool { return len(b.jobd.batches) > 0 })
	b.jobd.assign(handlerJob("ok", "noop"), handlerJob("bad", "noop"))
	require.Eventually(t, func() bool {
		queued := queuedResults(b.agent.reports)
		return queued["ok"] && queued["bad"]
	}, waitTimeout, time.Millisecond)
	release()

	require.Equal(t, api.RunSucceeded, b.jobd.result("first").State)
	require.Equal(t, api.RunSucceeded, b.jobd.result("ok").State)
	// The refused run is forgotten all the same.
	require.Eventually(t, func() bool { return b.agent.heldCount() == 0 }, waitTimeout, time.Millisecond)

	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Empty(t, b.jobd.reports["bad"])
	require.Equal(t, []string{"bad:1", "bad:2"}, b.jobd.refused)
	var runs []string
	for _, rr := range b.jobd.batches[1] {
		runs = append(runs, rr.RunID)
	}
	require.Subset(t, runs, []string{"ok", "bad"}, "one batch holds reports refused and accepted")
}

// queuedResults returns the runs whose result report waits in q.
func queuedResults(q *reportQueue) map[string]bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	m := map[string]bool{}
	for _, qr := range q.waiting {
		if qr.rep.Type == api.ReportResult {
			m[qr.run.runID] = true
		}
	}
	return m
}

func TestAgent_ShutdownWaitsForRuns(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	release := filepath.Join(t.TempDir(), "release")
	b.jobd.assign(commandJob("r1", "sh", "-c",
		`echo waiting; while [ ! -e "$1" ]; do sleep 0.02; done; echo released`, "sh", release))
	b.jobd.waitLog("r1", "waiting")

	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	// Run keeps waiting for the run while it goes on.
	b.jobd.waitFor("the agent to stop polling", func() bool { return b.jobd.pollsAborted > 0 })
	select {
	case err := <-stopped:
		t.Fatalf("Run returned before its run finished: %v", err)
	default:
	}
	b.jobd.mu.Lock()
	require.Zero(t, b.jobd.deregistered)
	b.jobd.mu.Unlock()

	require.NoError(t, os.WriteFile(release, nil, 0o600))
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(2 * waitTimeout):
		t.Fatal("Run did not return")
	}
	res := b.jobd.runReports("r1")
	require.Equal(t, api.RunSucceeded, res[len(res)-1].State)
	require.Contains(t, b.jobd.log("r1"), "released")
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Equal(t, []string{"register", "start:r1", "drain", "result:r1", "deregister"}, b.jobd.events)
}

func TestAgent_ShutdownGraceKills(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *fakeJobd) {
		c.ShutdownGrace = 200 * time.Millisecond
		c.KillGrace = 300 * time.Millisecond
	})
	b.jobd.assign(commandJob("r1", "sh", "-c", `trap "" TERM; `+forkingJob))
	b.jobd.waitLog("r1", "pids ")

	require.NoError(t, b.stop())
	res := b.jobd.runReports("r1")
	require.Equal(t, api.RunKilled, res[len(res)-1].State)
	require.Contains(t, res[len(res)-1].Error, "shutdown grace expired")
	requireGone(t, b.jobd, "r1")
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Equal(t, []string{"register", "start:r1", "drain", "result:r1", "deregister"}, b.jobd.events)
}

func TestAgent_ReRegistersWhenUnknown(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	release := filepath.Join(t.TempDir(), "release")
	b.jobd.assign(commandJob("r1", "sh", "-c", `while [ ! -e "$1" ]; do sleep 0.02; done`, "sh", release))
	b.jobd.waitStarted("r1")

	b.jobd.mu.Lock()
	b.jobd.unknownPolls = 1
	b.jobd.mu.Unlock()
	b.jobd.waitFor("a second registration", func() bool { return len(b.jobd.registers) == 2 })
	b.jobd.mu.Lock()
	require.Equal(t, []string{"r1"}, b.jobd.registers[1].Running)
	b.jobd.mu.Unlock()

	require.NoError(t, os.WriteFile(release, nil, 0o600))
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
}

func TestAgent_FailsOverToNextServer(t *testing.T) {
	t.Parallel()
	dead := newFakeJobd(t)
	dead.srv.Close() // refuses connections from now on
	b := setup(t, func(c *Config, f *fakeJobd) {
		c.Servers = []string{dead.srv.URL, f.srv.URL}
	})
	b.jobd.assign(commandJob("r1", "true"))
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
}

func TestAgent_RefusedRegistration(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusUnauthorized, api.ErrorBody{Error: "bad token"})
	}))
	t.Cleanup(srv.Close)
	a, err := New(Config{Servers: []string{srv.URL}, Group: "test", Logger: testLogger(t)})
	require.NoError(t, err)
	b := startAgent(t, nil, a)
	select {
	case <-b.done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not give up")
	}
	err = b.stop()
	require.EqualError(t, err, `register: jobd requires a token for group "test" and none is configured: jobd answered 401: bad token`)
}

func TestAgent_StopsWhileJobdUnreachable(t *testing.T) {
	t.Parallel()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	a, err := New(Config{Servers: []string{dead.URL}, Group: "test", Logger: testLogger(t)})
	require.NoError(t, err)
	b := startAgent(t, nil, a)
	require.NoError(t, b.stop())
}
