package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// spoolFiles returns the report files in the spool of stateDir.
func spoolFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(stateDir, spoolDirName, segmentPrefix+"*"+segmentSuffix))
	require.NoError(t, err)
	return files
}

// waitSettled waits until jobd acknowledged every report queued so far, so
// that taking a server down loses no answer to a request in flight (the
// report would then be sent again, which is right, but not what a test
// counting requests wants).
func waitSettled(t *testing.T, a *Agent) {
	t.Helper()
	require.Eventually(t, func() bool {
		a.reports.mu.Lock()
		defer a.reports.mu.Unlock()
		return a.reports.n == 0
	}, waitTimeout, time.Millisecond)
}

// requireExactlyOnce checks that jobd received every report of a run once,
// in Seq order, in the requests that reached it, and stored them all.
func requireExactlyOnce(t *testing.T, f *fakeJobd, runID string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	sent := slices.Concat(f.tries[runID]...)
	require.NotEmpty(t, sent, "run %s", runID)
	for i, seq := range sent {
		require.Equal(t, int64(i+1), seq, "run %s: seqs sent %v", runID, sent)
	}
	require.Len(t, f.reports[runID], len(sent), "run %s", runID)
}

func TestAgent_FailoverSticksToLastServer(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	srvA, srvB := f.servers[0], f.addServer(false)
	f.setDown(srvA, true)
	b := setupWith(t, f, func(c *Config, _ *fakeJobd) {
		c.Servers = []string{srvA.srv.URL, srvB.srv.URL}
	})
	b.agent.Handle("noop", func(context.Context, *Run) error { return nil })
	runJobs := func(from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			b.jobd.assign(handlerJob(fmt.Sprintf("r%d", i), "noop"))
		}
		for i := from; i < to; i++ {
			require.Equal(t, api.RunSucceeded, b.jobd.result(fmt.Sprintf("r%d", i)).State)
		}
	}

	// A refuses the registration; B takes it, and every request after.
	runJobs(0, 5)
	servedA, refusedA := f.counts(srvA)
	servedB, _ := f.counts(srvB)
	require.Equal(t, 0, servedA)
	require.Equal(t, 1, refusedA, "A is tried once, not for every request")
	require.Positive(t, servedB)
	f.mu.Lock()
	require.Len(t, f.registers, 1)
	f.mu.Unlock()

	// A comes back: the agent stays with B, which still answers.
	f.setDown(srvA, false)
	runJobs(5, 10)
	servedA, refusedA = f.counts(srvA)
	require.Equal(t, 0, servedA, "A is not tried while B answers")
	require.Equal(t, 1, refusedA)

	// B goes down: the agent moves to A, and stays there.
	waitSettled(t, b.agent)
	f.setDown(srvB, true)
	runJobs(10, 15)
	_, refusedB := f.counts(srvB)
	require.LessOrEqual(t, refusedB, 2, "the poll and a report may each find B down once")
	servedA, _ = f.counts(srvA)
	require.Positive(t, servedA)
	runJobs(15, 20)
	_, refusedB2 := f.counts(srvB)
	servedA2, _ := f.counts(srvA)
	require.Equal(t, refusedB, refusedB2, "B is not tried again while A answers")
	require.Greater(t, servedA2, servedA)
	for i := range 20 {
		requireExactlyOnce(t, f, fmt.Sprintf("r%d", i))
	}
}

