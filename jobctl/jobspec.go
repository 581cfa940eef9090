package jobctl

import (
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobd/jobd/api"
)

var (
	scheduleFlags = []string{"cron", "every", "delay", "at", "manual"}
	kindFlags     = []string{"command", "script", "http", "handler"}
)

// specFlags are the flags of job create (and job edit) that describe a
// JobSpec.
type specFlags struct {
	group            string
	cron             string
	every            time.Duration
	anchor           string
	delay            time.Duration
	at               string
	manual           bool
	tz               string
	command          string
	script           string
	interpreter      string
	httpURL          string
	method           string
	handler          string
	params           []string
	labels           []string
	selector         []string
	misfire          string
	misfireThreshold time.Duration
	maxCatchUp       int
	recordMissed     bool
	overlap          string
	queueMax         int
	route            string
	retries          int
	backoff          time.Duration
	backoffPolicy    string
	backoffMax       time.Duration
	timeout          time.Duration
	paused           bool
}

// register defines the flags on cmd.
func (s *specFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&s.group, "group", "", "executor `GROUP` the job runs on")
	fs.SortFlags = false

	fs.StringVar(&s.cron, "cron", "", "schedule: cron `EXPR` (5, 6 or 7 fields, or @daily...)")
	fs.DurationVar(&s.every, "every", 0, "schedule: fixed rate, every `DUR` on the grid anchor+k*DUR")
	fs.StringVar(&s.anchor, "anchor", "", "anchor `TIME` of --every (default: when created); "+timeHelp)
	fs.DurationVar(&s.delay, "delay", 0, "schedule: fixed delay, `DUR` after the previous run finished")
	fs.StringVar(&s.at, "at", "", "schedule: once at `TIME`; "+timeHelp)
	fs.BoolVar(&s.manual, "manual", false, "schedule: only when triggered")
	fs.StringVar(&s.tz, "tz", "", "IANA time `ZONE` of the schedule (default: jobd's)")

	fs.StringVar(&s.command, "command", "", `kind: run "ARGV" without a shell, split like a shell would ("sh -c '...'" for one)`)
	fs.StringVar(&s.script, "script", "", "kind: run the script in `FILE` (- for stdin); jobd keeps its source")
	fs.StringVar(&s.interpreter, "interpreter", "", "interpreter of --script, e.g. bash, sh, python3")
	fs.StringVar(&s.httpURL, "http", "", "kind: send an HTTP request to `URL`; success by status")
	fs.StringVar(&s.method, "method", "", "HTTP method of --http (default GET)")
	fs.StringVar(&s.handler, "handler", "", "kind: call the handler `NAME` registered by an SDK executor")

	fs.StringArrayVar(&s.params, "param", nil, "param `K=V` passed as JOBD_* env (repeatable)")
	fs.StringArrayVar(&s.labels, "label", nil, "label `K=V` (repeatable)")
	fs.StringArrayVar(&s.selector, "selector", nil, "only executors with label `K=V` (repeatable)")
	enumFlag(cmd, fs, &s.misfire, "misfire", "", "", misfirePolicies, "misfire policy")
	fs.DurationVar(&s.misfireThreshold, "misfire-threshold", 0, "how late a fire counts as missed (default 5s)")
	fs.IntVar(&s.maxCatchUp, "max-catch-up", 0, "cap on fires of misfire catch_up")
	fs.BoolVar(&s.recordMissed, "record-missed", false, "record the fires missed while paused")
	enumFlag(cmd, fs, &s.overlap, "overlap", "", "", overlapPolicies, "overlap policy")
	fs.IntVar(&s.queueMax, "queue-max", 0, "bound of the queue of overlap queue")
	enumFlag(cmd, fs, &s.route, "route", "", "", routeStrategies, "routing strategy")
	fs.IntVar(&s.retries, "retries", 0, "retry a failed, timed out or lost run up to `N` times (N+1 attempts; a killed run is not retried)")
	fs.DurationVar(&s.backoff, "backoff", 0, "wait `D` before the first retry (default 1s; 0: retry at once)")
	enumFlag(cmd, fs, &s.backoffPolicy, "backoff-policy", "", "", backoffPolicies, "retry backoff: fixed waits --backoff each time, exponential (default) doubles it per retry, with jitter")
	fs.DurationVar(&s.backoffMax, "backoff-max", 0, "cap `D` of the exponential backoff (default 10m; 0: the default)")
	fs.DurationVar(&s.timeout, "timeout", 0, "kill a run after this long (0: none)")
	fs.BoolVar(&s.paused, "paused", false, "the job is paused (fires nothing)")

	completeFlag(cmd, "interpreter", interpreters)
	completeFlag(cmd, "method", httpMethods)
	completeFlag(cmd, "tz", []string{"UTC", "Local"})
	for _, name := range []string{"cron", "every", "delay", "at", "anchor", "command", "http", "handler", "group"} {
		_ = cmd.RegisterFlagCompletionFunc(name, cobra.NoFileCompletions)
	}
}

