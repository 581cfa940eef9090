package jobctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/mattn/go-shellwords"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/jobd/jobd/api"
)

type jobEditOptions struct {
	baseOptions
	Name string
	// File is the spec file of -f ("-" for stdin); empty for an editor or
	// flags.
	File string
	// Editor is the editor command line ($VISUAL, $EDITOR, vi).
	Editor string
	// ApplyFlagsFunc applies the spec flags given, if any, to a spec.
	ApplyFlagsFunc func(*api.JobSpec) error
	// FlagsGiven reports whether any spec flag was given.
	FlagsGiven bool
}

func newCmdJobEdit(f *Factory, runF func(*jobEditOptions) error) *cobra.Command {
	opts := &jobEditOptions{}
	sf := &specFlags{}
	cmd := &cobra.Command{
		Use:   "edit NAME [-f FILE | flags]",
		Short: "Change a job: in an editor, from a file, or with flags",
		Long: `Change a job, in one of three ways:
  - with no flags, open its spec as YAML in $VISUAL or $EDITOR (default vi)
    and save it on exit, if it changed;
  - with -f FILE (- for stdin), replace its spec by the one in FILE;
  - with the flags of 'job create', change just those fields (a schedule
    flag replaces the schedule, a kind flag the kind; --param, --label and
    --selector add to their maps).`,
		Example: `  jobctl job edit backup
  jobctl job edit backup --cron '30 3 * * *' --timeout 2h
  jobctl job get backup -o yaml | sed s/db/db2/ | jobctl job edit backup -f -`,
		Args:              exactArgs(1, "one job NAME"),
		ValidArgsFunction: f.jobNameArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.Name = args[0]
			opts.Editor = first(f.getenv("VISUAL"), f.getenv("EDITOR"), "vi")
			cmd.LocalNonPersistentFlags().VisitAll(func(fl *pflag.Flag) {
				if fl.Changed && fl.Name != "file" {
					opts.FlagsGiven = true
				}
			})
			opts.ApplyFlagsFunc = func(spec *api.JobSpec) error {
				return sf.apply(cmd.Flags(), spec, false, opts.Now, opts.IO.In)
			}
			if opts.File != "" && opts.FlagsGiven {
				return usageErrorf("give -f FILE or flags, not both")
			}
			if opts.File == "" && !opts.FlagsGiven && !opts.IO.CanPrompt {
				return usageErrorf("no terminal to run an editor in: give -f FILE or flags")
			}
			if runF != nil {
				return runF(opts)
			}
			return runJobEdit(opts)
		},
	}
	cmd.Flags().StringVarP(&opts.File, "file", "f", "", "replace the spec by the YAML (or JSON) in `FILE` (- for stdin)")
	sf.register(cmd)
	return cmd
}

func runJobEdit(opts *jobEditOptions) error {
	var spec api.JobSpec
	switch {
	case opts.File != "":
		data, err := readInput(opts.File, opts.IO.In)
		if err != nil {
			return err
		}
		if spec, err = parseSpec(opts.File, data); err != nil {
			return err
		}
	default:
		j, err := opts.Client.JobGet(opts.Ctx, opts.Name)
		if err != nil {
			return jobSubject(err, opts.Name)
		}
		spec = j.JobSpec
		if opts.FlagsGiven {
			if err := opts.ApplyFlagsFunc(&spec); err != nil {
				return err
			}
		} else {
			return editInEditor(opts, spec)
		}
	}
	return putSpec(opts, spec, "")
}

