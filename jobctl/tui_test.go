package jobctl

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/tui"
)

// runTUICLI runs jobctl in process with the dashboard replaced by a
// recorder, on streams that are (tty) or are not terminals.
func runTUICLI(t *testing.T, tty bool, env map[string]string, args ...string) (result, *tuiOptions) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ios := &IOStreams{In: strings.NewReader(""), Out: &stdout, ErrOut: &stderr, IsTTY: tty, CanPrompt: tty}
	var got *tuiOptions
	f := &Factory{IO: ios, GetenvFunc: func(k string) string { return env[k] }, tuiFunc: func(o *tuiOptions) error {
		got = o
		return nil
	}}
	code := execute(t.Context(), f, newCmdRoot(f), args)
	return result{out: stdout.String(), err: stderr.String(), code: code}, got
}

func TestTUI(t *testing.T) {
	t.Parallel()
	t.Run("NoArgsOnTerminal", func(t *testing.T) {
		t.Parallel()
		res, opts := runTUICLI(t, true, nil, "--socket", "/tmp/x.sock")
		require.Equal(t, ExitOK, res.code, res.err)
		require.NotNil(t, opts, "jobctl alone opens the dashboard on a terminal")
		require.Equal(t, "/tmp/x.sock", opts.Client.Target())
		require.False(t, opts.ReadOnly)
		require.False(t, opts.NoColor)
	})
	t.Run("NoArgsElsewhere", func(t *testing.T) {
		t.Parallel()
		res, opts := runTUICLI(t, false, nil)
		require.Equal(t, ExitOK, res.code, res.err)
		require.Nil(t, opts)
		require.Contains(t, res.out, "Usage:")
		require.Contains(t, res.out, "tui")
	})
	t.Run("Command", func(t *testing.T) {
		t.Parallel()
		res, opts := runTUICLI(t, true, nil, "tui", "--read-only", "--view", "executors")
		require.Equal(t, ExitOK, res.code, res.err)
		require.True(t, opts.ReadOnly)
		require.Equal(t, "executors", opts.View)
	})
	t.Run("EveryView", func(t *testing.T) {
		t.Parallel()
		for _, v := range tui.ViewNames() {
			res, opts := runTUICLI(t, true, nil, "tui", "--view", v)
			require.Equal(t, ExitOK, res.code, res.err)
			require.Equal(t, v, opts.View)
		}
	})
	t.Run("NoColorFlag", func(t *testing.T) {
		t.Parallel()
		_, opts := runTUICLI(t, true, nil, "tui", "--no-color")
		require.True(t, opts.NoColor)
	})
	t.Run("NoColorEnv", func(t *testing.T) {
		t.Parallel()
		_, opts := runTUICLI(t, true, map[string]string{EnvNoColor: "0"}, "tui")
		require.True(t, opts.NoColor, "any non-empty NO_COLOR")
	})
	t.Run("NotATerminal", func(t *testing.T) {
		t.Parallel()
		res, opts := runTUICLI(t, false, nil, "tui")
		require.Equal(t, ExitUsage, res.code)
		require.Nil(t, opts)
		require.Contains(t, res.err, "the dashboard needs a terminal")
	})
	t.Run("BadView", func(t *testing.T) {
		t.Parallel()
		res, _ := runTUICLI(t, true, nil, "tui", "--view", "pods")
		require.Equal(t, ExitUsage, res.code)
	})
	t.Run("UnknownCommand", func(t *testing.T) {
		t.Parallel()
		res, opts := runTUICLI(t, true, nil, "frobnicate")
		require.Equal(t, ExitUsage, res.code)
		require.Nil(t, opts)
		require.Contains(t, res.err, `unknown command "frobnicate"`)
	})
}
