package jobctl

import (
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// IOStreams are the standard streams of one jobctl invocation and what is
// known about them.
type IOStreams struct {
	// In is standard input.
	In io.Reader
	// Out is standard output: command results only.
	Out io.Writer
	// ErrOut is standard error: errors, prompts and notes.
	ErrOut io.Writer
	// IsTTY reports whether Out is a terminal (colour may be used).
	IsTTY bool
	// CanPrompt reports whether In and ErrOut are terminals, so jobctl may
	// ask a question or open an editor.
	CanPrompt bool
}

// NewIOStreams returns IOStreams over the given streams, detecting
// terminals among them when they are files.
func NewIOStreams(stdin io.Reader, stdout, stderr io.Writer) *IOStreams {
	return &IOStreams{
		In:        stdin,
		Out:       stdout,
		ErrOut:    stderr,
		IsTTY:     isTerminal(stdout),
		CanPrompt: isTerminal(stdin) && isTerminal(stderr),
	}
}

func isTerminal(v any) bool {
	f, ok := v.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())
}
