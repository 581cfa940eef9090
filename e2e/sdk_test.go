package e2e

import (
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestSDKExample builds examples/sdk, an executor embedding the Go SDK
// with a handler "hello", runs it against jobd and runs a handler job on
// it: the run succeeds and its output holds what the handler logged.
func TestSDKExample(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "sdk")
	build := exec.Command(goTool(), "build", "-o", bin, "./examples/sdk")
	build.Dir = ".."
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build ./examples/sdk:\n%s", out)

	d := startJobd(t, jobdOpts{})
	logPath := filepath.Join(t.TempDir(), "sdk.log")
	p := startProc(t, "sdk example", logPath, cleanEnv(), bin, "--server", d.URL(), "--group", "sdk")
	t.Cleanup(func() {
		if !p.exited() {
			if code := p.stop(t, 45*time.Second); code != 0 {
				t.Errorf("the sdk example exited %d on SIGTERM, want 0", code)
			}
		}
		if t.Failed() {
			dumpLog(t, logPath)
		}
	})
	eventually(t, 15*time.Second, func() bool {
		if p.exited() {
			t.Fatalf("the sdk example exited %d at start", p.state.ExitCode())
		}
		for _, x := range d.executors() {
			if x.Group == "sdk" && x.State == api.ExecutorOnline {
				return true
			}
		}
		return false
	}, "an executor of group sdk online")

	d.ctl("job", "create", "greet", "--group", "sdk", "--manual", "--handler", "hello", "--param", "name=x")
	id := d.trigger("greet")[0]
	r := d.waitEnded(id, 15*time.Second)
	t.Logf("run %s on %s ended %s; output:\n%s", id, r.Executor, r.State, r.Output)
	assert.Equal(t, api.RunSucceeded, r.State, "run %s: %s", id, r.Error)
	// The handler writes a greeting naming the run and job, then the params.
	assert.Contains(t, r.Output, "hello from run "+id+" of job greet", "the handler's log is the run's output")
	assert.Contains(t, r.Output, "param name=x\n", "the handler logs its params")
	assert.Equal(t, r.Output, d.ctl("logs", id), "jobctl logs %s", id)
}
