package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobd/jobd/executor"
)

// executorOptions are the flags of `jobd executor`.
type executorOptions struct {
	servers   string
	group     string
	name      string
	labels    []string
	token     string
	tokenFile string
	caFile    string
	slots     int
	stateDir  string
	spoolMax  string
	logLevel  string
	// shutdownGrace bounds the drain on SIGTERM.
	shutdownGrace time.Duration
}

// executorEnv is what `jobd executor` reads from its process: environment
// variables, the effective user and the home directory.
type executorEnv struct {
	getenv  func(string) string
	euid    int
	homeDir func() (string, error)
}

func newExecutorCmd(stderr io.Writer) *cobra.Command {
	var opts executorOptions
	cmd := &cobra.Command{
		Use:   "executor --server URL[,URL...] --group G",
		Short: "Run an executor that connects to jobd and runs jobs",
		Long: `Run an executor that connects to jobd and runs jobs.

The executor sends to the last jobd of --server that answered and fails over
to the others in order. When none answers, it spools its reports to
STATE_DIR/spool and sends them, in order, once one does; a stopped executor
sends what is left there when it starts again on the same --state-dir.

The state dir defaults to $STATE_DIRECTORY (systemd's StateDirectory=), else
/var/lib/jobd-executor for root, else $XDG_STATE_HOME/jobd-executor or
~/.local/state/jobd-executor. --state-dir '' keeps reports in memory only.

The token is read from --token-file (its first line), --token or
JOBD_EXECUTOR_TOKEN; prefer the file or the variable, since other users can
read a command line (under systemd: LoadCredential=token:/etc/jobd/token and
--token-file ${CREDENTIALS_DIRECTORY}/token).

SIGTERM or SIGINT drains the executor: it asks jobd to route no more runs to
it, starts nothing new, waits up to --shutdown-grace for its running runs
(then kills the rest and reports them killed), delivers every report,
deregisters and exits 0. Keep --shutdown-grace below systemd's
TimeoutStopSec, with room for the final report delivery. A second signal
stops hard: runs are killed at once (SIGTERM to their process groups, then
SIGKILL), and the executor reports what it can within about 2 seconds and
exits. jobd can also drain it (jobctl executor drain ID): it then finishes
its runs, delivers its reports, deregisters and exits 0.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			env := executorEnv{getenv: os.Getenv, euid: os.Geteuid(), homeDir: os.UserHomeDir}
			cfg, err := opts.config(cmd.Flags(), env)
			if err != nil {
				return usageError{err}
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(opts.logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", opts.logLevel)}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			cfg.Version = version
			a, err := executor.New(cfg)
			if err != nil {
				var ce *executor.ConfigError
				if errors.As(err, &ce) {
					return usageError{err}
				}
				return err
			}
			// The first signal drains (Run's context); main's own
			// signal.NotifyContext cancels the parent on it too. A second one
			// stops hard.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			sigs := make(chan os.Signal, 2)
			signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sigs)
			hard, stopHard := context.WithCancel(context.Background())
			defer stopHard()
			defer context.AfterFunc(hard, a.Abort)()
			done := make(chan struct{})
			defer close(done)
			go watchStopSignals(sigs, done, cancel, stopHard, cfg.Logger)
			return a.Run(ctx)
		},
	}
	opts.bind(cmd.Flags())
	return cmd
}

// bind defines the flags of `jobd executor` on f, stored in o.
func (o *executorOptions) bind(f *pflag.FlagSet) {
	f.StringVar(&o.servers, "server", "", "jobd URL(s), comma-separated, tried in order (e.g. https://jobd.internal:7070)")
	f.StringVar(&o.group, "group", "", "executor group to join (created on first registration)")
	f.StringVar(&o.name, "name", "", "executor name, unique in its group (default: host name)")
	f.StringArrayVar(&o.labels, "label", nil, "label K=V (repeatable)")
	f.StringVar(&o.token, "token", "", "group token (visible to other users: prefer --token-file or JOBD_EXECUTOR_TOKEN)")
	f.StringVar(&o.tokenFile, "token-file", "", "file whose first line is the group token")
	f.StringVar(&o.caFile, "ca-file", "", "PEM bundle of CA certificates trusted, with the system's, for https:// servers")
	f.IntVar(&o.slots, "slots", executor.DefaultSlots, "runs executed at once")
	f.StringVar(&o.stateDir, "state-dir", "", "directory for the report spool and scripts (default: see above)")
	f.StringVar(&o.spoolMax, "spool-max", "1GiB", "most disk space the report spool takes (e.g. 512MiB, 2GiB)")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	f.DurationVar(&o.shutdownGrace, "shutdown-grace", executor.DefaultShutdownGrace,
		"on SIGTERM, how long running runs may finish before they are killed (keep it below systemd's TimeoutStopSec)")
}

// watchStopSignals turns the stop signals into stops until done is closed:
// the first one drains (cancelRun), the second stops hard (cancelHard).
func watchStopSignals(sigs <-chan os.Signal, done <-chan struct{}, cancelRun, cancelHard context.CancelFunc, log *slog.Logger) {
	n := 0
	for {
		select {
		case sig := <-sigs:
			n++
			if n == 1 {
				log.Info("signal received: draining, then exiting; send it again to stop at once", "signal", sig.String())
				cancelRun()
				continue
			}
			log.Warn("second signal received: killing runs and exiting", "signal", sig.String())
			cancelHard()
			return
		case <-done:
			return
		}
	}
}

// config builds the executor config from the flags set on fs (whose values
// are in o) and env, and validates it. Errors never quote the token.
func (o *executorOptions) config(fs *pflag.FlagSet, env executorEnv) (executor.Config, error) {
	cfg := executor.Config{
		Group:  o.group,
		Name:   o.name,
		Slots:  o.slots,
		CAFile: o.caFile,
	}
	for _, s := range strings.Split(o.servers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			cfg.Servers = append(cfg.Servers, s)
		}
	}
	if len(o.labels) > 0 {
		cfg.Labels = map[string]string{}
	}
	for _, l := range o.labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return cfg, fmt.Errorf("--label %q: want K=V", l)
		}
		cfg.Labels[k] = v
	}

	switch {
	case o.tokenFile != "" && fs.Changed("token"):
		return cfg, errors.New("--token and --token-file: give one of them")
	case o.tokenFile != "":
		tok, err := readTokenFile(o.tokenFile)
		if err != nil {
			return cfg, err
		}
		cfg.Token = tok
	case fs.Changed("token"):
		cfg.Token = o.token
	default:
		cfg.Token = env.getenv("JOBD_EXECUTOR_TOKEN")
	}

	cfg.StateDir = o.stateDir
	if !fs.Changed("state-dir") {
		dir, err := defaultExecutorStateDir(env)
		if err != nil {
			return cfg, err
		}
		cfg.StateDir = dir
	}
	spoolMax, err := parseSize(o.spoolMax)
	if err != nil {
		return cfg, fmt.Errorf("--spool-max %q: %w", o.spoolMax, err)
	}
	cfg.SpoolMaxBytes = spoolMax
	if o.shutdownGrace <= 0 {
		return cfg, fmt.Errorf("--shutdown-grace %s: must be positive", o.shutdownGrace)
	}
	cfg.ShutdownGrace = o.shutdownGrace
	return cfg, cfg.Validate()
}

// readTokenFile returns the first line of path, trimmed. Its errors name
// the file, never its content.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(io.LimitReader(f, 64<<10)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("--token-file %s: %w", path, err)
	}
	tok := strings.TrimSpace(line)
	if tok == "" {
		return "", fmt.Errorf("--token-file %s: no token on its first line", path)
	}
	return tok, nil
}

// defaultExecutorStateDir is the state dir when --state-dir is not given:
// the first directory of $STATE_DIRECTORY (set by systemd for
// StateDirectory=), else /var/lib/jobd-executor for root, else
// $XDG_STATE_HOME/jobd-executor (when absolute, as the XDG spec requires)
// or ~/.local/state/jobd-executor.
func defaultExecutorStateDir(env executorEnv) (string, error) {
	if v := env.getenv("STATE_DIRECTORY"); v != "" {
		first, _, _ := strings.Cut(v, ":")
		return first, nil
	}
	if env.euid == 0 {
		return "/var/lib/jobd-executor", nil
	}
	if v := env.getenv("XDG_STATE_HOME"); filepath.IsAbs(v) {
		return filepath.Join(v, "jobd-executor"), nil
	}
	home, err := env.homeDir()
	if err == nil && home == "" {
		err = errors.New("$HOME is not set")
	}
	if err != nil {
		return "", fmt.Errorf("no default state dir (%w): give --state-dir", err)
	}
	return filepath.Join(home, ".local", "state", "jobd-executor"), nil
}

// parseSize parses a size in bytes with an optional binary unit: 1048576,
// 512KiB, 64MiB, 1GiB, 2TiB (K, M, G, T and KB, MB, GB, TB mean the same).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if i < 0 {
		i = len(s)
	}
	unit := strings.ToUpper(strings.TrimSpace(s[i:]))
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KB": 10, "KIB": 10, "M": 20, "MB": 20, "MIB": 20,
		"G": 30, "GB": 30, "GIB": 30, "T": 40, "TB": 40, "TIB": 40}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: want a whole number of B, KiB, MiB, GiB or TiB", s[i:])
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || n < 1 {
		return 0, errors.New("want a positive size such as 512MiB or 1GiB")
	}
	if n > (1<<62)>>sh {
		return 0, errors.New("too large")
	}
	return n << sh, nil
}
