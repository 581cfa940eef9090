package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/term"
)

// Run shows the dashboard on the terminal of in and out until the operator
// quits or ctx ends. With noColor it uses no colour at all, whatever the
// terminal can do.
func Run(ctx context.Context, opts Options, in io.Reader, out io.Writer, noColor bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opts.Context = ctx
	_, err := tea.NewProgram(New(opts), programOptions(ctx, in, out, noColor)...).Run()
	if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, tea.ErrInterrupted) {
		return fmt.Errorf("dashboard: %w", err)
	}
	return nil
}

// programOptions are the options of the dashboard's program: it ends with
// ctx, draws on out, reads in when in is a terminal and, with noColor,
// draws through the ASCII profile, which keeps no colour.
func programOptions(ctx context.Context, in io.Reader, out io.Writer, noColor bool) []tea.ProgramOption {
	popts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithOutput(out)}
	// Bubble Tea opens the terminal itself when standard input is not one.
	if f, ok := in.(*os.File); ok && term.IsTerminal(f.Fd()) {
		popts = append(popts, tea.WithInput(in))
	}
	if noColor {
		popts = append(popts, tea.WithColorProfile(colorprofile.ASCII))
	}
	return popts
}
