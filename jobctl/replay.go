package jobctl

import (
	"bufio"
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
)

type replayOptions struct {
	baseOptions
	Request api.ReplayRequest
	// UntilGiven reports whether --until was given.
	UntilGiven bool
	Yes        bool
}

func newCmdReplay(f *Factory, runF func(*replayOptions) error) *cobra.Command {
	opts := &replayOptions{}
	var since, until string
	cmd := &cobra.Command{
		Use:   "replay [--job NAME] [--since T] [--until T] [--latest] [--dry-run | --yes]",
		Short: "Fire recorded missed triggers again",
		Long: `Fire recorded missed triggers again, each with its original scheduled time
and marked as a replay: all of them, those of one job, those of a time range,
or (--latest) only the newest of each job.

Without --yes, jobctl first lists what would fire and asks for confirmation
on a terminal; without a terminal it refuses, so scripts must pass --yes.
--dry-run only lists.`,
		Example: `  jobctl replay --dry-run
  jobctl replay --job backup --since 6h --latest
  jobctl replay --since 2024-06-01 --until 2024-06-02 --yes`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			r := &opts.Request
			if since != "" {
				t, err := parseTimeFlag("since", since, opts.Now, true)
				if err != nil {
					return err
				}
				r.Since = api.NewTime(t)
			}
			if until != "" {
				t, err := parseTimeFlag("until", until, opts.Now, true)
				if err != nil {
					return err
				}
				r.Until = api.NewTime(t)
				opts.UntilGiven = true
			}
			if !r.Since.IsZero() && !r.Until.IsZero() && r.Until.Before(r.Since.Time) {
				return usageErrorf("--until is before --since")
			}
			if r.Limit < 0 {
				return usageErrorf("--limit must not be negative")
			}
			if r.Job != "" {
				if err := checkJobName(r.Job); err != nil {
					return err
				}
			}
			if r.DryRun && opts.Yes {
				return usageErrorf("give --dry-run or --yes, not both")
			}
			if !r.DryRun && !opts.Yes && !opts.IO.CanPrompt {
				return usageErrorf("replay fires jobs again: pass --yes to confirm (or --dry-run to list what would fire); not asking without a terminal")
			}
			if runF != nil {
				return runF(opts)
			}
			return runReplay(opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.Request.Job, "job", "", "only missed triggers of job `NAME`")
	fl.StringVar(&since, "since", "", "only those scheduled at or after `TIME` (or DURATION ago); "+timeHelp)
	fl.StringVar(&until, "until", "", "only those scheduled at or before `TIME` (or DURATION ago)")
	fl.BoolVar(&opts.Request.Latest, "latest", false, "fire only the newest missed trigger of each job")
	fl.IntVar(&opts.Request.Limit, "limit", 0, "replay at most `N` triggers (0: jobd's default)")
	fl.BoolVar(&opts.Request.DryRun, "dry-run", false, "list what would fire, fire nothing")
	fl.BoolVarP(&opts.Yes, "yes", "y", false, "do not ask for confirmation")
	f.completeJobFlag(cmd, "job")
	return cmd
}

func runReplay(opts *replayOptions) error {
	req := opts.Request
	if !req.DryRun && !opts.Yes {
		// Ask first: list what would fire, and replay no more than that.
		dry := req
		dry.DryRun = true
		if !opts.UntilGiven {
			dry.Until = api.NewTime(opts.Now)
		}
		preview, err := opts.Client.Replay(opts.Ctx, dry)
		if err != nil {
			return err
		}
		if preview.Count == 0 {
			fmt.Fprintln(opts.IO.ErrOut, "no missed triggers to replay")
			return nil
		}
		ok, err := confirm(opts.IO, fmt.Sprintf("Replay %s of %s?", plural(preview.Count, "missed trigger"), replayJobs(req.Job, preview)))
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("replay not confirmed: %w", errCancelled)
		}
		req.Until = dry.Until
	}

	res, err := opts.Client.Replay(opts.Ctx, req)
	if err != nil {
		if req.Job != "" {
			return jobSubject(err, req.Job)
		}
		return err
	}
	if res.Triggers == nil {
		res.Triggers = []api.NextTrigger{}
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(res)
	}
	if res.DryRun || p.wide() {
		rows := make([][]cell, 0, len(res.Triggers))
		for _, t := range res.Triggers {
			rows = append(rows, cells(t.Job, p.time(t.ScheduledAt)))
		}
		if len(rows) > 0 {
			if err := p.table([]string{"JOB", "SCHEDULED"}, rows); err != nil {
				return err
			}
		}
		if more := res.Count - int64(len(res.Triggers)); more > 0 {
			if err := p.linef("... and %d more", more); err != nil {
				return err
			}
		}
	}
	if res.DryRun {
		return p.linef("%s would be replayed (dry run: nothing fired)", plural(res.Count, "missed trigger"))
	}
	return p.linef("replayed %s", plural(res.Fired, "missed trigger"))
}

// replayJobs names the jobs a replay concerns, for the confirmation.
func replayJobs(job string, preview *api.ReplayResponse) string {
	if job != "" {
		return "job " + job
	}
	var names []string
	for _, t := range preview.Triggers {
		if !slices.Contains(names, t.Job) {
			names = append(names, t.Job)
		}
	}
	slices.Sort(names)
	const show = 5
	switch {
	case len(names) == 0:
		return "some jobs"
	case len(names) == 1 && int64(len(preview.Triggers)) == preview.Count:
		return "job " + names[0]
	case len(names) > show:
		return fmt.Sprintf("jobs %s and %d more", strings.Join(names[:show], ", "), len(names)-show)
	case int64(len(preview.Triggers)) < preview.Count:
		return "jobs " + strings.Join(names, ", ") + " and others"
	default:
		return "jobs " + strings.Join(names, ", ")
	}
}

func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// confirm asks question on ErrOut and reads a yes or no from In; anything
// but y or yes is no.
func confirm(ios *IOStreams, question string) (bool, error) {
	fmt.Fprintf(ios.ErrOut, "%s [y/N] ", question)
	line, err := bufio.NewReader(ios.In).ReadString('\n')
	if err != nil && line == "" {
		fmt.Fprintln(ios.ErrOut)
		return false, nil
	}
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "y" || answer == "yes", nil
}
