package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/daemon"
)

func TestLoadServeConfig_Precedence(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "jobd.yaml")
	require.NoError(t, os.WriteFile(file, []byte("state_dir: /from/file\nlisten: 127.0.0.1:1111\nlog_level: debug\nlook_ahead: 3s\n"), 0o600))

	newFlags := func(args ...string) (*pflag.FlagSet, daemon.Config) {
		var f daemon.Config
		fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		fs.StringVar(&f.StateDir, "state-dir", "", "")
		fs.StringVar(&f.Socket, "socket", "", "")
		fs.StringVar(&f.Listen, "listen", "", "")
		fs.StringVar(&f.LogFormat, "log-format", "", "")
		fs.StringVar(&f.LogLevel, "log-level", "", "")
		fs.StringVar(&f.TLSCert, "tls-cert", "", "")
		fs.StringVar(&f.TLSKey, "tls-key", "", "")
		require.NoError(t, fs.Parse(args))
		return fs, f
	}

	t.Run("Defaults", func(t *testing.T) {
		t.Parallel()
		fs, f := newFlags()
		cfg, err := loadServeConfig("", nil, fs, f)
		require.NoError(t, err)
		require.Equal(t, "/var/lib/jobd", cfg.StateDir)
		require.Equal(t, "127.0.0.1:7070", cfg.Listen)
		require.Equal(t, 5*time.Second, cfg.LookAhead)
	})
	t.Run("FileOverDefaults", func(t *testing.T) {
		t.Parallel()
		fs, f := newFlags()
		cfg, err := loadServeConfig(file, nil, fs, f)
		require.NoError(t, err)
		require.Equal(t, "/from/file", cfg.StateDir)
		require.Equal(t, "debug", cfg.LogLevel)
		require.Equal(t, 3*time.Second, cfg.LookAhead)
	})
	t.Run("EnvOverFile", func(t *testing.T) {
		t.Parallel()
		fs, f := newFlags()
		cfg, err := loadServeConfig(file, []string{"JOBD_STATE_DIR=/from/env", "JOBD_LOOK_AHEAD=2s", "OTHER=x"}, fs, f)
		require.NoError(t, err)
		require.Equal(t, "/from/env", cfg.StateDir)
		require.Equal(t, 2*time.Second, cfg.LookAhead)
		require.Equal(t, "127.0.0.1:1111", cfg.Listen, "file value kept where env says nothing")
	})
	t.Run("FlagsOverEnv", func(t *testing.T) {
		t.Parallel()
		fs, f := newFlags("--state-dir", "/from/flag", "--listen", "")
		cfg, err := loadServeConfig(file, []string{"JOBD_STATE_DIR=/from/env"}, fs, f)
		require.NoError(t, err)
		require.Equal(t, "/from/flag", cfg.StateDir)
		require.Equal(t, "", cfg.Listen, "an explicit empty flag disables the TCP listener")
	})
	t.Run("BadValuesNameTheField", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			env   []string
			field string
		}{
			{[]string{"JOBD_LOOK_AHEAD=soon"}, "JOBD_LOOK_AHEAD"},
			{[]string{"JOBD_LOG_FORMAT=xml"}, "log_format"},
			{[]string{"JOBD_LISTEN=nope"}, "listen"},
			{[]string{"JOBD_SOCKET_MODE=999"}, "socket_mode"},
			{[]string{"JOBD_HEARTBEAT_INTERVAL=1ms"}, "heartbeat_interval"},
		} {
			fs, f := newFlags()
			_, err := loadServeConfig("", tc.env, fs, f)
			require.ErrorContains(t, err, tc.field)
		}
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		require.NoError(t, os.WriteFile(bad, []byte("stat_dir: /typo\n"), 0o600))
		fs, f := newFlags()
		_, err := loadServeConfig(bad, nil, fs, f)
		require.ErrorContains(t, err, "stat_dir", "unknown keys are errors")
	})
}

// TestServe_NotifiesServiceManager runs jobd serve in-process with a
// NOTIFY_SOCKET, as systemd would, and checks READY=1, WATCHDOG=1 and
// STOPPING=1 arrive, and that the run ends 0.
func TestServe_NotifiesServiceManager(t *testing.T) {
	// Not parallel: it sets process environment variables.
	tmp, err := os.MkdirTemp("", "jd")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	notify := filepath.Join(tmp, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: notify, Net: "unixgram"})
	require.NoError(t, err)
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", notify)
	t.Setenv("WATCHDOG_USEC", "200000")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--state-dir", filepath.Join(tmp, "state"),
			"--socket", filepath.Join(tmp, "s"), "--listen", "127.0.0.1:0"}, &bytes.Buffer{}, &stderr)
	}()

	seen := map[string]bool{}
	read := func(want string) {
		t.Helper()
		buf := make([]byte, 256)
		deadline := time.Now().Add(20 * time.Second)
		for !seen[want] {
			require.NoError(t, conn.SetReadDeadline(deadline))
			n, err := conn.Read(buf)
			require.NoError(t, err, "waiting for %s; jobd said: %s", want, stderr.String())
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				seen[line] = true
			}
		}
	}
	read("READY=1")
	read("WATCHDOG=1")
	cancel()
	read("STOPPING=1")
	select {
	case code := <-done:
		require.Equal(t, 0, code, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("jobd serve did not return after its context ended")
	}
}
