package executor

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// waitingJob is a run that goes on until the file release exists.
func waitingJob(t *testing.T, runID string) (asg api.Assignment, release func()) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "release")
	asg = commandJob(runID, "sh", "-c",
		`echo waiting; while [ ! -e "$1" ]; do sleep 0.02; done; echo released`, "sh", file)
	return asg, func() { require.NoError(t, os.WriteFile(file, nil, 0o600)) }
}

// waitPoll waits for a poll, after the n first ones, that cond accepts.
func (f *fakeJobd) waitPoll(what string, n int, cond func(api.PollRequest) bool) {
	f.t.Helper()
	f.waitFor(what, func() bool {
		return len(f.polls) > n && slices.ContainsFunc(f.polls[n:], cond)
	})
}

func (f *fakeJobd) pollCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.polls)
}

// waitHandedOut waits until every pending assignment was handed out and the
// agent polled again, so it handled the answer that held them.
func (f *fakeJobd) waitHandedOut() {
	f.t.Helper()
	var n int
	f.waitFor("the assignments handed out", func() bool {
		n = len(f.polls)
		return len(f.pending) == 0
	})
	f.waitFor("the next poll", func() bool { return len(f.polls) > n })
}

// requireNeverHeld checks that the agent neither started nor listed runs.
func requireNeverHeld(t *testing.T, f *fakeJobd, runIDs ...string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range runIDs {
		require.Empty(t, f.reports[id], "reports of %s", id)
		require.Empty(t, f.tries[id], "reports of %s sent", id)
		for _, p := range f.polls {
			require.NotContains(t, p.Running, id)
		}
		for _, r := range f.registers {
			require.NotContains(t, r.Running, id)
		}
	}
}

func waitRunReturned(t *testing.T, b *testBundle) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return")
	}
}

func TestAgent_DrainCommand(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *Config, f *fakeJobd) { f.ignoreFreeSlots = true })
	r1, release := waitingJob(t, "r1")
	b.jobd.assign(r1)
	b.jobd.waitLog("r1", "waiting")
	b.jobd.assign(commandJob("r2", "sh", "-c", forkingJob))
	b.jobd.waitLog("r2", "pids ")

	// A drain, and an assignment in the same answer: it is not started.
	n := b.jobd.pollCount()
	b.jobd.mu.Lock()
	b.jobd.commands = append(b.jobd.commands, api.Command{Type: api.CommandDrain})
	b.jobd.pending = append(b.jobd.pending, commandJob("r3", "true"))
	b.jobd.notifyLocked()
	b.jobd.mu.Unlock()
	b.jobd.waitPoll("a draining poll", n, func(p api.PollRequest) bool {
		return p.FreeSlots == 0 && slices.Equal(p.Running, []string{"r1", "r2"})
	})
	// Nor is one arriving later.
	b.jobd.assign(commandJob("r4", "true"))
	b.jobd.waitHandedOut()

	// Kill commands still work while draining.
	b.jobd.command(api.Command{Type: api.CommandKill, RunID: "r2"})
	res := b.jobd.result("r2")
	require.Equal(t, api.RunKilled, res.State)
	require.Equal(t, "killed on request", res.Error)
	requireGone(t, b.jobd, "r2")
	select {
	case <-b.done:
		t.Fatal("Run returned while a run was going on")
	default:
	}

	release()
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	waitRunReturned(t, b)
	require.NoError(t, b.stop())
	requireNeverHeld(t, b.jobd, "r3", "r4")
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Equal(t, []string{"register", "start:r1", "start:r2", "result:r2", "result:r1", "deregister"}, b.jobd.events)
	require.Empty(t, b.jobd.drains, "drained on jobd's command: no drain request")
}

func TestAgent_DrainCommandIdle(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.jobd.waitFor("registration", func() bool { return len(b.jobd.registers) > 0 })
	b.jobd.command(api.Command{Type: api.CommandDrain})
	waitRunReturned(t, b)
	require.NoError(t, b.stop())
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Equal(t, []string{"register", "deregister"}, b.jobd.events)
}

