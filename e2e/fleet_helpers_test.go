package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// Helpers of the fleet tests (routing, failure detection, quarantine,
// retries, kills, tokens, spool).

// trigger fires job now (jobctl job trigger) and returns the ids of the
// runs it created.
func (d *Jobd) trigger(job string, args ...string) []string {
	d.t.Helper()
	out := d.ctl(append([]string{"job", "trigger", job}, args...)...)
	ids := strings.Fields(out)
	require.NotEmpty(d.t, ids, "job trigger %s printed no run id", job)
	return ids
}

// runGet returns run id (jobctl run get -o json).
func (d *Jobd) runGet(id string) api.Run {
	d.t.Helper()
	var r api.Run
	d.ctlJSON(&r, "run", "get", id)
	return r
}

// waitRun polls run id every 20ms until cond holds, and returns it; it
// fails the test after timeout.
func (d *Jobd) waitRun(id string, timeout time.Duration, what string, cond func(r api.Run) bool) api.Run {
	d.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		r := d.runGet(id)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			d.t.Fatalf("run %s of %s is %s (executor %q, error %q), not %s within %s", id, r.Job, r.State, r.Executor, r.Error, what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEnded waits until run id is over and returns it.
func (d *Jobd) waitEnded(id string, timeout time.Duration) api.Run {
	d.t.Helper()
	return d.waitRun(id, timeout, "ended", func(r api.Run) bool { return api.RunEnded(r.State) })
}

// waitRunning waits until run id runs and returns it.
func (d *Jobd) waitRunning(id string, timeout time.Duration) api.Run {
	d.t.Helper()
	return d.waitRun(id, timeout, "running", func(r api.Run) bool {
		if api.RunEnded(r.State) {
			d.t.Fatalf("run %s ended %s (%s) while waiting for it to run", id, r.State, r.Error)
		}
		return r.State == api.RunRunning
	})
}

// executors lists the executors (jobctl executor list -o json).
func (d *Jobd) executors() []api.Executor {
	d.t.Helper()
	var xs []api.Executor
	d.ctlJSON(&xs, "executor", "list")
	return xs
}

// executorNamed returns executor name of group as jobd lists it.
func (d *Jobd) executorNamed(group, name string) (api.Executor, bool) {
	d.t.Helper()
	for _, x := range d.executors() {
		if x.Group == group && x.Name == name {
			return x, true
		}
	}
	return api.Executor{}, false
}

// waitIdle waits until no executor of group holds a run: a run jobd
// stored as ended frees its slot a moment after the commit.
func (d *Jobd) waitIdle(group string) {
	d.t.Helper()
	eventually(d.t, 10*time.Second, func() bool {
		for _, x := range d.executors() {
			if x.Group == group && x.Running > 0 {
				return false
			}
		}
		return true
	}, "executors of group %s idle", group)
}

// procGone reports whether pid no longer runs: /proc/PID is absent, or it
// is a zombie (an orphan nobody reaps counts as gone).
func procGone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return true
	}
	return b[i+2] == 'Z' || b[i+2] == 'X'
}

// procDesc describes pid for a failure message.
func procDesc(pid int) string {
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return strings.TrimSpace(string(stat)) + " cmdline=" + strings.ReplaceAll(string(cmdline), "\x00", " ")
}

// childPIDs returns the live children of pid.
func childPIDs(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid && !procGone(child) {
			out = append(out, child)
		}
	}
	return out
}

// killGroups sends SIGKILL to the process groups led by pids (the runs an
// executor killed with -9 left behind).
func killGroups(pids []int) {
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}

// executorsOf returns the executor names of runs, in order.
func executorsOf(rs []api.Run) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Executor
	}
	return out
}

// countOf counts the occurrences of each string.
func countOf(xs []string) map[string]int {
	m := map[string]int{}
	for _, x := range xs {
		m[x]++
	}
	return m
}

// durStats returns min, median and max of ds.
func durStats(ds []time.Duration) (lo, med, hi time.Duration) {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

// jsonOf is v as indented JSON, for messages.
func jsonOf(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// withT returns d driven by t (a subtest's), so that its helpers fail t
// rather than the parent test.
func (d *Jobd) withT(t *testing.T) *Jobd {
	c := *d
	c.t = t
	return &c
}
