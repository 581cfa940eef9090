package jobctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/jobd/jobd/api"
)

type applyOptions struct {
	baseOptions
	File   string
	Prune  bool
	DryRun bool
}

func newCmdApply(f *Factory, runF func(*applyOptions) error) *cobra.Command {
	opts := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--prune] [--dry-run]",
		Short: "Make jobd's jobs match a YAML file",
		Long: `Create and update the jobs declared in FILE so that jobd matches it; with
--prune, also delete the jobs FILE does not declare. The file is YAML: either
a mapping with a "jobs:" list, or a bare list. Each job has the fields of
'jobctl job get NAME -o yaml' that describe it (name, group, cron or every or
delay or at or manual, command or script or http or handler, params, ...).
Nothing is sent if the file does not parse.`,
		Example: `  jobctl apply -f jobs.yaml --dry-run
  jobctl apply -f jobs.yaml --prune
  generate-jobs | jobctl apply -f -`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts.baseOptions = f.base(cmd)
			if opts.File == "" {
				return usageErrorf("-f FILE is required (- for stdin)")
			}
			if runF != nil {
				return runF(opts)
			}
			return runApply(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "YAML `FILE` of jobs (- for stdin)")
	cmd.Flags().BoolVar(&opts.Prune, "prune", false, "delete the jobs the file does not declare")
	cmd.Flags().BoolVar(&opts.DryRun, "dry-run", false, "show what would change, change nothing")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml", "json")
	return cmd
}

func runApply(opts *applyOptions) error {
	data, err := readInput(opts.File, opts.IO.In)
	if err != nil {
		return err
	}
	jobs, err := parseJobsFile(displayName(opts.File), data)
	if err != nil {
		return err
	}
	if len(jobs) == 0 && opts.Prune {
		return usageErrorf("%s declares no jobs: refusing to --prune every job", displayName(opts.File))
	}
	res, err := opts.Client.Apply(opts.Ctx, api.ApplyRequest{Jobs: jobs, Prune: opts.Prune, DryRun: opts.DryRun})
	if err != nil {
		return err
	}
	for _, s := range []*[]string{&res.Created, &res.Updated, &res.Unchanged, &res.Deleted} {
		if *s == nil {
			*s = []string{}
		}
	}

	p := opts.Printer
	if p.structured() {
		return p.encode(res)
	}
	var b strings.Builder
	type change struct {
		verb  string
		names []string
		color string
	}
	changes := []change{{"created", res.Created, colorGreen}, {"updated", res.Updated, colorYellow}, {"deleted", res.Deleted, colorRed}}
	if p.wide() {
		changes = append(changes, change{"unchanged", res.Unchanged, colorDim})
	}
	prefix := ""
	if res.DryRun {
		prefix = "would be "
	}
	for _, v := range changes {
		for _, name := range v.names {
			word := prefix + v.verb
			if p.color {
				word = v.color + word + colorReset
			}
			fmt.Fprintf(&b, "job %s %s\n", name, word)
		}
	}
	fmt.Fprintf(&b, "%d created, %d updated, %d unchanged, %d deleted",
		len(res.Created), len(res.Updated), len(res.Unchanged), len(res.Deleted))
	if res.DryRun {
		b.WriteString(" (dry run: nothing changed)")
	}
	b.WriteByte('\n')
	_, err = io.WriteString(p.out, b.String())
	return err
}

// jobsFile is the mapping form of an apply file.
type jobsFile struct {
	Jobs []api.JobSpec `yaml:"jobs"`
}

// parseJobsFile decodes the jobs of an apply file: a mapping with a jobs
// list, or a bare list. Unknown fields, a missing or malformed name and a
// name given twice are errors.
func parseJobsFile(name string, data []byte) ([]api.JobSpec, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, usageErrorf("%s: %s", name, yamlErr(err))
	}
	if len(root.Content) == 0 {
		return []api.JobSpec{}, nil
	}
	var jobs []api.JobSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var err error
	switch root.Content[0].Kind {
	case yaml.SequenceNode:
		err = dec.Decode(&jobs)
	case yaml.MappingNode:
		var jf jobsFile
		err = dec.Decode(&jf)
		jobs = jf.Jobs
	default:
		return nil, usageErrorf("%s: want a list of jobs, or a mapping with a jobs: list", name)
	}
	if err != nil {
		return nil, usageErrorf("%s: %s", name, yamlErr(err))
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return nil, usageErrorf("%s: more than one YAML document; put every job in one jobs: list", name)
	}

	seen := make(map[string]int, len(jobs))
	for i, j := range jobs {
		if j.Name == "" {
			return nil, usageErrorf("%s: job %d has no name", name, i+1)
		}
		if err := checkJobName(j.Name); err != nil {
			return nil, usageErrorf("%s: job %d: %v", name, i+1, err)
		}
		if prev, dup := seen[j.Name]; dup {
			return nil, usageErrorf("%s: job %q is declared twice (jobs %d and %d)", name, j.Name, prev+1, i+1)
		}
		seen[j.Name] = i
	}
	if jobs == nil {
		jobs = []api.JobSpec{}
	}
	return jobs, nil
}
