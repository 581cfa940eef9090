// Package jobctl is the operator CLI of jobd: one cobra command per
// operation of SPEC §5, talking to jobd through api.Client.
//
// Every command follows one shape: newCmdX(f, runF) builds the command, its
// RunE fills an options struct (including the command's context), validates
// flags into a *UsageError, then calls runF (a test seam) or runX(opts).
// Output goes to opts.IO.Out in the format of -o; errors come back to Main,
// which prints "jobctl: <message>" and maps them to the exit codes of
// exit.go.
package jobctl

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/completions"
)

// Version is jobctl's version, sent in its User-Agent; cmd/jobctl sets it
// from its build-time version.
var Version = "dev"

// Environment variables jobctl reads.
const (
	EnvSocket  = "JOBCTL_SOCKET"
	EnvAddr    = "JOBCTL_ADDR"
	EnvToken   = "JOBCTL_TOKEN"
	EnvNoColor = "NO_COLOR"
)

// Output formats of -o.
const (
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

var outputFormats = []string{formatTable, formatWide, formatJSON, formatYAML}

// Main runs jobctl with args (without the program name) on the process's
// streams and environment, and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, NewIOStreams(stdin, stdout, stderr), os.Getenv)
}

// run is Main with the streams and the environment injected.
func run(ctx context.Context, args []string, ios *IOStreams, getenv func(string) string) int {
	f := &Factory{IO: ios, GetenvFunc: getenv, NowFunc: time.Now}
	return execute(ctx, f, newCmdRoot(f), args)
}

// execute runs root, built on f, with args and returns the exit code.
func execute(ctx context.Context, f *Factory, root *cobra.Command, args []string) int {
	ios := f.IO
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)

	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return ExitOK
	}
	if !f.started {
		// cobra failed before any command ran: an unknown command or flag,
		// a wrong number of arguments.
		err = &UsageError{Err: err}
		fmt.Fprintf(ios.ErrOut, "jobctl: %s\nRun '%s --help' for usage.\n", errorMessage(err), cmd.CommandPath())
		return ExitUsage
	}
	fmt.Fprintf(ios.ErrOut, "jobctl: %s\n", errorMessage(err))
	if api.IsUnreachable(err) {
		fmt.Fprintf(ios.ErrOut, "hint: start it with 'jobd serve', or point jobctl at it with --socket (or %s) or --addr\n", EnvSocket)
	}
	return exitCode(err)
}

// Factory holds what commands share: the streams, the environment, the
// global flags and the lazily built API client.
type Factory struct {
	// IO are the streams of this invocation.
	IO *IOStreams
	// GetenvFunc looks up an environment variable.
	GetenvFunc func(string) string
	// NowFunc returns the current time.
	NowFunc func() time.Time

	global  globalFlags
	started bool
	client  *api.Client
	// tuiFunc, when set, runs instead of the dashboard (a test seam).
	tuiFunc func(*tuiOptions) error
}

type globalFlags struct {
	socket  string
	addr    string
	token   string
	output  string
	noColor bool
}

func (f *Factory) getenv(key string) string {
	if f.GetenvFunc == nil {
		return ""
	}
	return f.GetenvFunc(key)
}

func (f *Factory) now() time.Time {
	if f.NowFunc == nil {
		return time.Now()
	}
	return f.NowFunc()
}

// Client returns the API client configured by --socket/--addr/--token and
// their environment variables.
func (f *Factory) Client() *api.Client {
	if f.client != nil {
		return f.client
	}
	// Where jobd is: --socket or --addr, then $JOBCTL_SOCKET, then
	// $JOBCTL_ADDR, then the default socket.
	c := &api.Client{
		Socket:    f.global.socket,
		Addr:      f.global.addr,
		Token:     first(f.global.token, f.getenv(EnvToken)),
		UserAgent: "jobctl/" + Version,
	}
	if c.Socket == "" && c.Addr == "" {
		c.Socket = f.getenv(EnvSocket)
		if c.Socket == "" {
			c.Addr = f.getenv(EnvAddr)
		}
	}
	if c.Socket == "" && c.Addr == "" {
		c.Socket = api.DefaultSocket()
	}
	f.client = c
	return c
}

