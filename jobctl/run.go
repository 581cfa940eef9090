package jobctl

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

func newCmdRun(f *Factory) *cobra.Command {
	cmd := newGroupCmd("run", "List, inspect and kill runs")
	cmd.AddCommand(newCmdRunList(f, nil), newCmdRunGet(f, nil), newCmdRunKill(f, nil))
	return cmd
}

type runListOptions struct {
	baseOptions
	Job      string
	State    string
	Executor string
	Before   string
	Limit    int
}

func newCmdRunList(f *Factory, runF func(*runListOptions) error) *cobra.Command {
	opts := &runListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List runs, newest first",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			if opts.Limit < 1 {
				return usageErrorf("--limit must be at least 1")
			}
			if runF != nil {
				return runF(opts)
			}
			return runRunList(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Job, "job", "", "only runs of job `NAME`")
	enumFlag(cmd, cmd.Flags(), &opts.State, "state", "", "", runStates, "only runs in this state")
	cmd.Flags().StringVar(&opts.Executor, "executor", "", "only runs handed to executor `ID`")
	cmd.Flags().StringVar(&opts.Before, "before", "", "only runs older than run `ID` (paging)")
	cmd.Flags().IntVar(&opts.Limit, "limit", 50, "list at most `N` runs")
	f.completeJobFlag(cmd, "job")
	return cmd
}

func runRunList(opts *runListOptions) error {
	runs, err := opts.Client.RunList(opts.Ctx, api.RunListOptions{
		Job: opts.Job, State: opts.State, Executor: opts.Executor, Before: opts.Before, Limit: opts.Limit,
	})
	if err != nil {
		if opts.Job != "" {
			return jobSubject(err, opts.Job)
		}
		return err
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(runs)
	}
	header := []string{"ID", "JOB", "STATE", "ATTEMPT", "EXECUTOR", "SCHEDULED", "DURATION", "EXIT"}
	if p.wide() {
		// TRIGGER groups the attempts (retries) and shards of one fire.
		header = append(header, "TRIGGER", "ORIGIN", "STARTED", "FINISHED", "EXECUTOR ID", "SHARD", "REPLAY", "ERROR")
	}
	rows := make([][]cell, 0, len(runs))
	for _, r := range runs {
		row := []cell{{text: r.ID}, {text: r.Job}, colored(r.State, stateColor(r.State)),
			{text: strconv.Itoa(r.Attempt)}, {text: textfmt.OrDash(r.Executor)}, {text: p.time(r.ScheduledAt)},
			{text: p.runDuration(r)}, {text: exitCodeText(r.ExitCode)}}
		if p.wide() {
			row = append(row, cells(textfmt.OrDash(r.TriggerID), textfmt.OrDash(r.Origin), p.time(r.StartedAt), p.time(r.FinishedAt),
				textfmt.OrDash(r.ExecutorID), shardText(r), yesNo(r.Replay), textfmt.OrDash(printable(oneLine(r.Error, 60))))...)
		}
		rows = append(rows, row)
	}
	return p.table(header, rows)
}

func exitCodeText(code *int) string {
	if code == nil {
		return "-"
	}
	return strconv.Itoa(*code)
}

func shardText(r api.Run) string {
	if r.ShardTotal == 0 {
		return "-"
	}
	return fmt.Sprintf("%d/%d", r.ShardIndex, r.ShardTotal)
}

// oneLine shortens s to its first line of at most n runes.
func oneLine(s string, n int) string {
	s, _, cut := strings.Cut(strings.TrimSpace(s), "\n")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	} else if cut {
		return s + "…"
	}
	return s
}

type runGetOptions struct {
	baseOptions
	ID string
}

func newCmdRunGet(f *Factory, runF func(*runGetOptions) error) *cobra.Command {
	opts := &runGetOptions{}
	return &cobra.Command{
		Use:               "get ID",
		Short:             "Show one run",
		Args:              exactArgs(1, "one run ID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runRunGet(opts)
		},
	}
}

func runRunGet(opts *runGetOptions) error {
	r, err := opts.Client.RunGet(opts.Ctx, opts.ID)
	if err != nil {
		return withSubject(err, fmt.Sprintf("run %q", opts.ID), opts.ID)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(r)
	}
	executor := textfmt.OrDash(r.Executor)
	if r.ExecutorID != "" {
		executor += " (" + r.ExecutorID + ")"
	}
	origin := textfmt.OrDash(r.Origin)
	if r.Replay && r.Origin != api.OriginReplay {
		origin += " (replay)"
	}
	pairs := [][2]string{
		{"ID", r.ID},
		{"Job", r.Job},
		{"State", r.State},
		{"Origin", origin},
		{"Trigger", textfmt.OrDash(r.TriggerID)},
		{"Attempt", strconv.Itoa(r.Attempt)},
		{"Shard", shardText(*r)},
		{"Executor", executor},
		{"Scheduled", p.time(r.ScheduledAt)},
		{"Created", p.time(r.CreatedAt)},
		{"Assigned", p.time(r.AssignedAt)},
		{"Started", p.time(r.StartedAt)},
		{"Finished", p.time(r.FinishedAt)},
		{"Duration", p.runDuration(*r)},
		{"Exit code", exitCodeText(r.ExitCode)},
	}
	if r.Error != "" {
		pairs = append(pairs, [2]string{"Error", printable(r.Error)})
	}
	if err := p.kv(pairs); err != nil {
		return err
	}
	if r.Output != "" {
		return p.linef("\nOutput:\n%s", strings.TrimSuffix(printable(r.Output), "\n"))
	}
	return nil
}

type runKillOptions struct {
	baseOptions
	ID string
}

func newCmdRunKill(f *Factory, runF func(*runKillOptions) error) *cobra.Command {
	opts := &runKillOptions{}
	return &cobra.Command{
		Use:   "kill ID",
		Short: "Kill a run",
		Long: `Kill a run. A run no executor started yet is killed at once ("killed run
ID"). A running one is killed by its executor, which stops its whole process
group (SIGTERM, then SIGKILL after a grace); jobctl returns once jobd has
passed the request on ("asked executor to kill run ID"): follow it with
'jobctl run get ID' or 'jobctl logs -f ID'.

A run that already ended exits 1; an unknown run exits 3. A killed run is
not retried.`,
		Args:              exactArgs(1, "one run ID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.ID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runRunKill(opts)
		},
	}
}

func runRunKill(opts *runKillOptions) error {
	r, err := opts.Client.RunKill(opts.Ctx, opts.ID)
	if err != nil {
		return withSubject(err, fmt.Sprintf("run %q", opts.ID), opts.ID)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(r)
	}
	switch {
	case r.State == api.RunKilled:
		return p.linef("killed run %s", r.ID)
	case api.RunEnded(r.State):
		return p.linef("run %s ended %s%s", r.ID, r.State, endDetail(r))
	default:
		return p.linef("asked executor to kill run %s", r.ID)
	}
}
