package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/executor"
)

// parseExecutorFlags parses args as `jobd executor` does and builds its
// config with env.
func parseExecutorFlags(t *testing.T, env executorEnv, args ...string) (executor.Config, error) {
	t.Helper()
	var opts executorOptions
	fs := pflag.NewFlagSet("executor", pflag.ContinueOnError)
	opts.bind(fs)
	require.NoError(t, fs.Parse(args))
	return opts.config(fs, env)
}

func testEnv(vars map[string]string) executorEnv {
	return executorEnv{
		getenv:  func(k string) string { return vars[k] },
		euid:    1000,
		homeDir: func() (string, error) { return "/home/ops", nil },
	}
}

func TestExecutorConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("  file-token \nsecond line\n"), 0o600))
	emptyFile := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(emptyFile, []byte("\n"), 0o600))
	base := []string{"--server", "https://a:7070, https://b:7070", "--group", "g"}

	t.Run("Flags", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(nil), append(base,
			"--name", "n1", "--label", "region=eu", "--slots", "8", "--ca-file", "/etc/jobd/ca.pem",
			"--state-dir", "/srv/exec", "--spool-max", "64MiB")...)
		require.NoError(t, err)
		require.Equal(t, []string{"https://a:7070", "https://b:7070"}, cfg.Servers)
		require.Equal(t, "g", cfg.Group)
		require.Equal(t, "n1", cfg.Name)
		require.Equal(t, map[string]string{"region": "eu"}, cfg.Labels)
		require.Equal(t, 8, cfg.Slots)
		require.Equal(t, "/etc/jobd/ca.pem", cfg.CAFile)
		require.Equal(t, "/srv/exec", cfg.StateDir)
		require.Equal(t, int64(64<<20), cfg.SpoolMaxBytes)
		require.Empty(t, cfg.Token)
	})
	t.Run("ShutdownGrace", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(nil), base...)
		require.NoError(t, err)
		require.Equal(t, executor.DefaultShutdownGrace, cfg.ShutdownGrace)
		cfg, err = parseExecutorFlags(t, testEnv(nil), append(base, "--shutdown-grace", "80s")...)
		require.NoError(t, err)
		require.Equal(t, 80*time.Second, cfg.ShutdownGrace)
	})
	t.Run("TokenFile", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(map[string]string{"JOBD_EXECUTOR_TOKEN": "env-token"}),
			append(base, "--token-file", tokenFile)...)
		require.NoError(t, err)
		require.Equal(t, "file-token", cfg.Token, "first line, trimmed, over the environment")
	})
	t.Run("TokenFlag", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(map[string]string{"JOBD_EXECUTOR_TOKEN": "env-token"}),
			append(base, "--token", "flag-token")...)
		require.NoError(t, err)
		require.Equal(t, "flag-token", cfg.Token)
	})
	t.Run("TokenEnv", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(map[string]string{"JOBD_EXECUTOR_TOKEN": "env-token"}), base...)
		require.NoError(t, err)
		require.Equal(t, "env-token", cfg.Token)
	})
	t.Run("StateDirEmptyMeansNoSpool", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(nil), append(base, "--state-dir", "")...)
		require.NoError(t, err)
		require.Empty(t, cfg.StateDir)
	})
	t.Run("StateDirDefault", func(t *testing.T) {
		t.Parallel()
		cfg, err := parseExecutorFlags(t, testEnv(map[string]string{"STATE_DIRECTORY": "/var/lib/jobd-executor"}), base...)
		require.NoError(t, err)
		require.Equal(t, "/var/lib/jobd-executor", cfg.StateDir)
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"TokenAndTokenFile", []string{"--token", "x", "--token-file", tokenFile}, "--token and --token-file: give one of them"},
		{"TokenFileMissing", []string{"--token-file", filepath.Join(dir, "nope")}, "--token-file: open " + filepath.Join(dir, "nope") + ": no such file or directory"},
		{"TokenFileEmpty", []string{"--token-file", emptyFile}, "--token-file " + emptyFile + ": no token on its first line"},
		{"BadLabel", []string{"--label", "novalue"}, `--label "novalue": want K=V`},
		{"BadSpoolMax", []string{"--spool-max", "lots"}, `--spool-max "lots": unknown unit "lots": want a whole number of B, KiB, MiB, GiB or TiB`},
		{"Invalid", []string{"--slots", "-1"}, "slots: -1: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseExecutorFlags(t, testEnv(nil), append(base, tc.args...)...)
			require.EqualError(t, err, tc.want)
		})
	}
}

