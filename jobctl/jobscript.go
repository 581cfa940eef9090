package jobctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

type jobScriptOptions struct {
	baseOptions
	Name string
	// Version is the version to print; 0 means the one the job runs now.
	Version int
	// List lists the versions instead.
	List bool
}

func newCmdJobScript(f *Factory, runF func(*jobScriptOptions) error) *cobra.Command {
	opts := &jobScriptOptions{}
	cmd := &cobra.Command{
		Use:   "script NAME [--version N | --list]",
		Short: "Print the source of a script job, or list its versions",
		Long: `Print the source of a script job: the version it runs now, or an older
one with --version N. jobd keeps every version given by create, edit or
apply; --list shows them, newest first.

The source is printed as stored (on a terminal, control characters are
shown as '?'); with -o json or yaml it comes in an object with the job,
the version and the interpreter.`,
		Example: `  jobctl job script backup > backup.sh
  jobctl job script backup --list
  diff <(jobctl job script backup --version 1) <(jobctl job script backup)`,
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			if cmd.Flags().Changed("version") {
				if opts.List {
					return usageErrorf("give --version or --list, not both")
				}
				if opts.Version < 1 {
					return usageErrorf("--version must be at least 1")
				}
			}
			if runF != nil {
				return runF(opts)
			}
			return runJobScript(opts)
		},
	}
	cmd.Flags().IntVar(&opts.Version, "version", 0, "print version `N` (default: the one the job runs)")
	cmd.Flags().BoolVar(&opts.List, "list", false, "list the stored versions, newest first")
	_ = cmd.RegisterFlagCompletionFunc("version", cobra.NoFileCompletions)
	return cmd
}

// scriptSource is a script as -o json and yaml print it.
type scriptSource struct {
	Job         string `json:"job" yaml:"job"`
	Version     int    `json:"version,omitempty" yaml:"version,omitempty"`
	Interpreter string `json:"interpreter,omitempty" yaml:"interpreter,omitempty"`
	Script      string `json:"script" yaml:"script"`
}

func runJobScript(opts *jobScriptOptions) error {
	if opts.List {
		return runJobScriptList(opts)
	}
	src := scriptSource{Job: opts.Name, Version: opts.Version}
	if opts.Version == 0 {
		j, err := opts.Client.JobGet(opts.Ctx, opts.Name)
		if err != nil {
			return jobSubject(err, opts.Name)
		}
		if kind := kindOf(*j); kind != api.KindScript {
			return fmt.Errorf("job %s runs %s, not a script", opts.Name, payload(j.JobSpec))
		}
		src.Version, src.Interpreter, src.Script = j.ScriptVersion, j.Interpreter, j.Script
	} else {
		s, err := opts.Client.JobScript(opts.Ctx, opts.Name, opts.Version)
		if err != nil {
			return jobSubject(err, opts.Name)
		}
		src.Script = s
	}

	p := opts.Printer
	if p.structured() {
		return p.encode(src)
	}
	if !opts.IO.IsTTY {
		// Byte for byte, so that `job script x > x.sh` gives back the file.
		_, err := io.WriteString(opts.IO.Out, src.Script)
		return err
	}
	text := printable(src.Script)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n"
	}
	_, err := io.WriteString(opts.IO.Out, text)
	return err
}

func runJobScriptList(opts *jobScriptOptions) error {
	versions, err := opts.Client.JobScripts(opts.Ctx, opts.Name)
	if err != nil {
		return jobSubject(err, opts.Name)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(versions)
	}
	header := []string{"VERSION", "CREATED", "SIZE", "SHA256"}
	rows := make([][]cell, 0, len(versions))
	for _, v := range versions {
		sum := v.SHA256
		if !p.wide() && len(sum) > 12 {
			sum = sum[:12]
		}
		rows = append(rows, cells(strconv.Itoa(v.Version), p.time(v.CreatedAt), humanBytes(v.Size), textfmt.OrDash(sum)))
	}
	return p.table(header, rows)
}

// humanBytes formats a size: 532 B, 1.2 KiB, 3.4 MiB.
func humanBytes(n int) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := unit, 0
	for m := n / unit; m >= unit && exp < 3; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGT"[exp])
}
