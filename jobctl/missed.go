package jobctl

import (
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

func newCmdMissed(f *Factory) *cobra.Command {
	cmd := newGroupCmd("missed", "List triggers that did not fire (replay them with 'jobctl replay')")
	cmd.AddCommand(newCmdMissedList(f, nil))
	return cmd
}

type missedListOptions struct {
	baseOptions
	Job          string
	Since, Until time.Time
}

func newCmdMissedList(f *Factory, runF func(*missedListOptions) error) *cobra.Command {
	opts := &missedListOptions{}
	var since, until string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List missed triggers, by job and time range",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			var err error
			if since != "" {
				if opts.Since, err = parseTimeFlag("since", since, opts.Now, true); err != nil {
					return err
				}
			}
			if until != "" {
				if opts.Until, err = parseTimeFlag("until", until, opts.Now, true); err != nil {
					return err
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return runMissedList(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Job, "job", "", "only missed triggers of job `NAME`")
	cmd.Flags().StringVar(&since, "since", "", "only those scheduled at or after `TIME` (or DURATION ago); "+timeHelp)
	cmd.Flags().StringVar(&until, "until", "", "only those scheduled at or before `TIME` (or DURATION ago)")
	f.completeJobFlag(cmd, "job")
	return cmd
}

func runMissedList(opts *missedListOptions) error {
	missed, err := opts.Client.MissedList(opts.Ctx, api.MissedListOptions{Job: opts.Job, Since: opts.Since, Until: opts.Until})
	if err != nil {
		if opts.Job != "" {
			return jobSubject(err, opts.Job)
		}
		return err
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(missed)
	}
	header := []string{"JOB", "FROM", "TO", "COUNT", "REASON"}
	if p.wide() {
		header = append(header, "ID", "RECORDED")
	}
	rows := make([][]cell, 0, len(missed))
	for _, m := range missed {
		row := cells(m.Job, p.time(m.From), p.time(m.To), strconv.FormatInt(m.Count, 10), textfmt.OrDash(m.Reason))
		if p.wide() {
			row = append(row, cells(textfmt.OrDash(m.ID), p.time(m.RecordedAt))...)
		}
		rows = append(rows, row)
	}
	return p.table(header, rows)
}
