package tui

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// Client is what the dashboard asks of jobd. *api.Client implements it;
// tests may implement it to run the dashboard's commands without a server.
type Client interface {
	Status(ctx context.Context) (*api.Status, error)
	Events(ctx context.Context) iter.Seq2[api.Event, error]
	JobList(ctx context.Context, opts api.JobListOptions) ([]api.Job, error)
	JobPause(ctx context.Context, name string) (*api.Job, error)
	JobResume(ctx context.Context, name string) (*api.Job, error)
	JobTrigger(ctx context.Context, name string, req api.TriggerRequest) (*api.TriggerResponse, error)
	RunList(ctx context.Context, opts api.RunListOptions) ([]api.Run, error)
	RunGet(ctx context.Context, id string) (*api.Run, error)
	RunKill(ctx context.Context, id string) (*api.Run, error)
	RunLogs(ctx context.Context, id string, offset int64, follow bool) (io.ReadCloser, string, error)
	MissedList(ctx context.Context, opts api.MissedListOptions) ([]api.Missed, error)
	Replay(ctx context.Context, req api.ReplayRequest) (*api.ReplayResponse, error)
	ExecutorList(ctx context.Context) ([]api.Executor, error)
	ExecutorDrain(ctx context.Context, id string, req api.DrainRequest) (*api.Executor, error)
	ExecutorUndrain(ctx context.Context, id string) (*api.Executor, error)
}

var _ Client = (*api.Client)(nil)

// Common is what every view shares: styles, keys, the terminal size and the
// time the views are drawn at.
type Common struct {
	Styles *Styles
	Keys   *KeyMap
	// Width and Height are the size of the terminal.
	Width, Height int
	// Now is the time "ago" and "in" texts are relative to; the root model
	// moves it every second.
	Now time.Time
	// Loc is the zone times are shown in.
	Loc *time.Location
	// ReadOnly removes every action.
	ReadOnly bool
}

// Component is one part of the screen: a view or a widget. Components are
// pointers updated in place, so that the root model holds each as its
// concrete type and never needs a type assertion to get it back.
type Component interface {
	// Update handles msg and returns what to do next.
	Update(msg tea.Msg) tea.Cmd
	// View renders the component in the size it was given.
	View() string
	// SetSize sets the size the component renders in.
	SetSize(width, height int)
	help.KeyMap
}

// backend runs requests to jobd as commands. ctx bounds every request; it
// ends when the dashboard does.
type backend struct {
	client Client
	ctx    context.Context
	// afterFunc returns a command that sends msg after d; tea.Tick, or a
	// test's recorder.
	afterFunc func(d time.Duration, msg tea.Msg) tea.Cmd
}

// after returns a command that sends msg after d.
func (b *backend) after(d time.Duration, msg tea.Msg) tea.Cmd {
	if b.afterFunc != nil {
		return b.afterFunc(d, msg)
	}
	return tea.Tick(d, func(time.Time) tea.Msg { return msg })
}

// requestTimeout bounds one list or action request.
const requestTimeout = 15 * time.Second

// call returns a command that runs fn, one request, with a bounded
// context and returns its message.
func (b *backend) call(fn func(ctx context.Context) tea.Msg) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(b.ctx, requestTimeout)
		defer cancel()
		return fn(ctx)
	}
}

// do runs fn, one request, with a bounded context of its own: a command
// that makes several requests in turn bounds each with do.
func (b *backend) do(fn func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(b.ctx, requestTimeout)
	defer cancel()
	return fn(ctx)
}

// bounded is do for a request that answers a value.
func bounded[T any](b *backend, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := b.do(func(ctx context.Context) error {
		var err error
		v, err = fn(ctx)
		return err
	})
	return v, err
}

// printable replaces control characters other than tab, so that text from
// a job (its name, output or error) cannot drive the terminal. Tabs become
// spaces.
func printable(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\t':
			b.WriteString("    ")
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b.WriteRune('?')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// oneLine returns the first line of s, cut to n runes.
func oneLine(s string, n int) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

// shortDuration is humanDuration to the second, for texts that change
// every second.
func shortDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Round(time.Second)/time.Second))
	}
	return textfmt.Duration(d)
}

// ago formats t relative to now: "3s ago", "in 5m0s", "now", or "-".
func (c *Common) ago(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := c.Now.Sub(t.Time)
	switch {
	case d > -time.Second && d < time.Second:
		return "now"
	case d > 0:
		return shortDuration(d) + " ago"
	default:
		return "in " + shortDuration(-d)
	}
}

// clock formats t as local time of day, with the date when it is not
// today, or "-".
func (c *Common) clock(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	lt := t.In(c.loc())
	if y, m, d := lt.Date(); y == c.Now.In(c.loc()).Year() && m == c.Now.In(c.loc()).Month() && d == c.Now.In(c.loc()).Day() {
		return lt.Format("15:04:05")
	}
	return lt.Format("2006-01-02 15:04:05")
}

func (c *Common) loc() *time.Location {
	if c.Loc == nil {
		return time.Local
	}
	return c.Loc
}

// runDuration is how long r ran, or has been running, or "-".
func (c *Common) runDuration(r api.Run) string {
	switch {
	case r.StartedAt.IsZero():
		return "-"
	case r.FinishedAt.IsZero() && api.RunEnded(r.State):
		return "…" // ended: the event said so, the reload will tell when
	case r.FinishedAt.IsZero():
		return textfmt.Duration(max(c.Now.Sub(r.StartedAt.Time), 0)) + "+"
	default:
		return textfmt.Duration(r.FinishedAt.Sub(r.StartedAt.Time))
	}
}

// plural formats n with noun, adding an s unless n is 1: "12,345 runs".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// listNames joins names for a question, "a, b and 3 more".
func listNames(names []string, show int) string {
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}

// thousands formats n with thin separators: 12,345.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
