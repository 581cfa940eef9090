package e2e

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestCrashExactlyOnce kills a loaded jobd with SIGKILL at random moments
// and restarts it on the same state, twice, then checks in the store that
// every scheduled time of every job was fired exactly once or recorded as
// missed exactly once, and that every run belongs to a fired trigger
// (SPEC §4: "No trigger is ever fired twice; none disappears without a
// record").
func TestCrashExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts jobd for ~40s; skipped with -short")
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	for round := 1; round <= 2; round++ {
		t.Run(fmt.Sprintf("Round%d", round), func(t *testing.T) { crashRound(t, rng) })
	}
}

// crashJobs writes an apply file of n jobs: every 1s (every 2s for one in
// ten), misfire skip, fire_once and catch_up in turn, threshold 1s.
func crashJobs(t *testing.T, n int) (path string, names []string) {
	var b strings.Builder
	b.WriteString("jobs:\n")
	policies := []string{"skip", "fire_once", "catch_up"}
	for i := range n {
		name := fmt.Sprintf("c%02d", i)
		names = append(names, name)
		every := "1s"
		if i%10 == 9 {
			every = "2s"
		}
		fmt.Fprintf(&b, "  - name: %s\n    group: crash\n    every: %s\n    misfire: %s\n    misfire_threshold: 1s\n    command: [\"true\"]\n",
			name, every, policies[i%len(policies)])
	}
	path = filepath.Join(t.TempDir(), "crash.yaml")
	require.NoError(t, os.WriteFile(path, []byte(b.String()), 0o644))
	return path, names
}

func crashRound(t *testing.T, rng *rand.Rand) {
	d := startJobd(t, jobdOpts{})
	ex := startExecutor(t, d, "crash", "crash-1", 32)
	file, names := crashJobs(t, 60)
	d.ctl("apply", "-f", file)

	crash := func(i int) {
		// Up to a second of jitter on top of 4s, so the kill lands at a
		// different point of the fire/materialise/report cycle each time.
		jitter := time.Duration(rng.Int64N(int64(time.Second)))
		time.Sleep(4*time.Second + jitter)
		at := time.Now()
		d.Kill9()
		t.Logf("kill -9 #%d at %s (jitter %s)", i, at.Format("15:04:05.000"), jitter.Round(time.Millisecond))
		time.Sleep(3 * time.Second)
		d.Start()
		t.Logf("restarted #%d at %s", i, time.Now().Format("15:04:05.000"))
	}
	crash(1)
	crash(2)
	time.Sleep(4 * time.Second)
	// The executor first, while jobd still takes its reports and
	// deregistration; then jobd, cleanly.
	ex.Stop()
	d.Stop()

	st := openStore(t, d)
	var fired, runs, pending int
	missed := map[string]int{}
	states := map[string]int{}
	for _, name := range names {
		a := auditJob(t, st, name)
		a.requireClean(t)
		fired += len(a.Fired)
		pending += len(a.Pending)
		for _, reason := range a.Missed {
			missed[reason]++
		}
		for _, rs := range a.Runs {
			for _, r := range rs {
				runs++
				states[r.State]++
			}
		}
		require.NotEmpty(t, a.Fired, "job %s never fired", name)
	}
	active, err := st.RunsActive(context.Background())
	require.NoError(t, err)
	t.Logf("summary: %d jobs, %d fired, missed %v, %d pending at stop, %d runs %v, %d still active",
		len(names), fired, fmtCounts(missed), pending, runs, fmtCounts(states), len(active))
	for _, r := range active {
		t.Logf("run %d of %s (%s, scheduled %s) is still %s at the end", r.ID, r.JobName, r.ExecutorName,
			r.ScheduledAt.Format("15:04:05.000"), r.State)
	}
}

func fmtCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}
