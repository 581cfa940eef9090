package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestMain(m *testing.M) {
	// The failure workload re-executes this binary as an executor.
	if len(os.Args) > 1 && os.Args[1] == childExecutorArg {
		os.Exit(childExecutorMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// logWriter writes each line to t.Log.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestSmoke runs every workload scaled down (-smoke) against freshly built
// binaries and checks that each completed with plausible counts. It
// asserts no timing: the figures are only printed.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts jobd and executors for about a minute")
	}
	bin := t.TempDir()
	// Built without -race even when the test runs with it: they are what
	// operators run, and the race build of jobd is several times slower.
	build := exec.Command(goTool(), "build", "-o", bin+string(filepath.Separator), "github.com/jobd/jobd/cmd/jobd", "github.com/jobd/jobd/cmd/jobctl")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	self, err := os.Executable()
	require.NoError(t, err)

	o := &options{
		jobd: filepath.Join(bin, "jobd"), jobctl: filepath.Join(bin, "jobctl"), self: self,
		workloads: allWorkloads, executors: 2, slots: 512, smoke: true, progress: logWriter{t},
	}
	results, err := runWorkloads(t.Context(), o)
	var table bytes.Buffer
	printResults(&table, results)
	t.Logf("figures (not checked):\n%s", table.String())
	require.NoError(t, err)

	s := o.sizes()
	byName := map[string]Result{}
	for _, r := range results {
		byName[r.Workload] = r
	}
	require.Len(t, byName, len(allWorkloads), "one result per workload")
	for _, w := range []string{workSteady, workBurst, workScale, workFailure, workDrain} {
		r := byName[w]
		require.Positive(t, r.Started, "%s: handler starts in the window", w)
		require.Positive(t, r.Fired, "%s: triggers fired in the window", w)
		require.NotNil(t, r.TriggerLag, "%s: trigger lag", w)
		require.Positive(t, r.JobdPeakRSSMB, "%s: jobd peak RSS", w)
		require.Positive(t, r.StoreSizeMB, "%s: store size", w)
	}
	require.Equal(t, s.steadyRate, byName[workSteady].Jobs)
	require.Equal(t, s.burstRate, byName[workBurst].Jobs)

	list := byName[workList]
	require.GreaterOrEqual(t, list.RunsStored, int64(s.listRuns))
	require.Len(t, list.List, 8)
	for _, l := range list.List {
		require.Equal(t, s.listReps, l.Latency.N, l.Command)
		require.Greater(t, l.Lines, 1, "%s printed rows", l.Command)
	}

	scale := byName[workScale]
	require.Equal(t, s.scaleJobs+s.scaleFast, scale.Jobs)
	require.NotNil(t, scale.Scale)
	require.Positive(t, scale.Scale.RestartFirstFireS)
	require.Positive(t, scale.Scale.RSSSettledMB)

	failure := byName[workFailure]
	require.Len(t, failure.Failure, s.failureReps)
	for _, f := range failure.Failure {
		require.Positive(t, f.LostMs, f.Executor)
		require.Positive(t, f.RetryStartMs, f.Executor)
	}

	drain := byName[workDrain]
	require.NotNil(t, drain.Drain)
	require.Positive(t, drain.Drain.RoutedBefore, "the drained executor had runs before")
}

// goTool returns the go command: the one on PATH (go test puts
// $GOROOT/bin first), else $GOROOT/bin/go.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
