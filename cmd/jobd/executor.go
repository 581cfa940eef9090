package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/executor"
)

func newExecutorCmd(stderr io.Writer) *cobra.Command {
	var (
		servers  string
		labels   []string
		cfg      executor.Config
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "executor --server URL[,URL...] --group G",
		Short: "Run an executor that connects to jobd and runs jobs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if v := os.Getenv("JOBD_EXECUTOR_TOKEN"); v != "" && cfg.Token == "" {
				cfg.Token = v
			}
			for _, s := range strings.Split(servers, ",") {
				if s = strings.TrimSpace(s); s != "" {
					cfg.Servers = append(cfg.Servers, s)
				}
			}
			cfg.Labels = map[string]string{}
			for _, l := range labels {
				k, v, ok := strings.Cut(l, "=")
				if !ok || k == "" {
					return usageError{fmt.Errorf("--label %q: want K=V", l)}
				}
				cfg.Labels[k] = v
			}
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return usageError{fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)}
			}
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
			cfg.Version = version
			if err := cfg.Validate(); err != nil {
				return usageError{err}
			}
			a, err := executor.New(cfg)
			if err != nil {
				return usageError{err}
			}
			return a.Run(cmd.Context())
		},
	}
	f := cmd.Flags()
	f.StringVar(&servers, "server", "", "jobd URL(s), comma-separated, tried in order (e.g. http://127.0.0.1:7070)")
	f.StringVar(&cfg.Group, "group", "", "executor group to join (created on first registration)")
	f.StringVar(&cfg.Name, "name", "", "executor name, unique in its group (default: host name)")
	f.StringArrayVar(&labels, "label", nil, "label K=V (repeatable)")
	f.StringVar(&cfg.Token, "token", "", "group token (or JOBD_EXECUTOR_TOKEN)")
	f.IntVar(&cfg.Slots, "slots", 4, "runs executed at once")
	f.StringVar(&cfg.StateDir, "state-dir", "", "directory for the executor's files")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn, error")
	return cmd
}