// changedOf returns the names among names that were set on the command line.
func changedOf(fs *pflag.FlagSet, names []string) []string {
	var out []string
	for _, n := range names {
		if fs.Changed(n) {
			out = append(out, n)
		}
	}
	return out
}

func flagList(names []string) string {
	return "--" + strings.Join(names, ", --")
}

// apply sets the fields of spec given by flags. For create, a group, a
// schedule and a kind are required and the maps are replaced; for edit,
// only flags given change spec and --param/--label/--selector add to the
// maps.
func (s *specFlags) apply(fs *pflag.FlagSet, spec *api.JobSpec, create bool, now time.Time, stdin io.Reader) error {
	if fs.Changed("group") || create {
		if strings.TrimSpace(s.group) == "" {
			return usageErrorf("--group is required: the executor group the job runs on")
		}
		spec.Group = s.group
	}
	if err := s.applySchedule(fs, spec, create, now); err != nil {
		return err
	}
	if err := s.applyKind(fs, spec, create, stdin); err != nil {
		return err
	}
	if fs.Changed("tz") {
		spec.TZ = s.tz
	}

	for _, m := range []struct {
		flag  string
		items []string
		dst   *map[string]string
	}{{"param", s.params, &spec.Params}, {"label", s.labels, &spec.Labels}, {"selector", s.selector, &spec.Selector}} {
		kv, err := parseKV(m.flag, m.items)
		if err != nil {
			return err
		}
		if create || *m.dst == nil {
			*m.dst = kv
			continue
		}
		for k, v := range kv {
			(*m.dst)[k] = v
		}
	}

	for _, d := range []struct {
		flag string
		v    time.Duration
		dst  **api.Duration
		// zero is kept as 0, not as "unset" (the default)
		zero bool
	}{
		{"misfire-threshold", s.misfireThreshold, &spec.MisfireThreshold, false},
		{"backoff", s.backoff, &spec.Backoff, true},
		{"backoff-max", s.backoffMax, &spec.BackoffMax, false},
		{"timeout", s.timeout, &spec.Timeout, false},
	} {
		if !fs.Changed(d.flag) {
			continue
		}
		if d.v < 0 {
			return usageErrorf("--%s must not be negative", d.flag)
		}
		*d.dst = nil
		if d.v > 0 || d.zero {
			v := api.Duration(d.v)
			*d.dst = &v
		}
	}
	for _, n := range []struct {
		flag string
		v    int
		dst  *int
	}{{"max-catch-up", s.maxCatchUp, &spec.MaxCatchUp}, {"queue-max", s.queueMax, &spec.QueueMax}, {"retries", s.retries, &spec.Retries}} {
		if !fs.Changed(n.flag) {
			continue
		}
		if n.v < 0 {
			return usageErrorf("--%s must not be negative", n.flag)
		}
		*n.dst = n.v
	}
	for _, e := range []struct {
		flag string
		v    string
		dst  *string
	}{{"misfire", s.misfire, &spec.Misfire}, {"overlap", s.overlap, &spec.Overlap}, {"route", s.route, &spec.Route}, {"backoff-policy", s.backoffPolicy, &spec.BackoffPolicy}} {
		if fs.Changed(e.flag) {
			*e.dst = e.v
		}
	}
	if (fs.Changed("backoff-max") || fs.Changed("backoff-policy")) && spec.BackoffMax != nil && spec.BackoffPolicy == api.BackoffFixed {
		return usageErrorf("--backoff-max goes with --backoff-policy exponential, not fixed")
	}
	if len(changedOf(fs, []string{"backoff", "backoff-max"})) > 0 &&
		spec.BackoffMax != nil && spec.Backoff != nil && *spec.BackoffMax < *spec.Backoff {
		return usageErrorf("--backoff-max %s is less than --backoff %s", spec.BackoffMax.D(), spec.Backoff.D())
	}
	if fs.Changed("record-missed") {
		spec.RecordMissed = s.recordMissed
	}
	if fs.Changed("paused") {
		spec.Paused = s.paused
	}
	return nil
}