func TestAgent_SpoolsWhileAllServersDown(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	srvA, srvB := f.servers[0], f.addServer(false)
	b := setupWith(t, f, func(c *Config, _ *fakeJobd) {
		c.Servers = []string{srvA.srv.URL, srvB.srv.URL}
		c.Slots = 2
	})
	// A memory queue this small would block the jobs below for good
	// without the spool.
	b.agent.reports.mu.Lock()
	b.agent.reports.maxLen = 4
	b.agent.reports.mu.Unlock()
	const chunks = 20
	chunk := func(run string, i int) string {
		return fmt.Sprintf("%s chunk %02d %s\n", run, i, strings.Repeat("x", logBatchMax))
	}
	release := make(chan struct{})
	b.agent.Handle("chatty", func(ctx context.Context, r *Run) error {
		<-release
		for i := range chunks {
			if _, err := fmt.Fprint(r.Log, chunk(r.ID, i)); err != nil {
				return err
			}
		}
		return nil
	})
	b.jobd.assign(handlerJob("r1", "chatty"), handlerJob("r2", "chatty"))
	b.jobd.waitStarted("r1")
	b.jobd.waitStarted("r2")
	waitSettled(t, b.agent)

	f.setDown(srvA, true)
	f.setDown(srvB, true)
	close(release)
	// Both runs end: their reports are on disk, their slots free.
	require.Eventually(t, func() bool { return b.agent.heldCount() == 0 }, waitTimeout, 5*time.Millisecond)
	require.NotEmpty(t, spoolFiles(t, b.agent.cfg.StateDir))
	require.Equal(t, []string{"r1", "r2"}, b.agent.heldIDs(), "listed to jobd until it has their results")
	require.Equal(t, 2, b.agent.freeSlots())
	require.Len(t, b.jobd.runReports("r1"), 1, "jobd got nothing while down")

	// New runs while the spool drains: their reports follow the spool's.
	f.setDown(srvB, false)
	b.jobd.assign(handlerJob("r3", "chatty"))
	for _, id := range []string{"r1", "r2", "r3"} {
		res := b.jobd.result(id)
		require.Equal(t, api.RunSucceeded, res.State, id)
		requireExactlyOnce(t, f, id)
		var want strings.Builder
		for i := range chunks {
			want.WriteString(chunk(id, i))
		}
		require.Equal(t, want.String(), b.jobd.log(id))
	}
	f.mu.Lock()
	require.Zero(t, f.duplicates)
	f.mu.Unlock()
	require.Eventually(t, func() bool {
		return len(spoolFiles(t, b.agent.cfg.StateDir)) == 0 && len(b.agent.heldIDs()) == 0
	}, waitTimeout, 5*time.Millisecond, "spool files are deleted once delivered")
	require.NoFileExists(t, filepath.Join(b.agent.cfg.StateDir, spoolDirName, spoolCursorName))

	require.NoError(t, b.stop())
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 1, f.deregistered)
}

func TestAgent_SpoolSurvivesRestart(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	srv := f.servers[0]
	stateDir := t.TempDir()
	configure := func(c *Config, _ *fakeJobd) { c.StateDir = stateDir }
	release := make(chan struct{})
	handler := func(ctx context.Context, r *Run) error {
		<-release
		fmt.Fprintf(r.Log, "output of %s\n", r.ID)
		return nil
	}

	first := setupWith(t, f, configure)
	first.agent.Handle("work", handler)
	first.jobd.assign(handlerJob("r1", "work"))
	first.jobd.waitStarted("r1")
	waitSettled(t, first.agent)
	f.setDown(srv, true)
	close(release)
	require.Eventually(t, func() bool { return first.agent.heldCount() == 0 }, waitTimeout, 5*time.Millisecond)
	// Stopping while jobd is down leaves the reports on disk and the
	// executor registered: deregistering would make jobd end r1 as lost.
	require.NoError(t, first.stop())
	require.NotEmpty(t, spoolFiles(t, stateDir))
	f.mu.Lock()
	require.Zero(t, f.deregistered)
	registers := len(f.registers)
	f.mu.Unlock()

	f.setDown(srv, false)
	second := setupWith(t, f, configure)
	require.Equal(t, api.RunSucceeded, second.jobd.result("r1").State)
	require.Equal(t, "output of r1\n", second.jobd.log("r1"))
	requireExactlyOnce(t, f, "r1")
	f.mu.Lock()
	require.Equal(t, []string{"r1"}, f.registers[registers].Running,
		"the new agent claims the run whose reports it still has")
	f.mu.Unlock()
	require.Eventually(t, func() bool { return len(spoolFiles(t, stateDir)) == 0 }, waitTimeout, 5*time.Millisecond)

	require.NoError(t, second.stop())
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, 1, f.deregistered)
}

