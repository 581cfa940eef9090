package jobctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
)

func newCmdExecutor(f *Factory) *cobra.Command {
	cmd := newGroupCmd("executor", "List and inspect executors", "executors")
	cmd.AddCommand(newCmdExecutorList(f, nil), newCmdExecutorGet(f, nil))
	return cmd
}

type executorListOptions struct {
	baseOptions
	Group string
}

func newCmdExecutorList(f *Factory, runF func(*executorListOptions) error) *cobra.Command {
	opts := &executorListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List registered executors",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			if runF != nil {
				return runF(opts)
			}
			return runExecutorList(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Group, "group", "", "only executors of `GROUP`")
	return cmd
}

func runExecutorList(opts *executorListOptions) error {
	all, err := opts.Client.ExecutorList(opts.Ctx)
	if err != nil {
		return err
	}
	execs := make([]api.Executor, 0, len(all))
	for _, e := range all {
		if opts.Group == "" || e.Group == opts.Group {
			execs = append(execs, e)
		}
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(execs)
	}
	header := []string{"ID", "NAME", "GROUP", "STATE", "SINCE", "RUNNING/SLOTS", "LAST SEEN"}
	if p.wide() {
		header = append(header, "HOST", "VERSION", "REGISTERED", "LABELS")
	}
	rows := make([][]cell, 0, len(execs))
	for _, e := range execs {
		row := []cell{{text: e.ID}, {text: e.Name}, {text: e.Group}, colored(e.State, stateColor(e.State)),
			{text: p.ago(e.StateSince)}, {text: fmt.Sprintf("%d/%d", e.Running, e.Slots)}, {text: p.ago(e.LastSeen)}}
		if p.wide() {
			row = append(row, cells(orDash(e.Host), orDash(e.Version), p.time(e.RegisteredAt), joinMap(e.Labels))...)
		}
		rows = append(rows, row)
	}
	return p.table(header, rows)
}

type executorGetOptions struct {
	baseOptions
	ID string
}

func newCmdExecutorGet(f *Factory, runF func(*executorGetOptions) error) *cobra.Command {
	opts := &executorGetOptions{}
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one executor",
		Args:              exactArgs(1, "one executor ID"),
		ValidArgsFunction: f.executorIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runExecutorGet(opts)
		},
	}
}

func runExecutorGet(opts *executorGetOptions) error {
	e, err := opts.Client.ExecutorGet(opts.Ctx, opts.ID)
	if err != nil {
		return withSubject(err, fmt.Sprintf("executor %q", opts.ID), opts.ID)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(e)
	}
	return p.kv([][2]string{
		{"ID", e.ID},
		{"Name", e.Name},
		{"Group", e.Group},
		{"Host", orDash(e.Host)},
		{"Version", orDash(e.Version)},
		{"State", e.State + " since " + p.time(e.StateSince)},
		{"Running", fmt.Sprintf("%d of %d slots", e.Running, e.Slots)},
		{"Labels", joinMap(e.Labels)},
		{"Last seen", p.timeRel(e.LastSeen)},
		{"Registered", p.time(e.RegisteredAt)},
	})
}

// executorIDArg completes executor ids, described by name and group.
func (f *Factory) executorIDArg(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	ctx, cancel := completionContext(cmd)
	defer cancel()
	execs, err := f.Client().ExecutorList(ctx)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, e := range execs {
		if strings.HasPrefix(e.ID, toComplete) {
			out = append(out, cobra.CompletionWithDesc(e.ID, e.Name+" ("+e.Group+", "+e.State+")"))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