func TestAgent_Undrain(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	r1, release := waitingJob(t, "r1")
	b.jobd.assign(r1)
	b.jobd.waitLog("r1", "waiting")

	n := b.jobd.pollCount()
	b.jobd.command(api.Command{Type: api.CommandDrain})
	b.jobd.waitPoll("a draining poll", n, func(p api.PollRequest) bool { return p.FreeSlots == 0 })
	n = b.jobd.pollCount()
	b.jobd.command(api.Command{Type: api.CommandUndrain})
	b.jobd.waitPoll("a poll with free slots again", n, func(p api.PollRequest) bool { return p.FreeSlots == 3 })

	release()
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	b.jobd.assign(commandJob("r2", "true"))
	require.Equal(t, api.RunSucceeded, b.jobd.result("r2").State)
	select {
	case <-b.done:
		t.Fatal("Run returned after the drain was cancelled")
	default:
	}
	b.jobd.mu.Lock()
	require.Zero(t, b.jobd.deregistered)
	b.jobd.mu.Unlock()
	require.NoError(t, b.stop())
}

func TestAgent_StopDrains(t *testing.T) {
	t.Parallel()
	b := setup(t, func(_ *Config, f *fakeJobd) { f.ignoreFreeSlots = true })
	r1, release := waitingJob(t, "r1")
	b.jobd.assign(r1)
	b.jobd.waitLog("r1", "waiting")

	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	b.jobd.waitFor("the drain request", func() bool { return len(b.jobd.drains) > 0 })
	b.jobd.mu.Lock()
	require.Equal(t, []api.DrainRequest{{Timeout: api.Duration(waitTimeout), OnTimeout: api.DrainRequeue}}, b.jobd.drains)
	n := len(b.jobd.polls)
	b.jobd.mu.Unlock()
	// It goes on polling, taking nothing: heartbeats and kills still reach
	// it, and an undrain does not cancel a stop.
	b.jobd.waitPoll("a heartbeat while stopping", n, func(p api.PollRequest) bool {
		return p.FreeSlots == 0 && slices.Equal(p.Running, []string{"r1"})
	})
	b.jobd.command(api.Command{Type: api.CommandUndrain})
	b.jobd.assign(commandJob("r2", "true"))
	b.jobd.waitHandedOut()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned before its run finished: %v", err)
	default:
	}

	release()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(2 * waitTimeout):
		t.Fatal("Run did not return")
	}
	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	requireNeverHeld(t, b.jobd, "r2")
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	// Drain first, deregister last, after the result of the run.
	require.Equal(t, []string{"register", "start:r1", "drain", "result:r1", "deregister"}, b.jobd.events)
}

func TestAgent_AbortStopsHard(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *fakeJobd) {
		c.ShutdownGrace = 10 * time.Minute
		c.KillGrace = 300 * time.Millisecond
	})
	b.jobd.assign(commandJob("r1", "sh", "-c", `trap "" TERM; `+forkingJob))
	b.jobd.waitLog("r1", "pids ")

	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	b.jobd.waitFor("the drain request", func() bool { return len(b.jobd.drains) > 0 })
	b.agent.Abort()
	select {
	case err := <-stopped:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Run did not return after Abort")
	}
	res := b.jobd.runReports("r1")
	require.Equal(t, api.RunKilled, res[len(res)-1].State)
	require.Contains(t, res[len(res)-1].Error, "stopped hard")
	requireGone(t, b.jobd, "r1")
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Equal(t, []string{"register", "start:r1", "drain", "result:r1", "deregister"}, b.jobd.events)
}

func TestAgent_AbortKillsGroupsIgnoringSIGTERM(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *fakeJobd) {
		c.ShutdownGrace = 10 * time.Minute
		c.KillGrace = 10 * time.Minute // never waited out
	})
	b.jobd.assign(commandJob("r1", "sh", "-c", `trap "" TERM; `+forkingJob))
	b.jobd.waitLog("r1", "pids ")
	// Abort before the context is done stops Run too.
	b.agent.Abort()
	waitRunReturned(t, b)
	require.NoError(t, b.stop())
	requireGone(t, b.jobd, "r1")
}