// putSpec checks the name of spec and sends it; saved names the file the
// user's edit is kept in, for error messages.
func putSpec(opts *jobEditOptions, spec api.JobSpec, saved string) error {
	keep := func(err error) error {
		if saved == "" {
			return err
		}
		return fmt.Errorf("%w\nyour edit is saved in %s", err, saved)
	}
	if spec.Name == "" {
		spec.Name = opts.Name
	}
	if spec.Name != opts.Name {
		return keep(usageErrorf("the spec names job %q, not %q: a job cannot be renamed (create the new one, then rm the old)", spec.Name, opts.Name))
	}
	j, err := opts.Client.JobPut(opts.Ctx, opts.Name, spec)
	if err != nil {
		return keep(jobSubject(err, opts.Name))
	}
	if saved != "" {
		_ = os.Remove(saved)
	}
	p := opts.Printer
	if p.structured() {
		return p.encode(j)
	}
	return p.linef("updated job %s (next fire %s)", j.Name, p.time(j.NextFireAt))
}

const editHeader = `# Edit job %q, then save and quit to apply the change.
# Quit without saving, or save an empty file, to cancel.
# The name cannot change. Durations look like 90s or 1h30m, times like
# 2024-06-01T02:00:00Z.
`

// editInEditor opens spec in the user's editor and puts the result.
func editInEditor(opts *jobEditOptions, spec api.JobSpec) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, editHeader, opts.Name)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := errors.Join(enc.Encode(spec), enc.Close()); err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	original := buf.Bytes()

	tmp, err := os.CreateTemp("", "jobctl-"+opts.Name+"-*.yaml")
	if err != nil {
		return fmt.Errorf("create temp file: %w", err)
	}
	path := tmp.Name()
	_, werr := tmp.Write(original)
	if err := errors.Join(werr, tmp.Close()); err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write temp file: %w", err)
	}

	if err := runEditor(opts.Ctx, opts.Editor, path, opts.IO); err != nil {
		_ = os.Remove(path)
		return err
	}
	edited, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read edited spec: %w", err)
	}
	if bytes.Equal(edited, original) || isBlankYAML(edited) {
		_ = os.Remove(path)
		fmt.Fprintf(opts.IO.ErrOut, "edit cancelled: no change to job %s\n", opts.Name)
		return nil
	}
	newSpec, err := parseSpec(path, edited)
	if err != nil {
		return fmt.Errorf("%w\nyour edit is saved in %s", err, path)
	}
	if sameSpec(spec, newSpec) {
		_ = os.Remove(path)
		fmt.Fprintf(opts.IO.ErrOut, "edit cancelled: no change to job %s\n", opts.Name)
		return nil
	}
	return putSpec(opts, newSpec, path)
}

// runEditor runs the editor command line on path, attached to the terminal.
func runEditor(ctx context.Context, editor, path string, ios *IOStreams) error {
	argv, err := shellwords.Parse(editor)
	if err != nil || len(argv) == 0 {
		return usageErrorf("editor %q: cannot split it into a command", editor)
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], path)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = ios.In, ios.ErrOut, ios.ErrOut
	if f, ok := ios.Out.(*os.File); ok {
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("editor %s: %w", argv[0], err)
	}
	return nil
}

func sameSpec(a, b api.JobSpec) bool {
	ja, errA := json.Marshal(a)
	jb, errB := json.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(ja, jb)
}

// isBlankYAML reports whether data holds only blank lines and comments.
func isBlankYAML(data []byte) bool {
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// readInput reads a file named by a flag, "-" meaning in.
func readInput(file string, in io.Reader) ([]byte, error) {
	if file == "-" {
		b, err := io.ReadAll(in)
		if err != nil {
			return nil, fmt.Errorf("read stdin: %w", err)
		}
		return b, nil
	}
	return os.ReadFile(file)
}

// parseSpec decodes one JobSpec from YAML (JSON is YAML too), refusing
// unknown fields.
func parseSpec(name string, data []byte) (api.JobSpec, error) {
	var spec api.JobSpec
	if isBlankYAML(data) {
		return spec, usageErrorf("%s: no job spec", displayName(name))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return spec, usageErrorf("%s: %v", displayName(name), yamlErr(err))
	}
	return spec, nil
}

func displayName(file string) string {
	if file == "-" {
		return "stdin"
	}
	return file
}

// yamlErr trims the "yaml: " prefix off decoder errors.
func yamlErr(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	return msg
}