func TestDefaultExecutorStateDir(t *testing.T) {
	t.Parallel()
	noHome := func() (string, error) { return "", errors.New("no user") }
	for _, tc := range []struct {
		name string
		vars map[string]string
		euid int
		home func() (string, error)
		want string
		err  string
	}{
		{"Systemd", map[string]string{"STATE_DIRECTORY": "/var/lib/a:/var/lib/b", "XDG_STATE_HOME": "/x"}, 0, nil, "/var/lib/a", ""},
		{"Root", map[string]string{"XDG_STATE_HOME": "/x"}, 0, nil, "/var/lib/jobd-executor", ""},
		{"XDG", map[string]string{"XDG_STATE_HOME": "/home/ops/.state"}, 1000, nil, "/home/ops/.state/jobd-executor", ""},
		{"RelativeXDGIgnored", map[string]string{"XDG_STATE_HOME": "state"}, 1000, nil, "/home/ops/.local/state/jobd-executor", ""},
		{"Home", nil, 1000, nil, "/home/ops/.local/state/jobd-executor", ""},
		{"NoHome", nil, 1000, noHome, "", "no default state dir (no user): give --state-dir"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := testEnv(tc.vars)
			env.euid = tc.euid
			if tc.home != nil {
				env.homeDir = tc.home
			}
			got, err := defaultExecutorStateDir(env)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{
		"1024": 1024, "10B": 10, "512KiB": 512 << 10, "64MiB": 64 << 20, "1GiB": 1 << 30,
		"2g": 2 << 30, "3 MB": 3 << 20, "1TiB": 1 << 40,
	} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "-1GiB", "GiB", "1.5GiB", "1PiB", "99999999999TiB", "lots"} {
		_, err := parseSize(in)
		require.Error(t, err, in)
	}
}

func TestExecutorCmd_TokenRefused(t *testing.T) {
	t.Parallel()
	const token = "tok-3f2a9c1d7e"
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid token"})
	}))
	t.Cleanup(srv.Close)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte(token+"\n"), 0o600))

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"executor", "--server", srv.URL, "--group", "g",
		"--token-file", tokenFile, "--state-dir", t.TempDir(), "--log-level", "debug"}, &stdout, &stderr)
	require.Equal(t, 1, code, "stderr: %s", stderr.String())
	require.Equal(t, "Bearer "+token, gotAuth)
	require.Contains(t, stderr.String(), `jobd: register: jobd refused the token for group "g": jobd answered 401: invalid token`)
	require.NotContains(t, stderr.String(), token)
}

func TestExecutorCmd_UsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--group", "g"}, "servers: at least one jobd URL is required"},
		{[]string{"--server", "http://127.0.0.1:1", "--group", "g", "--state-dir", "", "--ca-file", "/nonexistent/ca.pem"}, "ca_file: open /nonexistent/ca.pem"},
		{[]string{"--server", "http://127.0.0.1:1", "--group", "g", "--log-level", "loud"}, `--log-level "loud"`},
		{[]string{"--server", "http://127.0.0.1:1", "--group", "g", "--shutdown-grace", "0s"}, "--shutdown-grace 0s: must be positive"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"executor"}, tc.args...), &stdout, &stderr)
		require.Equal(t, 2, code, "%v: %s", tc.args, stderr.String())
		require.True(t, strings.Contains(stderr.String(), tc.want), "%v: %s", tc.args, stderr.String())
	}
}

func TestWatchStopSignals(t *testing.T) {
	t.Parallel()
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	hardCtx, cancelHard := context.WithCancel(context.Background())
	defer cancelHard()
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		watchStopSignals(sigs, done, cancelRun, cancelHard, slog.New(slog.DiscardHandler))
	}()

	sigs <- syscall.SIGTERM
	<-runCtx.Done()
	require.NoError(t, hardCtx.Err(), "the first signal drains")
	sigs <- syscall.SIGINT
	<-hardCtx.Done()
	<-returned
}

func TestExecutorCmd_DrainCommandExits0(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls = append(calls, r.URL.Path)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/api/v1/executor/register":
			_ = json.NewEncoder(w).Encode(api.RegisterResponse{ID: "ex-1", HeartbeatInterval: api.Duration(5 * time.Second)})
		case "/api/v1/executor/ex-1/poll":
			_ = json.NewEncoder(w).Encode(api.PollResponse{Commands: []api.Command{{Type: api.CommandDrain}}})
		default:
			_ = json.NewEncoder(w).Encode(struct{}{})
		}
	}))
	t.Cleanup(srv.Close)

	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"executor", "--server", srv.URL, "--group", "g",
		"--state-dir", t.TempDir()}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	require.Contains(t, stderr.String(), "drained")
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"/api/v1/executor/register", "/api/v1/executor/ex-1/poll", "/api/v1/executor/ex-1/deregister"}, calls)
}
