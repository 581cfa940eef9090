package jobctl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

func newCmdJob(f *Factory) *cobra.Command {
	cmd := newGroupCmd("job", "Create, list, inspect, change and trigger jobs")
	cmd.AddCommand(
		newCmdJobCreate(f, nil),
		newCmdJobList(f, nil),
		newCmdJobGet(f, nil),
		newCmdJobEdit(f, nil),
		newCmdJobRm(f, nil),
		newCmdJobPause(f, nil, true),
		newCmdJobPause(f, nil, false),
		newCmdJobTrigger(f, nil),
		newCmdJobScript(f, nil),
	)
	return cmd
}

// withSubject prefixes an API error with subject (`job "x"`) unless the
// server's message already names it.
func withSubject(err error, subject, name string) error {
	var ae *api.Error
	if errors.As(err, &ae) && !strings.Contains(ae.Message, name) {
		return fmt.Errorf("%s: %w", subject, err)
	}
	return err
}

func jobSubject(err error, name string) error {
	return withSubject(err, fmt.Sprintf("job %q", name), name)
}

// jobListPage is how many jobs one request of job list asks for.
const jobListPage = 500

type jobListOptions struct {
	baseOptions
	Group string
	Limit int
}

func newCmdJobList(f *Factory, runF func(*jobListOptions) error) *cobra.Command {
	opts := &jobListOptions{}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs by name",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			if opts.Limit < 0 {
				return usageErrorf("--limit must be 0 (all) or more")
			}
			if runF != nil {
				return runF(opts)
			}
			return runJobList(opts)
		},
	}
	cmd.Flags().StringVar(&opts.Group, "group", "", "only jobs of this executor group")
	cmd.Flags().IntVar(&opts.Limit, "limit", 0, "list at most N jobs (0: all)")
	return cmd
}

func runJobList(opts *jobListOptions) error {
	jobs := []api.Job{}
	after := ""
	for opts.Limit == 0 || len(jobs) < opts.Limit {
		size := jobListPage
		if opts.Limit > 0 {
			size = min(size, opts.Limit-len(jobs))
		}
		page, err := opts.Client.JobList(opts.Ctx, api.JobListOptions{Group: opts.Group, After: after, Limit: size})
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		last := page[len(page)-1].Name
		if last <= after {
			return fmt.Errorf("list jobs: jobd ignored the paging cursor %q", after)
		}
		jobs = append(jobs, page...)
		after = last
	}
	if opts.Limit > 0 && len(jobs) > opts.Limit {
		jobs = jobs[:opts.Limit]
	}

	p := opts.Printer
	if p.structured() {
		return p.encode(jobs)
	}
	header := []string{"NAME", "GROUP", "SCHEDULE", "PAUSED", "NEXT", "LAST"}
	if p.wide() {
		header = append(header, "LAST STATE", "KIND", "TZ", "MISFIRE", "OVERLAP", "ROUTE", "LABELS")
	}
	rows := make([][]cell, 0, len(jobs))
	for _, j := range jobs {
		paused := cell{text: yesNo(j.Paused)}
		if j.Paused {
			paused.color = colorYellow
		}
		row := []cell{{text: j.Name}, {text: j.Group}, {text: p.schedule(j)}, paused,
			{text: p.time(j.NextFireAt)}, {text: p.time(j.LastFireAt)}}
		if p.wide() {
			row = append(row, colored(textfmt.OrDash(j.LastState), stateColor(j.LastState)))
			row = append(row, cells(textfmt.OrDash(kindOf(j)), textfmt.OrDash(j.TZ), textfmt.OrDash(j.Misfire),
				textfmt.OrDash(j.Overlap), textfmt.OrDash(j.Route), textfmt.Map(j.Labels))...)
		}
		rows = append(rows, row)
	}
	return p.table(header, rows)
}

