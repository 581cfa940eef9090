package jobctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/jobd/jobd/api"
)

// reconnectPolicy is how logs -f reconnects to jobd after losing it.
type reconnectPolicy struct {
	// Initial is the first wait before reconnecting; it doubles per failed
	// attempt, with jitter, up to Max.
	Initial, Max time.Duration
	// GiveUp is how long jobd may stay unreachable before jobctl gives up.
	GiveUp time.Duration
}

// defaultReconnect rides out a restart of jobd.
var defaultReconnect = reconnectPolicy{Initial: 250 * time.Millisecond, Max: 5 * time.Second, GiveUp: 30 * time.Second}

// wait returns the wait before reconnect attempt n (0-based): equal
// jitter, so that many followers do not come back at the same instant.
func (p reconnectPolicy) wait(n int) time.Duration {
	d := p.Initial
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + rand.N(d-half)
}

type logsOptions struct {
	baseOptions
	RunID  string
	Follow bool
	// Reconnect is how a follow reconnects after losing jobd.
	Reconnect reconnectPolicy
}

func newCmdLogs(f *Factory, runF func(*logsOptions) error) *cobra.Command {
	opts := &logsOptions{Reconnect: defaultReconnect}
	cmd := &cobra.Command{
		Use:   "logs RUN_ID [-f]",
		Short: "Print the output of a run, or follow it live with -f",
		Long: `Print the output jobd stored for a run and exit. With -f, keep printing
its output as it arrives until the run ends; then, if the run did not
succeed, say how it ended on stderr (the exit code stays 0). Ctrl-C stops
following.

If jobd restarts while following, jobctl reconnects and resumes where it
was, for up to 30s before it gives up (exit 4).

On a terminal, control characters in the output are shown as '?'; piped
or redirected, the output is copied byte for byte. -o does not apply.`,
		Example: `  jobctl logs 12
  jobctl logs -f $(jobctl job trigger backup)`,
		Args:              exactArgs(1, "one RUN_ID"),
		ValidArgsFunction: cobra.NoFileCompletions,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.baseOptions = f.base(cmd)
			opts.RunID = args[0]
			if runF != nil {
				return runF(opts)
			}
			return runLogs(opts)
		},
	}
	cmd.Flags().BoolVarP(&opts.Follow, "follow", "f", false, "follow the output until the run ends")
	return cmd
}

// transient reports whether err may pass if the request is sent again:
// jobd unreachable or gone mid-answer, or a server-side error; not an
// answer that rejects the request itself (404, 403, 400...).
func transient(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status >= 500 || ae.Status == 429
	}
	return true
}

func runLogs(opts *logsOptions) error {
	ctx, ios := opts.Ctx, opts.IO
	out := &streamOut{w: ios.Out}
	if ios.IsTTY {
		out.w = &termWriter{w: ios.Out}
	}
	// fail ends the output, then returns err.
	fail := func(err error) error {
		_ = out.finish(ios)
		return withSubject(err, fmt.Sprintf("run %q", opts.RunID), opts.RunID)
	}

	var (
		offset    int64     // bytes of output received, where to resume
		connected bool      // a stream was opened once
		lostAt    time.Time // when jobd was lost; zero while connected
		attempt   int       // failed reconnect attempts since the last progress
		lastErr   error     // why the last attempt failed
	)
	for {
		if connected && !lostAt.IsZero() {
			// Reconnecting: wait first, give up when jobd stayed away too long.
			if time.Since(lostAt) >= opts.Reconnect.GiveUp {
				var ue *api.UnreachableError
				if !errors.As(lastErr, &ue) {
					lastErr = &api.UnreachableError{Target: opts.Client.Target(), Err: lastErr}
				}
				return fmt.Errorf("run %s: lost jobd after %d bytes of output and could not reconnect for %s: %w",
					opts.RunID, offset, opts.Reconnect.GiveUp, lastErr)
			}
			if !sleepCtx(ctx, opts.Reconnect.wait(attempt)) {
				return out.finish(ios)
			}
			attempt++
		}

		body, state, err := opts.Client.RunLogs(ctx, opts.RunID, offset, opts.Follow)
		if ctx.Err() != nil {
			return out.finish(ios)
		}
		if err != nil {
			if !connected || !transient(err) {
				return fail(err)
			}
			lastErr = err
			continue
		}
		if !connected {
			connected = true
		} else {
			lostAt = time.Time{} // jobd answers again
		}

		n, readErr, writeErr := out.copy(body)
		_ = body.Close()
		offset += n
		if n > 0 {
			attempt = 0
		}
		if writeErr != nil {
			return fmt.Errorf("write output: %w", writeErr)
		}
		if ctx.Err() != nil {
			return out.finish(ios)
		}

		if readErr == nil { // the answer ended cleanly
			if !opts.Follow || state == api.RunSucceeded {
				return out.finish(ios)
			}
			// The stream ends when the run ends, or early when jobd stops:
			// look which.
			r, err := opts.Client.RunGet(ctx, opts.RunID)
			if ctx.Err() != nil {
				return out.finish(ios)
			}
			switch {
			case err == nil && api.RunEnded(r.State):
				if err := out.finish(ios); err != nil {
					return err
				}
				if r.State != api.RunSucceeded {
					fmt.Fprintf(ios.ErrOut, "run %s ended %s%s\n", r.ID, r.State, endDetail(r))
				}
				return nil
			case err != nil && !transient(err):
				return fail(err)
			case err != nil:
				readErr = err
			default:
				readErr = fmt.Errorf("the output ended while the run is %s", r.State)
			}
		}

		// The stream broke off before the run ended: resume from offset.
		lastErr = readErr
		if lostAt.IsZero() {
			lostAt = time.Now()
		}
		if attempt == 0 { // once per loss, not on every flap of a reconnect
			fmt.Fprintf(ios.ErrOut, "jobctl: lost the output of run %s (%v); reconnecting to resume at byte %d\n",
				opts.RunID, readErr, offset)
		}
	}
}

