package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// now is the time of every test.
var now = time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)

func at(d time.Duration) api.Time { return api.NewTime(now.Add(d)) }

// fakeClient answers the dashboard's requests from fixtures and records
// them. It stands in for jobd's API, not for any store.
type fakeClient struct {
	mu    sync.Mutex
	calls []string
	// ctxs are the contexts of the calls, in their order; they are kept
	// until the test ends.
	ctxs   []context.Context
	status *api.Status
	jobs   []api.Job
	runs   []api.Run
	execs  []api.Executor
	missed []api.Missed
	// replayCount is what a replay dry run counts per request.
	replayCount int64
	logs        string
	// logsHold keeps log streams open after the output, until their
	// context ends, like the output of a run that goes on.
	logsHold bool
	// fail makes every request fail with it. hook, when set, sees each
	// request as it is made, and makes it fail when it returns an error.
	fail error
	hook func(ctx context.Context, call string) error
	// streams, when set, receives the context of each event stream
	// once it is being read.
	streams chan context.Context
}

func (f *fakeClient) record(ctx context.Context, format string, args ...any) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	call := fmt.Sprintf(format, args...)
	f.calls = append(f.calls, call)
	f.ctxs = append(f.ctxs, ctx)
	if f.hook != nil {
		if err := f.hook(ctx, call); err != nil {
			return err
		}
	}
	return f.fail
}

// requests returns the requests recorded since the last time, but the
// event streams (which a reconnect opens in a goroutine of its own), and
// forgets them.
func (h *harness) requests() []string {
	var rs []string
	for _, c := range h.fc.called() {
		if c != "Events" {
			rs = append(rs, c)
		}
	}
	return rs
}

// contextOf returns the context of the last call recorded that starts
// with prefix, or nil.
func (f *fakeClient) contextOf(prefix string) context.Context {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.calls) - 1; i >= 0; i-- {
		if strings.HasPrefix(f.calls[i], prefix) {
			return f.ctxs[i]
		}
	}
	return nil
}

// called returns the calls recorded since the last time, and forgets them.
func (f *fakeClient) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = nil
	return c
}

func (f *fakeClient) Status(ctx context.Context) (*api.Status, error) {
	if err := f.record(ctx, "Status"); err != nil {
		return nil, err
	}
	return f.status, nil
}

func (f *fakeClient) Events(ctx context.Context) iter.Seq2[api.Event, error] {
	return func(yield func(api.Event, error) bool) {
		_ = f.record(ctx, "Events")
		if f.streams != nil {
			f.streams <- ctx
		}
		<-ctx.Done()
	}
}