func TestAgent_StopFlushesSpool(t *testing.T) {
	t.Parallel()
	// jobd is back but slow while the agent stops: the spool is delivered
	// before it deregisters.
	b := setup(t, nil)
	srv := b.jobd.servers[0]
	release := make(chan struct{})
	b.agent.Handle("work", func(ctx context.Context, r *Run) error {
		<-release
		return nil
	})
	b.jobd.assign(handlerJob("r1", "work"))
	b.jobd.waitStarted("r1")
	waitSettled(t, b.agent)
	b.jobd.setDown(srv, true)
	close(release)
	require.Eventually(t, func() bool { return b.agent.heldCount() == 0 }, waitTimeout, 5*time.Millisecond)

	hold := make(chan struct{})
	b.jobd.mu.Lock()
	b.jobd.holdReports = hold
	batches, polls := len(b.jobd.batches), len(b.jobd.polls)
	b.jobd.mu.Unlock()
	b.jobd.setDown(srv, false)
	b.jobd.waitFor("the spool resent", func() bool { return len(b.jobd.batches) > batches })
	b.jobd.waitFor("a poll", func() bool { return len(b.jobd.polls) > polls })
	stopped := make(chan error, 1)
	go func() { stopped <- b.stop() }()
	b.jobd.waitFor("the agent to stop polling", func() bool { return b.jobd.pollsAborted > 0 })
	close(hold)
	require.NoError(t, <-stopped)

	require.Equal(t, api.RunSucceeded, b.jobd.result("r1").State)
	require.Empty(t, spoolFiles(t, b.agent.cfg.StateDir))
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	// The drain request is not held up by the spool: it may reach jobd
	// before the spooled result.
	require.ElementsMatch(t, []string{"register", "start:r1", "result:r1", "drain", "deregister"}, b.jobd.events)
	require.Equal(t, "deregister", b.jobd.events[len(b.jobd.events)-1])
}

func TestAgent_StopLeavesSpoolWhenJobdDown(t *testing.T) {
	t.Parallel()
	b := setup(t, func(c *Config, _ *fakeJobd) { c.ShutdownGrace = time.Minute })
	release := make(chan struct{})
	b.agent.Handle("work", func(ctx context.Context, r *Run) error {
		<-release
		return nil
	})
	b.jobd.assign(handlerJob("r1", "work"))
	b.jobd.waitStarted("r1")
	waitSettled(t, b.agent)
	b.jobd.setDown(b.jobd.servers[0], true)
	close(release)
	require.Eventually(t, func() bool { return b.agent.heldCount() == 0 }, waitTimeout, 5*time.Millisecond)
	// Stopping does not wait out flushTimeout for a jobd that is down.
	start := time.Now()
	require.NoError(t, b.stop())
	t.Logf("stopped in %s", time.Since(start))
	require.NotEmpty(t, spoolFiles(t, b.agent.cfg.StateDir))
	b.jobd.mu.Lock()
	defer b.jobd.mu.Unlock()
	require.Zero(t, b.jobd.deregistered)
}

func TestAgent_StateDirInUse(t *testing.T) {
	t.Parallel()
	b := setup(t, nil)
	b.jobd.waitFor("registration", func() bool { return len(b.jobd.registers) > 0 })
	cfg := b.agent.cfg
	cfg.Logger = testLogger(t)
	a, err := New(cfg)
	require.NoError(t, err)
	err = a.Run(context.Background())
	require.ErrorContains(t, err, "open report spool: ")
	require.ErrorContains(t, err, "is in use by another executor")
}

func TestAgent_SpoolDirUnusable(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	cfg := testConfig(t, f, nil)
	// A file where the spool directory should be.
	require.NoError(t, os.WriteFile(filepath.Join(cfg.StateDir, spoolDirName), nil, 0o600))
	a, err := New(cfg)
	require.NoError(t, err)
	require.ErrorContains(t, a.Run(context.Background()), "open report spool: create spool dir")
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Empty(t, f.registers, "nothing runs without the spool it was configured with")
}
