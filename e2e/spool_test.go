package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// spoolSegments returns the report segments in an executor's spool and
// their total size.
func spoolSegments(stateDir string) (n int, size int64) {
	files, _ := filepath.Glob(filepath.Join(stateDir, "spool", "reports-*.jsonl"))
	for _, f := range files {
		if fi, err := os.Stat(f); err == nil {
			n++
			size += fi.Size()
		}
	}
	return n, size
}

// TestFailoverAndSpool: an executor whose first --server is dead fails
// over to jobd; a run that ends while jobd is down has its reports spooled
// to the executor's state dir and delivered once jobd is back, complete
// (SPEC §4: "Nothing is lost if every jobd is down"); jobctl logs -f
// follows the run across the restart.
func TestFailoverAndSpool(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	const g = "sp"
	dead := "http://" + freeAddr(t) // nothing listens there
	ex := startExecutorWith(t, d, execOpts{Group: g, Name: "sp1", Servers: dead + "," + d.URL()})

	d.ctl("job", "create", "warm", "--group", g, "--manual", "--command", "echo warm")
	r := d.waitEnded(d.trigger("warm")[0], 15*time.Second)
	require.Equal(t, api.RunSucceeded, r.State, "a run through the second server: %s", r.Error)
	require.Equal(t, "warm\n", r.Output)

	d.ctl("job", "create", "slow", "--group", g, "--manual", "--command", `sh -c 'echo start; sleep 3; echo done'`)
	id := d.trigger("slow")[0]
	d.waitRunning(id, 10*time.Second)
	// A follower of its output rides out the restart (jobctl reconnects
	// for up to 30s).
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	follow := exec.CommandContext(ctx, jobctlBin, "--socket", d.Socket, "logs", id, "-f")
	follow.Env = cleanEnv()
	var followOut syncBuffer
	var followErr bytes.Buffer
	follow.Stdout, follow.Stderr = &followOut, &followErr
	require.NoError(t, follow.Start())
	// Stop jobd only once the follower is attached (it saw the first line).
	eventually(t, 15*time.Second, func() bool { return strings.HasPrefix(followOut.String(), "start\n") },
		"jobctl logs -f shows the run's first line")
	stopAt := time.Now()
	d.Stop()
	downAt := time.Now()
	t.Logf("jobd exited %s after SIGTERM", downAt.Sub(stopAt).Round(time.Millisecond))

	// The run ends while jobd is down: its reports go to the spool.
	segs, size := spoolSegments(ex.StateDir)
	deadline := downAt.Add(4 * time.Second)
	for time.Now().Before(deadline) && segs == 0 {
		time.Sleep(50 * time.Millisecond)
		segs, size = spoolSegments(ex.StateDir)
	}
	t.Logf("spool %s after SIGTERM to jobd: %d segments, %d bytes", time.Since(stopAt).Round(time.Millisecond), segs, size)
	assert.NotZero(t, segs, "reports spooled under %s while jobd is down", ex.StateDir)
	waitUntil(downAt.Add(4 * time.Second))
	segs, size = spoolSegments(ex.StateDir)
	t.Logf("spool after 4s with jobd down: %d segments, %d bytes", segs, size)
	require.False(t, ex.proc.exited(), "the executor keeps running while jobd is down:\n%s", ex.Log())

	d.Start()
	upAt := time.Now()
	r = d.waitEnded(id, 20*time.Second)
	t.Logf("run %s ended %s %s after jobd came back (finished_at %s; SIGTERM to jobd at %s, exited at %s)", id, r.State,
		time.Since(upAt).Round(time.Millisecond), r.FinishedAt.Format("15:04:05.000"), stopAt.Format("15:04:05.000"), downAt.Format("15:04:05.000"))
	assert.Equal(t, api.RunSucceeded, r.State, "run %s: %s", id, r.Error)
	assert.Equal(t, "start\ndone\n", r.Output, "output of run %s", id)
	assert.Equal(t, "start\ndone\n", d.ctl("logs", id), "jobctl logs %s", id)
	assert.True(t, r.FinishedAt.After(downAt), "the run finished (at %s) while jobd was down (from %s)",
		r.FinishedAt.Format("15:04:05.000"), downAt.Format("15:04:05.000"))
	if exitCode := r.ExitCode; assert.NotNil(t, exitCode) {
		assert.Equal(t, 0, *exitCode)
	}
	err := follow.Wait()
	t.Logf("jobctl logs -f across the restart: %v; stderr:\n%s", err, followErr.String())
	assert.NoError(t, err, "jobctl logs -f across the restart of jobd")
	assert.Equal(t, "start\ndone\n", followOut.String(), "jobctl logs -f output across the restart of jobd")
	eventually(t, 10*time.Second, func() bool { n, _ := spoolSegments(ex.StateDir); return n == 0 },
		"the spool under %s empties once jobd took its reports", ex.StateDir)
	d.waitExecutorOnline(g, "sp1")

	// And it goes on running jobs.
	r = d.waitEnded(d.trigger("warm")[0], 15*time.Second)
	assert.Equal(t, api.RunSucceeded, r.State, "a run after the outage: %s", r.Error)
}

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