func (f *fakeClient) JobList(ctx context.Context, o api.JobListOptions) ([]api.Job, error) {
	if err := f.record(ctx, "JobList after=%s group=%s limit=%d", o.After, o.Group, o.Limit); err != nil {
		return nil, err
	}
	var out []api.Job
	for _, j := range f.jobs {
		if j.Name > o.After && (o.Group == "" || j.Group == o.Group) && (o.Limit == 0 || len(out) < o.Limit) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeClient) JobPause(ctx context.Context, name string) (*api.Job, error) {
	return &api.Job{JobSpec: api.JobSpec{Name: name, Paused: true}}, f.record(ctx, "JobPause %s", name)
}

func (f *fakeClient) JobResume(ctx context.Context, name string) (*api.Job, error) {
	return &api.Job{JobSpec: api.JobSpec{Name: name}}, f.record(ctx, "JobResume %s", name)
}

func (f *fakeClient) JobTrigger(ctx context.Context, name string, _ api.TriggerRequest) (*api.TriggerResponse, error) {
	return &api.TriggerResponse{Job: name, Runs: []api.Run{{ID: "99", Job: name}}}, f.record(ctx, "JobTrigger %s", name)
}

func (f *fakeClient) RunList(ctx context.Context, o api.RunListOptions) ([]api.Run, error) {
	call := fmt.Sprintf("RunList job=%s state=%s before=%s limit=%d", o.Job, o.State, o.Before, o.Limit)
	if o.Executor != "" {
		call += " executor=" + o.Executor
	}
	if err := f.record(ctx, "%s", call); err != nil {
		return nil, err
	}
	var out []api.Run
	for _, r := range f.runs {
		if (o.Job == "" || r.Job == o.Job) && (o.State == "" || r.State == o.State) &&
			(o.Executor == "" || r.ExecutorID == o.Executor) &&
			(o.Before == "" || len(r.ID) < len(o.Before) || (len(r.ID) == len(o.Before) && r.ID < o.Before)) &&
			(o.Limit == 0 || len(out) < o.Limit) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (f *fakeClient) RunGet(ctx context.Context, id string) (*api.Run, error) {
	if err := f.record(ctx, "RunGet %s", id); err != nil {
		return nil, err
	}
	for _, r := range f.runs {
		if r.ID == id {
			return &r, nil
		}
	}
	return nil, &api.Error{Status: 404, Message: "run " + id + " not found"}
}

func (f *fakeClient) RunKill(ctx context.Context, id string) (*api.Run, error) {
	return &api.Run{ID: id, State: api.RunRunning}, f.record(ctx, "RunKill %s", id)
}

func (f *fakeClient) RunLogs(ctx context.Context, id string, offset int64, follow bool) (io.ReadCloser, string, error) {
	if err := f.record(ctx, "RunLogs %s offset=%d follow=%t", id, offset, follow); err != nil {
		return nil, "", err
	}
	var r io.Reader = strings.NewReader(f.logs[min(int(offset), len(f.logs)):])
	if f.logsHold {
		r = io.MultiReader(r, ctxReader{ctx})
	}
	return io.NopCloser(r), api.RunSucceeded, nil
}

// ctxReader blocks until its context ends.
type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func (f *fakeClient) MissedList(ctx context.Context, o api.MissedListOptions) ([]api.Missed, error) {
	return f.missed, f.record(ctx, "MissedList job=%s", o.Job)
}

func (f *fakeClient) Replay(ctx context.Context, req api.ReplayRequest) (*api.ReplayResponse, error) {
	if err := f.record(ctx, "Replay job=%s dry=%t until=%s", req.Job, req.DryRun, req.Until); err != nil {
		return nil, err
	}
	if req.DryRun {
		return &api.ReplayResponse{Count: f.replayCount, DryRun: true}, nil
	}
	return &api.ReplayResponse{Count: f.replayCount, Fired: f.replayCount}, nil
}

func (f *fakeClient) ExecutorList(ctx context.Context) ([]api.Executor, error) {
	return slices.Clone(f.execs), f.record(ctx, "ExecutorList")
}

func (f *fakeClient) ExecutorDrain(ctx context.Context, id string, _ api.DrainRequest) (*api.Executor, error) {
	if err := f.record(ctx, "ExecutorDrain %s", id); err != nil {
		return nil, err
	}
	for _, x := range f.execs {
		if x.ID == id {
			x.State = api.ExecutorDraining
			x.Drain = &api.DrainProgress{RunsLeft: x.Running, StartedAt: api.NewTime(now)}
			return &x, nil
		}
	}
	return nil, &api.Error{Status: 404, Message: "executor " + id + " not found"}
}

func (f *fakeClient) ExecutorUndrain(ctx context.Context, id string) (*api.Executor, error) {
	if err := f.record(ctx, "ExecutorUndrain %s", id); err != nil {
		return nil, err
	}
	for _, x := range f.execs {
		if x.ID == id {
			x.State, x.Drain = api.ExecutorOnline, nil
			return &x, nil
		}
	}
	return nil, &api.Error{Status: 404, Message: "executor " + id + " not found"}
}

// harness drives a Model the way Bubble Tea would, but one message at a
// time: timers are recorded rather than waited for, and commands run only
// when a test runs them.
type harness struct {
	t      *testing.T
	m      *Model
	fc     *fakeClient
	timers []timer
}

// timer is a message the model asked to get after d.
type timer struct {
	d   time.Duration
	msg tea.Msg
}

type harnessOpts struct {
	readOnly      bool
	width, height int
	// view is the view shown first.
	view string
}

func newHarness(t *testing.T, o harnessOpts) *harness {
	t.Helper()
	if o.width == 0 {
		o.width = 120
	}
	if o.height == 0 {
		o.height = 30
	}
	fc := fixtureClient()
	h := &harness{t: t, fc: fc}
	h.m = New(Options{Client: fc, Target: "/run/jobd/jobd.sock", ReadOnly: o.readOnly, View: o.view, Context: t.Context(), NowFunc: func() time.Time { return now }})
	h.m.c.Loc = time.UTC
	h.m.b.afterFunc = func(d time.Duration, msg tea.Msg) tea.Cmd {
		h.timers = append(h.timers, timer{d: d, msg: msg})
		return nil
	}
	// The stream is the tests' to drive: waiting on it ends at once.
	closed := make(chan streamItem)
	close(closed)
	h.m.events = closed
	h.send(tea.WindowSizeMsg{Width: o.width, Height: o.height})
	return h
}

// send updates the model with msg and returns its command (not run).
func (h *harness) send(msg tea.Msg) tea.Cmd {
	h.t.Helper()
	_, cmd := h.m.Update(msg)
	return cmd
}

// deliver updates the model with msg and settles what it returns.
func (h *harness) deliver(msg tea.Msg) []tea.Msg {
	h.t.Helper()
	return h.settle(h.send(msg))
}

// connect delivers jobd's hello, with the fixture status.
func (h *harness) connect() {
	h.t.Helper()
	h.deliver(eventsMsg{gen: h.m.gen, events: []api.Event{{Type: api.EventHello, Status: h.fc.status}}})
}

// events delivers a batch of events of the current stream.
func (h *harness) events(evs ...api.Event) []tea.Msg {
	h.t.Helper()
	return h.deliver(eventsMsg{gen: h.m.gen, events: evs})
}

// settle runs cmd and feeds the messages it returns back to the model,
// again and again, until none is left. Commands that wait (the event
// stream) are not run: the tests deliver events themselves. It returns
// the messages delivered.
func (h *harness) settle(cmd tea.Cmd) []tea.Msg {
	h.t.Helper()
	var delivered []tea.Msg
	queue := []tea.Cmd{cmd}
	for rounds := 0; len(queue) > 0; rounds++ {
		require.Less(h.t, rounds, 200, "commands do not settle")
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		msg := c()
		switch msg := msg.(type) {
		case nil:
			continue
		case tea.BatchMsg:
			queue = append(queue, msg...)
			continue
		case eventsMsg, streamOpenedMsg:
			continue // the stream is the tests' to drive
		}
		delivered = append(delivered, msg)
		_, next := h.m.Update(msg)
		queue = append(queue, next)
	}
	return delivered
}

// run runs cmd and what it batches, and returns their messages without
// delivering them: they are on their way.
func run(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	switch msg := cmd().(type) {
	case nil:
		return nil
	case tea.BatchMsg:
		var msgs []tea.Msg
		for _, c := range msg {
			msgs = append(msgs, run(c)...)
		}
		return msgs
	default:
		return []tea.Msg{msg}
	}
}

// press sends keys ("j", "enter", "ctrl+k", "space") and settles what
// each returns. Keys that open a prompt go with send: the prompt's cursor
// blinks forever.
func (h *harness) press(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		h.settle(h.send(keyMsg(k)))
	}
}

// typeText sends the runes of s as key presses without running their
// commands (a prompt's cursor blinks).
func (h *harness) typeText(s string) {
	h.t.Helper()
	for _, r := range s {
		h.send(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(k string) tea.KeyPressMsg {
	special := map[string]tea.KeyPressMsg{
		"enter":     {Code: tea.KeyEnter},
		"esc":       {Code: tea.KeyEscape},
		"tab":       {Code: tea.KeyTab},
		"shift+tab": {Code: tea.KeyTab, Mod: tea.ModShift},
		"space":     {Code: tea.KeySpace, Text: " "},
		"up":        {Code: tea.KeyUp},
		"down":      {Code: tea.KeyDown},
		"pgdown":    {Code: tea.KeyPgDown},
		"ctrl+c":    {Code: 'c', Mod: tea.ModCtrl},
		"ctrl+k":    {Code: 'k', Mod: tea.ModCtrl},
		"ctrl+r":    {Code: 'r', Mod: tea.ModCtrl},
	}
	if m, ok := special[k]; ok {
		return m
	}
	r := []rune(k)
	if len(r) != 1 {
		panic("keyMsg: unknown key " + k)
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// fire delivers the recorded timers whose message is of the type of
// like, and settles what they return.
func (h *harness) fire(like tea.Msg) {
	h.t.Helper()
	var keep []timer
	var due []tea.Msg
	for _, tm := range h.timers {
		if reflect.TypeOf(tm.msg) == reflect.TypeOf(like) {
			due = append(due, tm.msg)
		} else {
			keep = append(keep, tm)
		}
	}
	h.timers = keep
	for _, msg := range due {
		h.deliver(msg)
	}
}

// pending counts the recorded timers of the type of like.
func (h *harness) pending(like tea.Msg) int {
	return len(h.durations(like))
}

// durations are the waits of the recorded timers of the type of like.
func (h *harness) durations(like tea.Msg) []time.Duration {
	var ds []time.Duration
	for _, tm := range h.timers {
		if reflect.TypeOf(tm.msg) == reflect.TypeOf(like) {
			ds = append(ds, tm.d)
		}
	}
	return ds
}

// readLogs takes the output of the log stream until it ends: each batch
// of output waits for a timer, which it fires.
func (h *harness) readLogs() {
	h.t.Helper()
	for i := 0; h.pending(logsWaitMsg{}) > 0; i++ {
		require.Less(h.t, i, 100, "the log stream does not end")
		h.fire(logsWaitMsg{})
	}
}

// screen is the view as plain text.
func (h *harness) screen() string {
	h.t.Helper()
	v := h.m.View()
	return ansi.Strip(v.Content)
}

// helpBar is the last line of the screen.
func (h *harness) helpBar() string {
	lines := strings.Split(h.screen(), "\n")
	return lines[len(lines)-1]
}

// requireScreen requires every substring on the screen.
func (h *harness) requireScreen(subs ...string) {
	h.t.Helper()
	s := h.screen()
	for _, sub := range subs {
		require.Contains(h.t, s, sub, "screen:\n%s", s)
	}
}

// requireNotScreen requires no substring on the screen.
func (h *harness) requireNotScreen(subs ...string) {
	h.t.Helper()
	s := h.screen()
	for _, sub := range subs {
		require.NotContains(h.t, s, sub, "screen:\n%s", s)
	}
}

// requireSize requires the screen to be exactly the terminal's size.
func (h *harness) requireSize() {
	h.t.Helper()
	lines := strings.Split(h.screen(), "\n")
	require.Len(h.t, lines, h.m.c.Height)
	for i, l := range lines {
		require.LessOrEqual(h.t, ansi.StringWidth(l), h.m.c.Width, "line %d is too wide: %q", i, l)
	}
}

func exitCode(n int) *int { return &n }

// fixtureClient is a jobd with two executors, three jobs, a few runs and
// missed triggers.
func fixtureClient() *fakeClient {
	return &fakeClient{
		status: &api.Status{
			Version: "1.2.3", StartedAt: at(-3 * time.Hour), Leader: true,
			Store: "sqlite /var/lib/jobd/jobd.db", Socket: "/run/jobd/jobd.sock", Listen: "0.0.0.0:7070",
			Jobs: 10000, JobsPaused: 12,
			Executors:       map[string]int{api.ExecutorOnline: 3, api.ExecutorDraining: 1},
			Runs:            map[string]int64{api.RunRunning: 4, api.RunSucceeded: 1234, api.RunFailed: 3},
			Missed:          42,
			PendingTriggers: 120,
			NextTriggers: []api.NextTrigger{
				{Job: "backup", ScheduledAt: at(2 * time.Second)},
				{Job: "report", ScheduledAt: at(90 * time.Second)},
			},
			RunsPerMinute: []api.RunMinute{
				{Minute: at(-2 * time.Minute), Succeeded: 10, Failed: 1},
				{Minute: at(-time.Minute), Succeeded: 40, Failed: 0, Other: 2},
				{Minute: at(0), Succeeded: 20, Failed: 3},
			},
		},
		execs: []api.Executor{
			{ID: "e1", Name: "web-1", Group: "web", State: api.ExecutorOnline, Running: 3, Slots: 4,
				LastSeen: at(-2 * time.Second), Labels: map[string]string{"region": "eu"}},
			{ID: "e2", Name: "web-2", Group: "web", State: api.ExecutorDraining, Running: 1, Slots: 4,
				LastSeen: at(-time.Second), Drain: &api.DrainProgress{RunsLeft: 1, StartedAt: at(-time.Minute), Deadline: at(4 * time.Minute)}},
			{ID: "e3", Name: "batch-1", Group: "batch", State: api.ExecutorOffline, Running: 0, Slots: 2, LastSeen: at(-time.Hour)},
		},
		jobs: []api.Job{
			{JobSpec: api.JobSpec{Name: "backup", Group: "batch", Every: dur(5 * time.Second)}, Kind: api.KindCommand,
				NextFireAt: at(3 * time.Second), LastFireAt: at(-2 * time.Second), LastState: api.RunSucceeded},
			{JobSpec: api.JobSpec{Name: "flaky", Group: "web", Cron: "*/5 * * * *"}, Kind: api.KindCommand,
				NextFireAt: at(4 * time.Minute), LastFireAt: at(-time.Minute), LastState: api.RunFailed},
			{JobSpec: api.JobSpec{Name: "report", Group: "web", Manual: true, Paused: true}, Kind: api.KindScript},
		},
		runs: []api.Run{
			{ID: "7", Job: "backup", State: api.RunRunning, Executor: "web-1", ExecutorID: "e1", Attempt: 1,
				ScheduledAt: at(-3 * time.Second), StartedAt: at(-3 * time.Second)},
			{ID: "6", Job: "flaky", State: api.RunFailed, Executor: "web-2", ExecutorID: "e2", Attempt: 2,
				ScheduledAt: at(-time.Minute), StartedAt: at(-time.Minute), FinishedAt: at(-time.Minute + 1500*time.Millisecond),
				ExitCode: exitCode(1), Error: "exit status 1"},
			{ID: "5", Job: "backup", State: api.RunSucceeded, Executor: "web-1", ExecutorID: "e1", Attempt: 1,
				ScheduledAt: at(-8 * time.Second), StartedAt: at(-8 * time.Second), FinishedAt: at(-6 * time.Second), ExitCode: exitCode(0)},
		},
		missed: []api.Missed{
			{ID: "m1", Job: "tick", From: at(-10 * time.Minute), To: at(-9 * time.Minute), Count: 40, Reason: api.MissedDown},
			{ID: "m2", Job: "tick", From: at(-5 * time.Minute), To: at(-5 * time.Minute), Count: 2, Reason: api.MissedNoExecutor},
			{ID: "m3", Job: "backup", From: at(-time.Hour), To: at(-time.Hour), Count: 1, Reason: api.MissedPaused},
		},
		replayCount: 42,
		logs:        "starting backup\ncopying files\n",
	}
}

func dur(d time.Duration) *api.Duration {
	v := api.Duration(d)
	return &v
}

var errBoom = errors.New("boom")
