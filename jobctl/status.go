package jobctl

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

type statusOptions struct {
	baseOptions
}

func newCmdStatus(f *Factory, runF func(*statusOptions) error) *cobra.Command {
	opts := &statusOptions{}
	return &cobra.Command{
		Use:   "status",
		Short: "Show the daemon, its leadership, and counts of jobs, runs and executors",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			if runF != nil {
				return runF(opts)
			}
			return runStatus(opts)
		},
	}
}

func runStatus(opts *statusOptions) error {
	s, err := opts.Client.Status(opts.Ctx)
	if err != nil {
		return err
	}
	p := opts.Printer
	if p.structured() {
		if s.NextTriggers == nil {
			s.NextTriggers = []api.NextTrigger{}
		}
		return p.encode(s)
	}
	role := "follower"
	if s.Leader {
		role = "leader"
	}
	up := "-"
	if !s.StartedAt.IsZero() {
		up = textfmt.Duration(p.now.Sub(s.StartedAt.Time)) + " (since " + p.time(s.StartedAt) + ")"
	}
	pairs := [][2]string{
		{"Version", textfmt.OrDash(s.Version)},
		{"Role", role},
		{"Up", up},
		{"Store", textfmt.OrDash(s.Store)},
		{"Socket", textfmt.OrDash(s.Socket)},
		{"Listen", textfmt.OrDash(s.Listen)},
		{"Jobs", fmt.Sprintf("%d (%d paused)", s.Jobs, s.JobsPaused)},
		{"Executors", countsInt(s.Executors)},
		{"Runs", countsInt64(s.Runs)},
		{"Missed", fmt.Sprintf("%d", s.Missed)},
		{"Pending", fmt.Sprintf("%d triggers", s.PendingTriggers)},
	}
	for i, t := range s.NextTriggers {
		key := ""
		if i == 0 {
			key = "Next"
		}
		pairs = append(pairs, [2]string{key, p.time(t.ScheduledAt) + "  " + t.Job})
	}
	return p.kv(pairs)
}

func countsInt(m map[string]int) string {
	m64 := make(map[string]int64, len(m))
	for k, v := range m {
		m64[k] = int64(v)
	}
	return countsInt64(m64)
}

// countsInt64 formats counts by state, "12 online, 1 draining", or "none".
func countsInt64(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if m[k] != 0 {
			parts = append(parts, fmt.Sprintf("%d %s", m[k], k))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