// endDetail says why a run ended: its exit code, else its error.
func endDetail(r *api.Run) string {
	switch {
	case r.ExitCode != nil:
		return fmt.Sprintf(" (exit %d)", *r.ExitCode)
	case r.Error != "":
		return " (" + printable(oneLine(r.Error, 100)) + ")"
	}
	return ""
}

// sleepCtx waits d, or less if ctx ends first; it reports whether it
// waited d.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// streamOut is standard output of logs: it copies streams as they arrive
// and remembers whether the last line was ended.
type streamOut struct {
	w     io.Writer
	wrote bool
	last  byte
}

// copy copies r to the output as it arrives until r ends. It returns the
// bytes read, the read error (nil at io.EOF) and the write error.
func (s *streamOut) copy(r io.Reader) (n int64, readErr, writeErr error) {
	buf := make([]byte, 32<<10)
	for {
		m, err := r.Read(buf)
		if m > 0 {
			n += int64(m)
			s.wrote, s.last = true, buf[m-1]
			if _, werr := s.w.Write(buf[:m]); werr != nil {
				return n, nil, werr
			}
		}
		if errors.Is(err, io.EOF) {
			return n, nil, nil
		}
		if err != nil {
			return n, err, nil
		}
	}
}

// finish flushes what a terminal writer holds back and, on a terminal,
// ends an unfinished last line so that the prompt (or a note on stderr)
// starts on its own line.
func (s *streamOut) finish(ios *IOStreams) error {
	var err error
	if tw, ok := s.w.(*termWriter); ok {
		err = tw.flush()
	}
	if err == nil && ios.IsTTY && s.wrote && s.last != '\n' {
		_, err = io.WriteString(ios.Out, "\n")
		s.last = '\n'
	}
	return err
}

// termWriter writes job output to a terminal with its control characters
// replaced (see printable), so that the output cannot drive the terminal.
// It holds back a UTF-8 sequence split across writes until it is whole.
type termWriter struct {
	w       io.Writer
	pending []byte
}

// Write implements io.Writer.
func (t *termWriter) Write(p []byte) (int, error) {
	buf := append(t.pending, p...)
	cut := len(buf)
	// Find the start of the last rune; hold it back if it is incomplete.
	for i := len(buf) - 1; i >= 0 && i >= len(buf)-utf8.UTFMax; i-- {
		if utf8.RuneStart(buf[i]) {
			if !utf8.FullRune(buf[i:]) {
				cut = i
			}
			break
		}
	}
	t.pending = append([]byte(nil), buf[cut:]...)
	if cut == 0 {
		return len(p), nil
	}
	if _, err := io.WriteString(t.w, printable(string(buf[:cut]))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// flush writes what Write held back.
func (t *termWriter) flush() error {
	if len(t.pending) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, printable(string(t.pending)))
	t.pending = nil
	return err
}
