package jobctl

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

func newCmdExecutor(f *Factory) *cobra.Command {
	cmd := newGroupCmd("executor", "List, inspect and drain executors", "executors")
	cmd.AddCommand(newCmdExecutorList(f, nil), newCmdExecutorGet(f, nil),
		newCmdExecutorDrain(f, nil), newCmdExecutorUndrain(f, nil))
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
		row := []cell{{text: e.ID}, {text: e.Name}, {text: e.Group}, colored(e.StateText(), stateColor(e.State)),
			{text: p.ago(e.StateSince)}, {text: fmt.Sprintf("%d/%d", e.Running, e.Slots)}, {text: p.ago(e.LastSeen)}}
		if p.wide() {
			row = append(row, cells(textfmt.OrDash(e.Host), textfmt.OrDash(e.Version), p.time(e.RegisteredAt), textfmt.Map(e.Labels))...)
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
	pairs := [][2]string{
		{"ID", e.ID},
		{"Name", e.Name},
		{"Group", e.Group},
		{"Host", textfmt.OrDash(e.Host)},
		{"Version", textfmt.OrDash(e.Version)},
		{"State", e.State + " since " + p.time(e.StateSince)},
	}
	if d := e.Drain; d != nil {
		pairs = append(pairs,
			[2]string{"Runs left", fmt.Sprintf("%d (drain started %s)", d.RunsLeft, p.time(d.StartedAt))},
			[2]string{"Deadline", drainDeadlineText(p, d)})
	}
	pairs = append(pairs,
		[2]string{"Running", fmt.Sprintf("%d of %d slots", e.Running, e.Slots)},
		[2]string{"Labels", textfmt.Map(e.Labels)},
		[2]string{"Last seen", p.timeRel(e.LastSeen)},
		[2]string{"Registered", p.time(e.RegisteredAt)},
	)
	return p.kv(pairs)
}

// drainDeadlineText says when a drain times out and what happens then.
func drainDeadlineText(p *printer, d *api.DrainProgress) string {
	if d.Deadline.IsZero() {
		return "none (waits for every run to finish)"
	}
	then := "runs left are requeued"
	if d.OnTimeout == api.DrainFinish {
		then = "runs left may finish"
	}
	return p.timeRel(d.Deadline) + ", then " + then
}

// executorIDArg completes executor ids, described by name and group.
func (f *Factory) executorIDArg(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	return f.executorIDArgWhere(nil)(cmd, args, toComplete)
}

// executorIDArgWhere completes the ids of the executors keep accepts (all
// when keep is nil), described by name, group and state.
func (f *Factory) executorIDArgWhere(keep func(api.Executor) bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return f.completeExecutorIDs(cmd, toComplete, keep), cobra.ShellCompDirectiveNoFileComp
	}
}

func (f *Factory) completeExecutorIDs(cmd *cobra.Command, toComplete string, keep func(api.Executor) bool) []string {
	ctx, cancel := completionContext(cmd)
	defer cancel()
	execs, err := f.Client().ExecutorList(ctx)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range execs {
		if strings.HasPrefix(e.ID, toComplete) && (keep == nil || keep(e)) {
			out = append(out, cobra.CompletionWithDesc(e.ID, e.Name+" ("+e.Group+", "+e.StateText()+")"))
		}
	}
	return out
}
