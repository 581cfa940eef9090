package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	_ "net/http/pprof" // served only when JOBD_PPROF_ADDR is set
	"os"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/daemon"
	"github.com/jobd/jobd/store/sqlite"
)

func newServeCmd(stderr io.Writer) *cobra.Command {
	var configFile string
	var flags daemon.Config
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the scheduler daemon",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadServeConfig(configFile, os.Environ(), cmd.Flags(), flags)
			if err != nil {
				return usageError{err}
			}
			return serve(cmd.Context(), cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file")
	f.StringVar(&flags.StateDir, "state-dir", "", "directory for the database and logs (default /var/lib/jobd)")
	f.StringVar(&flags.Socket, "socket", "", "admin unix socket (default "+api.DefaultSocket()+")")
	f.StringVar(&flags.Listen, "listen", "", "TCP address for executors (default 127.0.0.1:7070; empty disables)")
	f.StringVar(&flags.LogFormat, "log-format", "", "log format: text or json")
	f.StringVar(&flags.LogLevel, "log-level", "", "log level: debug, info, warn, error")
	f.StringVar(&flags.TLSCert, "tls-cert", "", "PEM certificate: serve the executor listener over TLS")
	f.StringVar(&flags.TLSKey, "tls-key", "", "PEM private key for --tls-cert")
	return cmd
}

// loadServeConfig applies the configuration sources in precedence order:
// defaults < the config file < JOBD_* variables of environ < the flags set
// on fs (whose values are in flags).
func loadServeConfig(configFile string, environ []string, fs *pflag.FlagSet, flags daemon.Config) (daemon.Config, error) {
	cfg := daemon.DefaultConfig()
	cfg.Socket = api.DefaultSocket()
	if configFile != "" {
		if err := cfg.ParseFile(configFile); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ApplyEnv(environ); err != nil {
		return cfg, err
	}
	if fs.Changed("state-dir") {
		cfg.StateDir = flags.StateDir
	}
	if fs.Changed("socket") {
		cfg.Socket = flags.Socket
	}
	if fs.Changed("listen") {
		cfg.Listen = flags.Listen
	}
	if fs.Changed("log-format") {
		cfg.LogFormat = flags.LogFormat
	}
	if fs.Changed("log-level") {
		cfg.LogLevel = flags.LogLevel
	}
	if fs.Changed("tls-cert") {
		cfg.TLSCert = flags.TLSCert
	}
	if fs.Changed("tls-key") {
		cfg.TLSKey = flags.TLSKey
	}
	return cfg, cfg.Validate()
}

func serve(ctx context.Context, cfg daemon.Config) error {
	log := cfg.NewLogger(os.Stderr)
	if err := os.MkdirAll(cfg.StateDir, 0o750); err != nil {
		return fmt.Errorf("create state dir: %w", err)
	}
	st, err := sqlite.Open(ctx, cfg.DBPath())
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	defer st.Close()
	notify := func(state string) {
		if _, err := sd.SdNotify(false, state); err != nil {
			log.Warn("notify service manager", "err", err)
		}
	}
	if interval, err := sd.SdWatchdogEnabled(false); err == nil && interval > 0 {
		wctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			t := time.NewTicker(interval / 2)
			defer t.Stop()
			for {
				select {
				case <-wctx.Done():
					return
				case <-t.C:
					notify("WATCHDOG=1")
				}
			}
		}()
	}
	if addr := os.Getenv("JOBD_PPROF_ADDR"); addr != "" {
		// Profiling for the benchmark harness; off unless asked for.
		go func() {
			srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second}
			log.Info("pprof listening", "addr", addr, "err", srv.ListenAndServe())
		}()
	}
	d := daemon.New(cfg, st, log, daemon.SystemClock{}, version, notify)
	return d.Run(ctx)
}
