package jobctl

import (
	"context"
	"errors"
	"fmt"

	"github.com/jobd/jobd/api"
)

// Exit codes of jobctl (SPEC §5). Scripts depend on them.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitError is any error without a more specific code.
	ExitError = 1
	// ExitUsage means bad input: bad flags or arguments, a malformed file,
	// input jobd rejected as invalid (400, 413), or a cancelled
	// confirmation.
	ExitUsage = 2
	// ExitNotFound means jobd answered 404: no such job, run or executor.
	ExitNotFound = 3
	// ExitUnreachable means jobd could not be reached at all.
	ExitUnreachable = 4
)

// UsageError is bad input found by jobctl itself; it exits with ExitUsage.
type UsageError struct {
	Err error
}

// Error implements error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf returns a *UsageError with a formatted message.
func usageErrorf(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// errCancelled means the user declined a confirmation.
var errCancelled = errors.New("cancelled")

// exitCode maps an error returned by a command to jobctl's exit code.
func exitCode(err error) int {
	var ue *UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue), errors.Is(err, errCancelled):
		return ExitUsage
	case api.IsUnreachable(err):
		return ExitUnreachable
	case api.IsNotFound(err):
		return ExitNotFound
	case api.IsInvalid(err):
		return ExitUsage
	default:
		return ExitError
	}
}

// errorMessage is what jobctl prints after "jobctl: " for err.
func errorMessage(err error) string {
	if errors.Is(err, context.Canceled) {
		return "interrupted"
	}
	return err.Error()
}