func (s *specFlags) applySchedule(fs *pflag.FlagSet, spec *api.JobSpec, create bool, now time.Time) error {
	given := changedOf(fs, scheduleFlags)
	switch {
	case len(given) > 1:
		return usageErrorf("give one schedule, not %s", flagList(given))
	case len(given) == 0 && create:
		return usageErrorf("give a schedule: %s", flagList(scheduleFlags))
	case len(given) == 1:
		keepAnchor := given[0] == "every" && spec.Every != nil
		anchor := spec.Anchor
		spec.Cron, spec.Every, spec.Anchor, spec.Delay, spec.At, spec.Manual = "", nil, nil, nil, nil, false
		switch given[0] {
		case "cron":
			if strings.TrimSpace(s.cron) == "" {
				return usageErrorf("--cron: empty expression")
			}
			spec.Cron = s.cron
		case "every":
			if s.every <= 0 {
				return usageErrorf("--every must be positive")
			}
			d := api.Duration(s.every)
			spec.Every = &d
			if keepAnchor {
				spec.Anchor = anchor
			}
		case "delay":
			if s.delay <= 0 {
				return usageErrorf("--delay must be positive")
			}
			d := api.Duration(s.delay)
			spec.Delay = &d
		case "at":
			t, err := parseTimeFlag("at", s.at, now, false)
			if err != nil {
				return err
			}
			at := api.NewTime(t)
			spec.At = &at
		case "manual":
			if !s.manual {
				return usageErrorf("--manual=false is not a schedule")
			}
			spec.Manual = true
		}
	}
	if fs.Changed("anchor") {
		if spec.Every == nil {
			return usageErrorf("--anchor goes with --every")
		}
		t, err := parseTimeFlag("anchor", s.anchor, now, false)
		if err != nil {
			return err
		}
		a := api.NewTime(t)
		spec.Anchor = &a
	}
	return nil
}

// httpMethodRE is the shape of an HTTP method token.
var httpMethodRE = regexp.MustCompile(`^[A-Z]+$`)

func (s *specFlags) applyKind(fs *pflag.FlagSet, spec *api.JobSpec, create bool, stdin io.Reader) error {
	given := changedOf(fs, kindFlags)
	switch {
	case len(given) > 1:
		return usageErrorf("give one kind of job, not %s", flagList(given))
	case len(given) == 0 && create:
		return usageErrorf("give what the job runs: %s", flagList(kindFlags))
	case len(given) == 1:
		var method string
		if spec.HTTP != nil {
			method = spec.HTTP.Method
		}
		spec.Command, spec.Script, spec.Interpreter, spec.HTTP, spec.Handler = nil, "", "", nil, ""
		switch given[0] {
		case "command":
			argv, err := splitCommand(s.command)
			if err != nil {
				return err
			}
			spec.Command = argv
		case "script":
			src, err := readScript(s.script, stdin)
			if err != nil {
				return err
			}
			spec.Script = src
		case "http":
			u, err := url.Parse(s.httpURL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return usageErrorf("--http %q: want an http(s)://host/... URL", s.httpURL)
			}
			spec.HTTP = &api.HTTPRequest{URL: s.httpURL, Method: method}
		case "handler":
			if strings.TrimSpace(s.handler) == "" {
				return usageErrorf("--handler: empty name")
			}
			spec.Handler = s.handler
		}
	}
	if fs.Changed("interpreter") {
		if spec.Script == "" {
			return usageErrorf("--interpreter goes with --script")
		}
		spec.Interpreter = s.interpreter
	}
	if fs.Changed("method") {
		if spec.HTTP == nil {
			return usageErrorf("--method goes with --http")
		}
		m := strings.ToUpper(s.method)
		if !httpMethodRE.MatchString(m) {
			return usageErrorf("--method %q: want an HTTP method such as GET or POST", s.method)
		}
		spec.HTTP.Method = m
	}
	return nil
}

