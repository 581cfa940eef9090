package e2e

import (
	"bufio"
	"bytes"
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// forkingCommand is a job whose shell leaves a background child: stopping
// the job must stop the whole process group, child included (SPEC §4).
const forkingCommand = `sh -c 'echo sh=$$; sleep 300 & echo child=$!; sleep 300'`

var (
	shPidRE    = regexp.MustCompile(`(?m)^sh=(\d+)$`)
	childPidRE = regexp.MustCompile(`(?m)^child=(\d+)$`)
)

// forkPids reads the pids of the shell and of its child from the output of
// a run of forkingCommand.
func forkPids(out string) (sh, child int, ok bool) {
	m1, m2 := shPidRE.FindStringSubmatch(out), childPidRE.FindStringSubmatch(out)
	if m1 == nil || m2 == nil {
		return 0, 0, false
	}
	sh, _ = strconv.Atoi(m1[1])
	child, _ = strconv.Atoi(m2[1])
	return sh, child, true
}

// requireNoSurvivor checks that the processes of a stopped run are gone:
// the executor reports the run's end only once its process group is.
func requireNoSurvivor(t *testing.T, run string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		if procGone(pid) {
			continue
		}
		desc := procDesc(pid)
		// Say whether it is merely slow or a real survivor.
		deadline := time.Now().Add(3 * time.Second)
		for !procGone(pid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		t.Errorf("run %s ended but its process %d still ran (%s); gone 3s later: %t", run, pid, desc, procGone(pid))
	}
}

// TestKillForkingJob: jobctl run kill and a timeout stop the shell of a job
// and the child it left in the background.
func TestKillForkingJob(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	const g = "fork"
	startExecutorWith(t, d, execOpts{Group: g, Name: "f1", Slots: 2})

	t.Run("Kill", func(t *testing.T) {
		d := d.withT(t)
		d.ctl("job", "create", "forker", "--group", g, "--manual", "--command", forkingCommand)
		id := d.trigger("forker")[0]
		d.waitRunning(id, 10*time.Second)
		var sh, child int
		eventually(t, 10*time.Second, func() bool {
			var ok bool
			sh, child, ok = forkPids(d.ctl("logs", id))
			return ok
		}, "the shell and child pids in the output of run %s", id)
		require.False(t, procGone(sh), "the shell %d runs", sh)
		require.False(t, procGone(child), "the child %d runs", child)
		t.Cleanup(func() { killGroups([]int{sh}) })

		start := time.Now()
		out := d.ctl("run", "kill", id)
		t.Logf("jobctl run kill %s: %s", id, strings.TrimSpace(out))
		r := d.waitEnded(id, 20*time.Second)
		t.Logf("run %s ended %s %s after the kill (%s)", id, r.State, time.Since(start).Round(time.Millisecond), r.Error)
		assert.Equal(t, api.RunKilled, r.State)
		requireNoSurvivor(t, id, sh, child)
	})

	t.Run("Timeout", func(t *testing.T) {
		d := d.withT(t)
		d.ctl("job", "create", "forker-timeout", "--group", g, "--manual", "--command", forkingCommand, "--timeout", "1s")
		id := d.trigger("forker-timeout")[0]
		r := d.waitEnded(id, 20*time.Second)
		t.Logf("run %s ended %s %s after it started (%s)", id, r.State, r.FinishedAt.Sub(r.StartedAt.Time).Round(time.Millisecond), r.Error)
		assert.Equal(t, api.RunTimedOut, r.State)
		sh, child, ok := forkPids(d.ctl("logs", id))
		require.True(t, ok, "the shell and child pids in the output of run %s", id)
		t.Cleanup(func() { killGroups([]int{sh}) })
		requireNoSurvivor(t, id, sh, child)
	})
}

// TestLogsFollow: jobctl logs -f, started right after the trigger, prints
// the output of a run as it comes and exits 0 once the run ended; jobctl
// logs afterwards prints the same; an unknown run exits 3.
func TestLogsFollow(t *testing.T) {
	t.Parallel()
	d := startJobd(t, jobdOpts{})
	const g = "lf"
	startExecutorWith(t, d, execOpts{Group: g, Name: "l1"})
	d.ctl("job", "create", "talker", "--group", g, "--manual", "--command",
		`sh -c 'for i in 1 2 3 4 5; do echo "line $i"; sleep 0.3; done'`)
	const want = "line 1\nline 2\nline 3\nline 4\nline 5\n"

	id := d.trigger("talker")[0]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, jobctlBin, "--socket", d.Socket, "logs", id, "-f")
	cmd.Env = cleanEnv()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	start := time.Now()
	require.NoError(t, cmd.Start())
	type line struct {
		text string
		at   time.Time
	}
	var (
		mu    sync.Mutex
		lines []line
	)
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		mu.Lock()
		lines = append(lines, line{sc.Text(), time.Now()})
		mu.Unlock()
	}
	err = cmd.Wait()
	took := time.Since(start)
	require.NoError(t, err, "jobctl logs -f: %s", errb.String())
	r := d.runGet(id)
	var got strings.Builder
	for _, l := range lines {
		got.WriteString(l.text + "\n")
		t.Logf("+%s %s", l.at.Sub(start).Round(time.Millisecond), l.text)
	}
	t.Logf("jobctl logs -f exited 0 after %s; run %s %s, finished %s", took.Round(time.Millisecond), id, r.State, r.FinishedAt.Format("15:04:05.000"))
	assert.Equal(t, want, got.String(), "jobctl logs -f output")
	assert.Empty(t, errb.String(), "stderr of jobctl logs -f for a run that succeeded")
	assert.Equal(t, api.RunSucceeded, r.State)
	if len(lines) > 0 {
		// Followed live: the first line came before the run ended.
		assert.True(t, lines[0].at.Before(r.FinishedAt.Time), "the first line arrived at %s, after the run finished at %s",
			lines[0].at.Format("15:04:05.000"), r.FinishedAt.Format("15:04:05.000"))
	}

	assert.Equal(t, want, d.ctl("logs", id), "jobctl logs after the run")
	for _, args := range [][]string{{"logs", "999999"}, {"logs", "999999", "-f"}} {
		out, errOut, code := d.jobctl(args...)
		assert.Equal(t, 3, code, "jobctl %s: stdout %q stderr %q", strings.Join(args, " "), out, errOut)
	}
}
