package executor

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// crashHelperEnv, when set in the environment of the test binary, makes
// TestAgent_SpoolSurvivesKill run an agent for the parent test to kill.
const crashHelperEnv = "EXECUTOR_TEST_CRASH_HELPER"

// runCrashHelper runs an agent against the server and state dir given in
// the environment until it is killed. Its handler "work" waits for the
// release file, then writes output and succeeds.
func runCrashHelper() {
	server, stateDir, release := os.Getenv("HELPER_SERVER"), os.Getenv("HELPER_STATE_DIR"), os.Getenv("HELPER_RELEASE")
	a, err := New(Config{Servers: []string{server}, Group: "test", Name: "agent-1", Token: "test-token",
		StateDir: stateDir, PollWait: 2 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	a.Handle("work", func(ctx context.Context, r *Run) error {
		for {
			if _, err := os.Stat(release); err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return context.Cause(ctx)
			case <-time.After(10 * time.Millisecond):
			}
		}
		fmt.Fprintf(r.Log, "output of %s\n", r.ID)
		return nil
	})
	_ = a.Run(context.Background())
	os.Exit(0)
}

// spoolHolds reports whether the spool files of stateDir hold s.
func spoolHolds(t *testing.T, stateDir, s string) bool {
	t.Helper()
	for _, f := range spoolFiles(t, stateDir) {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

func TestAgent_SpoolSurvivesKill(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "" {
		runCrashHelper()
		return
	}
	t.Parallel()
	f := newFakeJobd(t)
	srv := f.servers[0]
	stateDir := t.TempDir()
	release := filepath.Join(t.TempDir(), "release")

	helper := exec.Command(os.Args[0], "-test.run=^TestAgent_SpoolSurvivesKill$")
	helper.Env = append(os.Environ(), crashHelperEnv+"=1",
		"HELPER_SERVER="+srv.srv.URL, "HELPER_STATE_DIR="+stateDir, "HELPER_RELEASE="+release)
	helper.Stderr = &testWriter{t: t}
	require.NoError(t, helper.Start())
	exited := make(chan error, 1)
	go func() { exited <- helper.Wait() }()
	t.Cleanup(func() {
		_ = helper.Process.Kill()
		<-exited
	})

	f.assign(handlerJob("r1", "work"))
	f.waitStarted("r1")
	f.setDown(srv, true)
	require.NoError(t, os.WriteFile(release, nil, 0o600))
	// Once the result is in the spool, the run is over for the agent: kill
	// it there, with no chance to flush or deregister.
	require.Eventually(t, func() bool { return spoolHolds(t, stateDir, `"type":"result"`) }, waitTimeout, 5*time.Millisecond)
	require.NoError(t, helper.Process.Kill())
	<-exited
	exited <- nil // for the cleanup

	f.setDown(srv, false)
	b := setupWith(t, f, func(c *Config, _ *fakeJobd) { c.StateDir = stateDir })
	res := b.jobd.result("r1")
	require.Equal(t, api.RunSucceeded, res.State)
	require.Equal(t, "output of r1\n", b.jobd.log("r1"))
	reps := b.jobd.runReports("r1")
	for i, rep := range reps {
		require.Equal(t, int64(i+1), rep.Seq, "stored once each, in order")
	}
	require.Eventually(t, func() bool { return len(spoolFiles(t, stateDir)) == 0 }, waitTimeout, 5*time.Millisecond)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Zero(t, f.deregistered, "the killed agent never deregistered")
	require.Contains(t, f.registers[len(f.registers)-1].Running, "r1", "the new agent claims the spooled run")
}
