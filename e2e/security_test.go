package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// TestExecutorTokens runs jobd with executor_tokens for group secure: an
// executor with a wrong token, or none, is refused and exits soon, saying
// why without quoting a token; one with the right token (--token,
// --token-file or $JOBD_EXECUTOR_TOKEN) registers and runs jobs. No token appears in any log or in
// jobctl's JSON (SPEC §4 Security).
func TestExecutorTokens(t *testing.T) {
	t.Parallel()
	const (
		secret = "s3cret-Tok3n-9f2e"
		wrong  = "wr0ng-Tok3n-77ab"
		g      = "secure"
	)
	d := startJobd(t, jobdOpts{Config: "executor_tokens:\n  secure: \"" + secret + "\"\n"})

	refused := func(name string, args ...string) *Executor {
		t.Helper()
		e := startExecutorWith(t, d, execOpts{Group: g, Name: name, Args: args, NoWait: true, AnyExit: true})
		start := time.Now()
		code, ok := e.proc.wait(15 * time.Second)
		require.True(t, ok, "executor %s with a bad token still runs 15s after it started:\n%s", name, e.Log())
		t.Logf("executor %s exited %d after %s:\n%s", name, code, time.Since(start).Round(time.Millisecond), e.Log())
		assert.NotEqual(t, 0, code, "exit code of executor %s", name)
		return e
	}
	bad := refused("bad", "--token", wrong)
	assert.Contains(t, bad.Log(), "refused the token", "the executor says its token was refused")
	none := refused("none")
	assert.Contains(t, none.Log(), "requires a token", "the executor says a token is needed")

	good := startExecutorWith(t, d, execOpts{Group: g, Name: "good", Args: []string{"--token", secret}})
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(secret+"\n"), 0o600))
	filed := startExecutorWith(t, d, execOpts{Group: g, Name: "filed", Args: []string{"--token-file", tokenFile}})
	envd := startExecutorWith(t, d, execOpts{Group: g, Name: "envd", Env: []string{"JOBD_EXECUTOR_TOKEN=" + secret}})

	d.ctl("job", "create", "guarded", "--group", g, "--manual", "--command", "echo guarded", "--route", api.RouteShardingBroadcast)
	var where []string
	for _, id := range d.trigger("guarded") {
		r := d.waitEnded(id, 15*time.Second)
		assert.Equal(t, api.RunSucceeded, r.State, "run %s on %s: %s", r.ID, r.Executor, r.Error)
		assert.Equal(t, "guarded\n", r.Output, "output of run %s", r.ID)
		where = append(where, r.Executor)
	}
	assert.ElementsMatch(t, []string{"good", "filed", "envd"}, where, "the runs of one broadcast")
	for _, x := range d.executors() {
		if x.Name == "bad" || x.Name == "none" {
			t.Errorf("a refused executor is listed: %s", jsonOf(x))
		}
	}

	// No token in the output of jobctl, nor in any log.
	texts := map[string]string{}
	for _, args := range [][]string{{"executor", "list", "-o", "json"}, {"status", "-o", "json"}, {"job", "get", "guarded", "-o", "json"}} {
		texts["jobctl "+strings.Join(args, " ")] = d.ctl(args...)
	}
	for _, e := range []*Executor{bad, none, good, filed, envd} {
		texts["log of executor "+e.Name] = e.Log()
	}
	jobdLog, err := os.ReadFile(d.logPath(d.starts))
	require.NoError(t, err)
	texts["log of jobd"] = string(jobdLog)
	for what, text := range texts {
		for _, tok := range []string{secret, wrong} {
			assert.NotContains(t, text, tok, "a token in the %s", what)
		}
	}
	t.Logf("jobd log (%d bytes) has no token:\n%s", len(jobdLog), jobdLog)
}
