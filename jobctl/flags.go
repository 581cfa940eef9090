package jobctl

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobd/jobd/api"
)

// Enumerations jobctl validates before asking jobd.
var (
	misfirePolicies = []string{api.MisfireSkip, api.MisfireFireOnce, api.MisfireCatchUp}
	overlapPolicies = []string{api.OverlapAllow, api.OverlapQueue, api.OverlapSkip, api.OverlapReplace}
	routeStrategies = api.Routes
	runStates       = api.RunStates
	backoffPolicies = []string{api.BackoffFixed, api.BackoffExponential}
	// interpreters are suggestions for completion; jobd decides which exist.
	interpreters = []string{"bash", "sh", "python3", "node", "perl", "ruby"}
	httpMethods  = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"}
)

// enumValue is a pflag.Value that accepts one of options.
type enumValue struct {
	p       *string
	options []string
}

func (e *enumValue) String() string { return *e.p }
func (e *enumValue) Type() string   { return "string" }

func (e *enumValue) Set(s string) error {
	if !slices.Contains(e.options, s) {
		return fmt.Errorf("want one of %s", strings.Join(e.options, ", "))
	}
	*e.p = s
	return nil
}

// enumFlag defines a string flag on fs that accepts one of options, and
// registers their completion on cmd.
func enumFlag(cmd *cobra.Command, fs *pflag.FlagSet, p *string, name, short, def string, options []string, usage string) {
	*p = def
	fs.VarP(&enumValue{p: p, options: options}, name, short, fmt.Sprintf("%s: {%s}", usage, strings.Join(options, "|")))
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(options, cobra.ShellCompDirectiveNoFileComp))
}

// completeFlag registers fixed completions for a free-form flag.
func completeFlag(cmd *cobra.Command, name string, options []string) {
	_ = cmd.RegisterFlagCompletionFunc(name, cobra.FixedCompletions(options, cobra.ShellCompDirectiveNoFileComp))
}

// parseKV parses repeated K=V flag values into a map; nil when none.
func parseKV(flag string, items []string) (map[string]string, error) {
	if len(items) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(items))
	for _, item := range items {
		k, v, ok := strings.Cut(item, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" || strings.ContainsAny(k, " \t\n") {
			return nil, usageErrorf("--%s %q: want KEY=VALUE", flag, item)
		}
		if _, dup := m[k]; dup {
			return nil, usageErrorf("--%s: key %q given twice", flag, k)
		}
		m[k] = v
	}
	return m, nil
}

// jobNameRE is the shape of a job name (SPEC §3).
var jobNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]*$`)

func checkJobName(name string) error {
	if !jobNameRE.MatchString(name) {
		return usageErrorf("job name %q: want lowercase letters, digits, '_', '.' and '-', starting with a letter or digit", name)
	}
	return nil
}

// localLayouts are the layouts of times given without a zone, read in local
// time.
var localLayouts = []string{
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04",
	"2006-01-02",
}

const timeHelp = `RFC 3339 ("2024-06-01T02:00:00Z"), local "2024-06-01 02:00[:00]", a date, "now", or now±DURATION ("+10m", "-2h")`

// parseTime parses a time flag: RFC 3339, a local date and time, "now", or
// a signed duration from now.
func parseTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "now" {
		return now, nil
	}
	if strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s); err == nil {
			return now.Add(d), nil
		}
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("time %q: want %s", s, timeHelp)
}

// parseTimeFlag is parseTime for flag name, returning a usage error; when
// ago is set, a bare duration ("2h") means that long ago.
func parseTimeFlag(name, s string, now time.Time, ago bool) (time.Time, error) {
	if ago {
		if d, err := time.ParseDuration(s); err == nil && d > 0 && !strings.HasPrefix(s, "+") {
			return now.Add(-d), nil
		}
	}
	t, err := parseTime(s, now, time.Local)
	if err != nil {
		return time.Time{}, usageErrorf("--%s: %v", name, err)
	}
	return t, nil
}

// completionTimeout bounds the daemon call of a dynamic completion.
const completionTimeout = 300 * time.Millisecond

// completionContext is the context of a dynamic completion: the
// command's, bounded by completionTimeout.
func completionContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	return context.WithTimeout(ctx, completionTimeout)
}

// completeJobNames completes job names from jobd, returning nothing when
// jobd does not answer in time.
func (f *Factory) completeJobNames(cmd *cobra.Command, toComplete string) []string {
	ctx, cancel := completionContext(cmd)
	defer cancel()
	opts := api.JobListOptions{Limit: 200}
	if toComplete != "" {
		// Jobs are ordered by name: start just before the prefix. '~' sorts
		// after every character a job name may hold.
		n := len(toComplete)
		opts.After = toComplete[:n-1] + string(toComplete[n-1]-1) + "~"
	}
	jobs, err := f.Client().JobList(ctx, opts)
	if err != nil {
		return nil
	}
	var names []string
	for _, j := range jobs {
		if strings.HasPrefix(j.Name, toComplete) {
			names = append(names, j.Name)
		}
	}
	return names
}

// jobNameArg is a ValidArgsFunction completing one job name.
func (f *Factory) jobNameArg(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	return f.completeJobNames(cmd, toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeJobFlag registers job name completion for the flag name.
func (f *Factory) completeJobFlag(cmd *cobra.Command, name string) {
	_ = cmd.RegisterFlagCompletionFunc(name, func(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		return f.completeJobNames(cmd, toComplete), cobra.ShellCompDirectiveNoFileComp
	})
}
