package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestDrainUnderLoad drains one of three executors while per-second jobs
// keep firing: after jobd acknowledged the drain no run is assigned to it,
// none of its running runs is interrupted, every report of its runs
// arrives, and it ends drained (its process exits 0).
func TestDrainUnderLoad(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	const g = "dr"
	ex := []*Executor{
		startExecutor(t, d, g, "d1", 4),
		startExecutor(t, d, g, "d2", 4),
		startExecutor(t, d, g, "d3", 4),
	}
	for i := range 6 {
		d.ctl("job", "create", fmt.Sprintf("tick%d", i), "--group", g, "--every", "1s",
			"--command", `sh -c 'echo start; sleep 1.5; echo end'`)
	}
	// Let runs spread over the three executors.
	target, _ := d.executorNamed(g, "d1")
	eventually(t, 20*time.Second, func() bool {
		x, _ := d.executorNamed(g, "d1")
		return x.Running > 0
	}, "d1 is running runs before the drain")

	var drained api.Executor
	d.ctlJSON(&drained, "executor", "drain", target.ID, "--timeout", "30s")
	ack := time.Now()
	require.Equal(t, api.ExecutorDraining, drained.State)
	t.Logf("drain acknowledged with %d runs left on d1", drained.Drain.RunsLeft)

	code, ok := ex[0].proc.wait(40 * time.Second)
	require.True(t, ok, "d1 ends by itself once drained:\n%s", ex[0].Log())
	require.Equal(t, 0, code, "d1 exits 0 after draining")
	x, _ := d.executorNamed(g, "d1")
	require.Equal(t, api.ExecutorDrained, x.State)
	drainedAt := time.Now()

	// Jobs keep running on the others.
	time.Sleep(2 * time.Second)
	var runs []api.Run
	d.ctlJSON(&runs, "run", "list", "--limit", "1000")
	var onD1, after int
	for _, r := range runs {
		if r.Executor == "d1" {
			onD1++
			require.False(t, r.AssignedAt.After(ack), "run %s assigned to d1 at %s, after the drain was acknowledged at %s",
				r.ID, r.AssignedAt.Format("15:04:05.000"), ack.Format("15:04:05.000"))
			require.Equal(t, api.RunSucceeded, r.State, "run %s on d1 was not interrupted: %s %s", r.ID, r.State, r.Error)
			full := d.runGet(r.ID)
			require.Equal(t, "start\nend\n", full.Output, "every report of run %s arrived", r.ID)
		}
		if r.ScheduledAt.After(drainedAt) {
			after++
			require.Contains(t, []string{"d2", "d3", ""}, r.Executor)
		}
	}
	require.Positive(t, onD1)
	require.Positive(t, after, "runs go on after the drain")
	t.Logf("%d runs ran on d1; %d runs scheduled after it drained went elsewhere", onD1, after)
}