// colorEnabled reports whether output may use colour.
func (f *Factory) colorEnabled() bool {
	return f.IO.IsTTY && !f.global.noColor && f.getenv(EnvNoColor) == "" && f.getenv("TERM") != "dumb"
}

// printer returns the printer of -o for the command's output.
func (f *Factory) printer() *printer {
	return &printer{
		format: f.global.output,
		out:    f.IO.Out,
		color:  f.colorEnabled(),
		now:    f.now(),
		loc:    time.Local,
	}
}

// baseOptions are the fields every command's options struct embeds.
type baseOptions struct {
	Ctx     context.Context
	IO      *IOStreams
	Client  *api.Client
	Printer *printer
	Now     time.Time
}

// base fills the common options of cmd.
func (f *Factory) base(cmd *cobra.Command) baseOptions {
	return baseOptions{
		Ctx:     cmd.Context(),
		IO:      f.IO,
		Client:  f.Client(),
		Printer: f.printer(),
		Now:     f.now(),
	}
}

func first(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

func newCmdRoot(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "jobctl",
		Short: "Operate jobd, the distributed job scheduler",
		Long: `jobctl operates jobd over its HTTP API on a unix socket (or over TCP with
a token). Scripts use its commands with -o json; exit codes are 0 ok,
1 error, 2 usage error or invalid input, 3 not found, 4 cannot reach jobd.
On a terminal, jobctl with no arguments opens the dashboard (jobctl tui).`,
		Version:       Version,
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
		PersistentPreRunE: func(*cobra.Command, []string) error {
			f.started = true
			if f.global.socket != "" && f.global.addr != "" {
				return usageErrorf("give --socket or --addr, not both")
			}
			return nil
		},
	}
	// jobctl alone opens the dashboard on a terminal, and prints its help
	// elsewhere.
	tuiOpts := &tuiOptions{View: "overview"}
	root.RunE = func(cmd *cobra.Command, _ []string) error {
		if f.IO.IsTTY && f.IO.CanPrompt {
			return f.runTUI(cmd, tuiOpts, f.tuiFunc)
		}
		return cmd.Help()
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
		return &UsageError{Err: err}
	})

	pf := root.PersistentFlags()
	pf.StringVar(&f.global.socket, "socket", "", "unix socket of jobd (default $"+EnvSocket+", else "+api.RootSocket+" for root, $XDG_RUNTIME_DIR/jobd.sock otherwise)")
	pf.StringVar(&f.global.addr, "addr", "", "base URL of jobd over TCP, http(s)://host:port (default $"+EnvAddr+" when $"+EnvSocket+" is unset)")
	pf.StringVar(&f.global.token, "token", "", "API token for --addr; prefer $"+EnvToken+", which other users cannot see in ps")
	enumFlag(root, pf, &f.global.output, "output", "o", formatTable, outputFormats, "output format")
	pf.BoolVar(&f.global.noColor, "no-color", false, "never colour output (also $NO_COLOR)")

	root.AddCommand(
		newCmdStatus(f, nil),
		newCmdJob(f),
		newCmdApply(f, nil),
		newCmdRun(f),
		newCmdLogs(f, nil),
		newCmdExecutor(f),
		newCmdMissed(f),
		newCmdReplay(f, nil),
		newCmdTUI(f, f.tuiFunc),
	)
	completions.Register(root)
	return root
}

// exactArgs is cobra.ExactArgs with a message naming the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (got %d arguments)", cmd.CommandPath(), names, len(args))
		}
		return nil
	}
}

// noArgs is cobra.NoArgs with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("%s takes no arguments (got %q)", cmd.CommandPath(), args[0])
	}
	return nil
}

// newGroupCmd returns a command that only holds subcommands: alone it prints
// its help; with an unknown subcommand it is a usage error (cobra would
// print the help and exit 0).
func newGroupCmd(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{
		Use:     use,
		Short:   short,
		Aliases: aliases,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return cmd.Help()
		},
	}
}