// schedule describes the schedule of j in one short string.
func (p *printer) schedule(j api.Job) string {
	s := j.JobSpec
	switch {
	case s.Cron != "":
		return "cron " + s.Cron
	case s.Every != nil:
		return "every " + s.Every.D().String()
	case s.Delay != nil:
		return "delay " + s.Delay.D().String()
	case s.At != nil:
		return "at " + p.time(*s.At)
	case s.Manual:
		return "manual"
	}
	return textfmt.OrDash(j.Schedule)
}

// kindOf is the job kind, from the server or from the spec.
func kindOf(j api.Job) string {
	if j.Kind != "" {
		return j.Kind
	}
	switch {
	case len(j.Command) > 0:
		return api.KindCommand
	case j.Script != "":
		return api.KindScript
	case j.HTTP != nil:
		return api.KindHTTP
	case j.Handler != "":
		return api.KindHandler
	}
	return ""
}

// payload describes what the job runs.
func payload(s api.JobSpec) string {
	switch {
	case len(s.Command) > 0:
		quoted := make([]string, len(s.Command))
		for i, a := range s.Command {
			if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`|&;<>()*?[]#~") {
				a = strconv.Quote(a)
			}
			quoted[i] = a
		}
		return "command " + strings.Join(quoted, " ")
	case s.Script != "":
		return fmt.Sprintf("script (%s, %d lines)", textfmt.OrDash(s.Interpreter), strings.Count(strings.TrimRight(s.Script, "\n"), "\n")+1)
	case s.HTTP != nil:
		return "http " + first(s.HTTP.Method, "GET") + " " + s.HTTP.URL
	case s.Handler != "":
		return "handler " + s.Handler
	}
	return "-"
}

func durationOrDash(d *api.Duration) string {
	if d == nil {
		return "-"
	}
	return d.D().String()
}

type jobGetOptions struct {
	baseOptions
	Name string
}

func newCmdJobGet(f *Factory, runF func(*jobGetOptions) error) *cobra.Command {
	opts := &jobGetOptions{}
	return &cobra.Command{
		Use:               "get NAME",
		Short:             "Show one job",
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runJobGet(opts)
		},
	}
}

func runJobGet(opts *jobGetOptions) error {
	j, err := opts.Client.JobGet(opts.Ctx, opts.Name)
	if err != nil {
		return jobSubject(err, opts.Name)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(j)
	}
	pairs := [][2]string{
		{"Name", j.Name},
		{"Group", j.Group},
		{"Schedule", p.schedule(*j)},
	}
	if j.Anchor != nil {
		pairs = append(pairs, [2]string{"Anchor", p.time(*j.Anchor)})
	}
	pairs = append(pairs,
		[2]string{"Timezone", textfmt.OrDash(j.TZ)},
		[2]string{"Runs", payload(j.JobSpec)},
	)
	if kindOf(*j) == api.KindScript && j.ScriptVersion > 0 {
		pairs = append(pairs, [2]string{"Script version", fmt.Sprintf("%d (see 'jobctl job script %s --list')", j.ScriptVersion, j.Name)})
	}
	pairs = append(pairs,
		[2]string{"Params", textfmt.Map(j.Params)},
		[2]string{"Labels", textfmt.Map(j.Labels)},
		[2]string{"Paused", yesNo(j.Paused)},
		[2]string{"Next fire", p.timeRel(j.NextFireAt)},
		[2]string{"Last fire", p.timeRel(j.LastFireAt)},
		[2]string{"Last state", textfmt.OrDash(j.LastState)},
		[2]string{"Misfire", fmt.Sprintf("%s (threshold %s, max catch-up %d, record missed %s)",
			textfmt.OrDash(j.Misfire), durationOrDash(j.MisfireThreshold), j.MaxCatchUp, yesNo(j.RecordMissed))},
		[2]string{"Overlap", textfmt.OrDash(j.Overlap)},
		[2]string{"Route", textfmt.OrDash(j.Route) + selectorSuffix(j.Selector)},
		[2]string{"Retries", retriesText(j.JobSpec)},
		[2]string{"Timeout", durationOrDash(j.Timeout)},
		[2]string{"Created", p.time(j.CreatedAt)},
		[2]string{"Updated", p.time(j.UpdatedAt)},
	)
	return p.kv(pairs)
}

// retriesText describes the retry policy of s: "3 (backoff 30s,
// exponential with jitter up to 10m0s)". Fields left out take jobd's
// defaults.
func retriesText(s api.JobSpec) string {
	if s.Retries == 0 {
		return "none"
	}
	or := func(d *api.Duration, def string) string {
		if d == nil {
			return def
		}
		return d.D().String()
	}
	text := fmt.Sprintf("%d (backoff %s, ", s.Retries, or(s.Backoff, "default"))
	if s.BackoffPolicy == api.BackoffFixed {
		return text + "fixed)"
	}
	return text + "exponential with jitter up to " + or(s.BackoffMax, "default") + ")"
}

func selectorSuffix(sel map[string]string) string {
	if len(sel) == 0 {
		return ""
	}
	return " where " + textfmt.Map(sel)
}

type jobNameOptions struct {
	baseOptions
	Name string
}

func newCmdJobRm(f *Factory, runF func(*jobNameOptions) error) *cobra.Command {
	opts := &jobNameOptions{}
	return &cobra.Command{
		Use:               "rm NAME",
		Aliases:           []string{"delete"},
		Short:             "Delete a job (an unknown job exits 3)",
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runJobRm(opts)
		},
	}
}

func runJobRm(opts *jobNameOptions) error {
	if err := opts.Client.JobDelete(opts.Ctx, opts.Name); err != nil {
		return jobSubject(err, opts.Name)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(map[string]any{"name": opts.Name, "deleted": true})
	}
	return p.linef("deleted job %s", opts.Name)
}

func newCmdJobPause(f *Factory, runF func(*jobNameOptions) error, pause bool) *cobra.Command {
	opts := &jobNameOptions{}
	use, short := "pause NAME", "Pause a job: it fires no more until resumed"
	if !pause {
		use, short = "resume NAME", "Resume a paused job"
	}
	return &cobra.Command{
		Use:               use,
		Short:             short,
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runJobPause(opts, pause)
		},
	}
}

func runJobPause(opts *jobNameOptions, pause bool) error {
	call, verb := opts.Client.JobPause, "paused"
	if !pause {
		call, verb = opts.Client.JobResume, "resumed"
	}
	j, err := call(opts.Ctx, opts.Name)
	if err != nil {
		return jobSubject(err, opts.Name)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(j)
	}
	if pause {
		return p.linef("%s job %s", verb, j.Name)
	}
	return p.linef("%s job %s (next fire %s)", verb, j.Name, p.time(j.NextFireAt))
}

type jobTriggerOptions struct {
	baseOptions
	Name   string
	Params map[string]string
}

func newCmdJobTrigger(f *Factory, runF func(*jobTriggerOptions) error) *cobra.Command {
	opts := &jobTriggerOptions{}
	var params []string
	cmd := &cobra.Command{
		Use:   "trigger NAME",
		Short: "Fire a job now and print the ids of its runs",
		Long: `Fire a job now, whatever its schedule, and print the id of each run it
created, one per line (several with sharding broadcast).`,
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			var err error
			if opts.Params, err = parseKV("param", params); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runJobTrigger(opts)
		},
	}
	cmd.Flags().StringArrayVar(&params, "param", nil, "param `K=V` for this run (repeatable), overriding the job's")
	return cmd
}

func runJobTrigger(opts *jobTriggerOptions) error {
	tr, err := opts.Client.JobTrigger(opts.Ctx, opts.Name, api.TriggerRequest{Params: opts.Params})
	if err != nil {
		return jobSubject(err, opts.Name)
	}
	p := opts.Printer
	if p.structured() {
		if tr.Runs == nil {
			tr.Runs = []api.Run{}
		}
		return p.encode(tr)
	}
	if len(tr.Runs) == 0 {
		fmt.Fprintf(opts.IO.ErrOut, "triggered job %s (trigger %s); no run created yet\n", opts.Name, tr.TriggerID)
		return nil
	}
	for _, r := range tr.Runs {
		if err := p.linef("%s", r.ID); err != nil {
			return err
		}
	}
	return nil
}