// splitCommand splits "ARGV" into words like a shell, without running one:
// no variables, no substitutions, and shell operators are refused.
func splitCommand(line string) ([]string, error) {
	p := shellwords.NewParser()
	p.ParseEnv, p.ParseBacktick = false, false
	argv, err := p.Parse(line)
	if err != nil {
		return nil, usageErrorf("--command %q: %v (unbalanced quotes?)", line, err)
	}
	if p.Position >= 0 {
		return nil, usageErrorf("--command %q: commands run without a shell, so %q is not an operator here; quote it, or use --command \"sh -c '...'\" or --script", line, line[p.Position:p.Position+1])
	}
	if len(argv) == 0 {
		return nil, usageErrorf("--command: empty command")
	}
	return argv, nil
}

// readScript reads the source of --script FILE ("-" is stdin).
func readScript(file string, stdin io.Reader) (string, error) {
	var b []byte
	var err error
	if file == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(file)
	}
	if err != nil {
		return "", fmt.Errorf("read --script: %w", err)
	}
	if strings.TrimSpace(string(b)) == "" {
		return "", usageErrorf("--script %s: empty script", file)
	}
	return string(b), nil
}

type jobCreateOptions struct {
	baseOptions
	Spec api.JobSpec
}

func newCmdJobCreate(f *Factory, runF func(*jobCreateOptions) error) *cobra.Command {
	opts := &jobCreateOptions{}
	sf := &specFlags{}
	cmd := &cobra.Command{
		Use:   "create NAME --group G SCHEDULE KIND [flags]",
		Short: "Create a job",
		Long: `Create a job. Give exactly one schedule:
  --cron EXPR | --every DUR [--anchor TIME] | --delay DUR | --at TIME | --manual
and exactly one kind:
  --command "ARGV" | --script FILE [--interpreter I] | --http URL [--method M] | --handler NAME`,
		Example: `  jobctl job create backup --group db --cron '0 3 * * *' --tz Europe/Paris \
      --command "pg_dump -Fc -f /backups/app.dump app" --retries 3 --backoff 1m
  jobctl job create ping --group web --every 30s --http https://example.com/health --overlap skip`,
		Args: exactArgs(1, "one job NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			if err := checkJobName(args[0]); err != nil {
				return err
			}
			opts.Spec = api.JobSpec{Name: args[0]}
			if err := sf.apply(cmd.Flags(), &opts.Spec, true, opts.Now, opts.IO.In); err != nil {
				return err
			}
			if runF != nil {
				return runF(opts)
			}
			return runJobCreate(opts)
		},
	}
	sf.register(cmd)
	return cmd
}

func runJobCreate(opts *jobCreateOptions) error {
	j, err := opts.Client.JobCreate(opts.Ctx, opts.Spec)
	if api.IsConflict(err) {
		return fmt.Errorf("%w (change it with 'jobctl job edit %s' or 'jobctl apply')", jobSubject(err, opts.Spec.Name), opts.Spec.Name)
	}
	if err != nil {
		return jobSubject(err, opts.Spec.Name)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(j)
	}
	if j.Paused {
		return p.linef("created job %s (paused)", j.Name)
	}
	return p.linef("created job %s (next fire %s)", j.Name, p.time(j.NextFireAt))
}
