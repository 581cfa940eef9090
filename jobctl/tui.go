package jobctl

import (
	"github.com/spf13/cobra"

	"github.com/jobd/jobd/tui"
)

type tuiOptions struct {
	baseOptions
	ReadOnly bool
	NoColor  bool
	// View is the view shown first.
	View string
}

func newCmdTUI(f *Factory, runF func(*tuiOptions) error) *cobra.Command {
	opts := &tuiOptions{}
	cmd := &cobra.Command{
		Use:   "tui [--read-only] [--view NAME]",
		Short: "Open the live dashboard of executors, jobs, runs, logs and missed triggers",
		Long: `Open the live dashboard: jobd's health, executors with their state and
drain progress, jobs, runs as they happen, the logs of a run, and missed
triggers. It updates from jobd's event stream and reconnects by itself when
jobd restarts. jobctl with no arguments opens it too, on a terminal.

Keys: ':' switches view by name (overview, executors, jobs, runs, logs,
missed), '/' filters, enter drills in (a job or executor to its runs, a run
to its logs), esc goes back, '?' lists every key, q quits.

Actions (drain/undrain an executor, trigger/pause/resume a job, kill a run,
replay missed triggers) ask for a confirmation; --read-only removes them.
NO_COLOR or --no-color turns colour off; states are always spelled out.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return f.runTUI(cmd, opts, runF)
		},
	}
	cmd.Flags().BoolVar(&opts.ReadOnly, "read-only", false, "watch only: no action can be run from the dashboard")
	enumFlag(cmd, cmd.Flags(), &opts.View, "view", "", "overview", tui.ViewNames(), "the view shown first")
	return cmd
}

// runTUI fills opts from cmd and opens the dashboard (or calls runF).
func (f *Factory) runTUI(cmd *cobra.Command, opts *tuiOptions, runF func(*tuiOptions) error) error {
	opts.baseOptions = f.base(cmd)
	opts.NoColor = f.global.noColor || f.getenv(EnvNoColor) != ""
	if !opts.IO.IsTTY {
		return usageErrorf("the dashboard needs a terminal: standard output is not one (use 'jobctl status', 'jobctl run list' and -o json in scripts)")
	}
	if runF != nil {
		return runF(opts)
	}
	return openDashboard(opts)
}

// openDashboard shows the dashboard until the operator quits it.
func openDashboard(opts *tuiOptions) error {
	return tui.Run(opts.Ctx, tui.Options{
		Client:   opts.Client,
		Target:   opts.Client.Target(),
		ReadOnly: opts.ReadOnly,
		View:     opts.View,
	}, opts.IO.In, opts.IO.Out, opts.NoColor)
}
