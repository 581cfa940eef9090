package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

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
--token-file ${CREDENTIALS_DIRECTORY}/token).`,
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
			return a.Run(cmd.Context())
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
