package tui

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestModel_TooSmall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{width: 79, height: 30})
	h.connect()
	h.requireScreen("Terminal too small: 79×30", "at least 80×20")

	h.send(tea.WindowSizeMsg{Width: 100, Height: 19})
	h.requireScreen("Terminal too small: 100×19")

	h.send(tea.WindowSizeMsg{Width: 80, Height: 20})
	h.requireNotScreen("too small")
	h.requireScreen("<overview>", "jobd 1.2.3")
	h.requireSize()

	// q still quits while the terminal is too small.
	h.send(tea.WindowSizeMsg{Width: 40, Height: 10})
	require.Equal(t, tea.QuitMsg{}, h.send(keyMsg("q"))())
}

func TestModel_Header(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.requireScreen("jobd · /run/jobd/jobd.sock · ◌ connecting…", "waiting for jobd…")

	h.connect()
	require.True(t, h.m.Connected())
	h.requireScreen("jobd 1.2.3 · /run/jobd/jobd.sock · ● live", "overview · 12:00:00",
		"<overview>", " executors ", " jobs ", " runs ", " logs ", " missed ")
	h.requireSize()
}

// The help bar comes from the key map of the view shown.
func TestModel_HelpBar(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{width: 160})
	h.connect()
	h.requireScreen("ctrl+r reload", "? help", ": view", "q quit")
	h.requireNotScreen("/ filter") // the overview has none
	h.requireNotScreen("esc back") // nowhere to go back to

	h.press("tab")
	h.requireScreen("enter its runs", "d drain", "u undrain", "/ filter")
	h.press("tab")
	h.requireScreen("t trigger", "p pause", "r resume")
	h.press("tab")
	h.requireScreen("enter logs", "ctrl+k kill")
	h.press("tab")
	h.requireScreen("G follow", "w wrap")
	h.press("tab")
	h.requireScreen("r replay job", "R replay all")
}

func TestModel_FullHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.press("?")
	h.requireScreen("Keys · jobs", "t", "trigger", "space", "mark", "shift+tab", "previous view",
		":overview  :executors  :jobs  :runs  :logs  :missed", "? or esc closes this help")
	h.requireSize()
	h.press("esc")
	h.requireNotScreen("Keys · jobs")
	h.requireScreen("<jobs>")
}

// Quitting ends the event stream, even one still being opened, and the
// log stream.
func TestModel_Quit(t *testing.T) {
	t.Parallel()
	for _, k := range []string{"q", "ctrl+c"} {
		t.Run(k, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.fc.streams = make(chan context.Context, 1)
			h.fc.logsHold = true
			// The stream Init opens is being read, but the model has not
			// heard of it yet.
			opened := run(connectCmd(h.m.b.ctx, h.m.b.client, h.m.gen))
			require.Len(t, opened, 1)
			stream := <-h.fc.streams
			h.connect()
			// The logs of run 7 are being followed.
			for _, msg := range run(h.send(drillMsg{to: viewLogs, filter: "7"})) {
				h.send(msg) // opens the stream; its output is not waited for
			}
			require.True(t, h.m.logs.streaming)
			logs := h.fc.contextOf("RunLogs 7")
			require.NotNil(t, logs)
			require.NoError(t, stream.Err())
			require.NoError(t, logs.Err())

			require.Equal(t, tea.QuitMsg{}, h.send(keyMsg(k))())
			for name, ctx := range map[string]context.Context{"event stream": stream, "log stream": logs} {
				select {
				case <-ctx.Done():
				default:
					t.Fatalf("the %s goes on after quitting", name)
				}
			}
		})
	}
}

func TestModel_CommandPrompt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()

	h.send(keyMsg(":"))
	h.requireScreen(":", "overview | executors | jobs | runs | logs | missed", "enter apply", "esc cancel")
	h.typeText("executors")
	h.press("enter")
	require.Equal(t, "executors", h.m.Active())
	require.Equal(t, []string{"ExecutorList"}, h.fc.called())
	h.requireScreen("<executors>", "web-1")

	// Short names work, with a filter for the view.
	h.send(keyMsg(":"))
	h.typeText("r backup failed")
	h.press("enter")
	require.Equal(t, "runs", h.m.Active())
	require.Equal(t, []string{"RunList job=backup state=failed before= limit=200"}, h.fc.called())
	h.requireScreen(`filter "job=backup state=failed"`)

	// logs takes a run id.
	h.send(keyMsg(":"))
	h.typeText("logs 7")
	h.press("enter")
	require.Equal(t, "logs", h.m.Active())
	require.Subset(t, h.fc.called(), []string{"RunLogs 7 offset=0 follow=true", "RunGet 7"})

	// tab completes a view name.
	h.send(keyMsg(":"))
	h.typeText("mi")
	h.send(keyMsg("tab"))
	h.requireScreen(":missed", "tab complete")
	h.press("enter")
	require.Equal(t, "missed", h.m.Active())

	// An unknown name says what is known.
	h.send(keyMsg(":"))
	h.typeText("pods")
	h.press("enter")
	require.Equal(t, "missed", h.m.Active())
	h.requireScreen(`unknown view "pods": try overview, executors, jobs, runs, logs, missed`)

	// esc closes the prompt without doing anything.
	h.send(keyMsg(":"))
	h.typeText("jobs")
	h.press("esc")
	require.Equal(t, "missed", h.m.Active())

	h.send(keyMsg(":"))
	h.typeText("q")
	require.Equal(t, tea.QuitMsg{}, h.send(keyMsg("enter"))())
}

// A jump by name or by tab starts a new history: esc does not go back
// across it.
func TestModel_JumpClearsHistory(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.press("enter")
	require.Equal(t, "runs", h.m.Active())
	h.settle(h.m.command("missed"))
	h.press("esc")
	require.Equal(t, "missed", h.m.Active())
	require.NotContains(t, h.helpBar(), "esc back")
}

func TestModel_TabCycles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	var seen []string
	for range numViews {
		h.press("tab")
		seen = append(seen, h.m.Active())
	}
	require.Equal(t, []string{"executors", "jobs", "runs", "logs", "missed", "overview"}, seen)
	h.press("shift+tab")
	require.Equal(t, "missed", h.m.Active())
}

// Drilling in and going back: executor → its runs → a run's logs, and esc
// twice back to the executors, with the runs' filter as it was.
func TestModel_DrillAndBack(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.press("tab")
	h.fc.called()

	h.press("j", "enter") // web-1 (after batch-1) → its runs
	require.Equal(t, "runs", h.m.Active())
	h.requireScreen(`filter "executor=e1"`)
	require.Equal(t, []string{"RunList job= state= before= limit=200 executor=e1"}, h.fc.called())
	h.requireScreen("7 ", "5 ")
	h.requireNotScreen("flaky") // run 6 ran on e2

	h.press("enter") // run 7 → its logs
	require.Equal(t, "logs", h.m.Active())
	require.Contains(t, h.helpBar(), "esc back")
	h.requireScreen("run 7", "starting backup", "copying files")

	h.press("esc")
	require.Equal(t, "runs", h.m.Active())
	h.requireScreen(`filter "executor=e1"`)
	h.press("esc")
	require.Equal(t, "executors", h.m.Active())
	require.Empty(t, h.m.runs.filterText(), "the runs' filter is back to what it was")

	// With nowhere to go back to, esc clears the filter.
	h.send(keyMsg("/"))
	h.typeText("batch")
	h.press("enter")
	h.requireScreen(`filter "batch"`, "batch-1")
	h.requireNotScreen("web-1")
	h.press("esc")
	h.requireScreen("web-1", "batch-1")
}

// A view opened with a filter the view applies itself (executors,
// missed) is loaded the first time all the same, and so is a view shown
// before jobd answered that is filtered.
func TestModel_FilterFirstVisit(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ command, call, shown, gone string }{
		{"executors web", "ExecutorList", "web-1", "batch-1"},
		{"missed tick", "MissedList job=", "tick", "backup"},
	} {
		t.Run(c.command, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.connect()
			h.settle(h.m.command(c.command))
			require.Equal(t, []string{c.call}, h.fc.called())
			h.requireScreen(c.shown)
			h.requireNotScreen(c.gone, "no executors registered", "no missed triggers", "loading")
		})
	}
	t.Run("FilterBeforeHello", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{view: "executors"})
		h.send(keyMsg("/"))
		h.typeText("web")
		h.press("enter")
		require.Equal(t, []string{"ExecutorList"}, h.fc.called())
		h.requireScreen("web-1", `filter "web"`)
	})
}

func TestModel_FilterWithoutFilter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.press("/")
	require.Nil(t, h.m.prompt)
	h.requireScreen("the overview view has no filter")
}

// A stream that breaks shows that jobd is unreachable and reconnects with
// backoff; the next hello reloads the view shown.
func TestModel_Reconnect(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()

	gen := h.m.gen
	h.deliver(eventsMsg{gen: gen, err: &api.UnreachableError{Target: "/run/jobd/jobd.sock", Err: errBoom}})
	require.False(t, h.m.Connected())
	h.requireScreen("✖ unreachable", "jobd unreachable — reconnecting…", "(attempt 1)", "is jobd running?")
	h.requireSize()
	// The rows stay, from before.
	h.requireScreen("backup", "flaky")
	require.Equal(t, 1, h.pending(reconnectMsg{}))

	h.fire(reconnectMsg{})
	require.Equal(t, gen+1, h.m.gen, "a new stream is opened")
	// Whatever the old stream still says is ignored.
	h.deliver(eventsMsg{gen: gen, events: []api.Event{{Type: api.EventHello, Status: h.fc.status}}})
	require.False(t, h.m.Connected())
	h.deliver(eventsMsg{gen: h.m.gen, err: &api.UnreachableError{Target: "/run/jobd/jobd.sock", Err: errBoom}})
	h.requireScreen("(attempt 2)")

	h.fire(reconnectMsg{})
	h.connect()
	require.True(t, h.m.Connected())
	h.requireScreen("● live")
	h.requireNotScreen("reconnecting")
	var lists []string
	for _, c := range h.fc.called() {
		if c != "Events" {
			lists = append(lists, c)
		}
	}
	require.Equal(t, []string{"JobList after= group= limit=200"}, lists, "the view shown is loaded again")
	h.requireSize()
}

func TestModel_StreamLost(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.deliver(eventsMsg{gen: h.m.gen, err: errStreamClosed})
	h.requireScreen("✖ stream lost", "lost jobd's event stream — reconnecting…")
}

// Thousands of run events cost one reload of the page shown, at the end of
// the throttle interval, not one per event.
func TestModel_ThrottledReload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()

	var evs []api.Event
	for i := range 5000 {
		evs = append(evs, api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "1" + strconv.Itoa(1000+i), Job: "tick", State: api.RunPending}})
	}
	h.events(evs...)
	h.events(evs[:10]...)
	require.Empty(t, h.fc.called(), "nothing is loaded before the interval ends")
	require.Equal(t, 1, h.pending(reloadTickMsg{}))

	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"RunList job= state= before= limit=200"}, h.fc.called())
	require.Zero(t, h.pending(reloadTickMsg{}))

	// A view not shown is only marked: it loads when shown.
	h.events(api.Event{Type: api.EventMissed, Missed: &api.MissedEvent{Job: "tick", Count: 1}})
	require.Zero(t, h.pending(reloadTickMsg{}))
	h.settle(h.m.command("missed"))
	require.Equal(t, []string{"MissedList job="}, h.fc.called())
}

func TestModel_Resync(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()
	h.events(api.Event{Type: api.EventResync})
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.fc.called())
}

func TestModel_Refresh(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.press("ctrl+r")
	require.Equal(t, []string{"Status"}, h.fc.called())
}

func TestModel_ReadOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{readOnly: true, width: 160})
	h.connect()
	h.requireScreen("read-only")
	for _, c := range []struct {
		view string
		keys []string
	}{
		{"executors", []string{"d", "u", "space"}},
		{"jobs", []string{"t", "p", "r", "space"}},
		{"runs", []string{"ctrl+k", "space"}},
		{"missed", []string{"r", "R", "space"}},
	} {
		h.settle(h.m.command(c.view))
		bar := h.helpBar()
		for _, word := range []string{"drain", "trigger", "pause", "resume", "kill", "replay", "mark"} {
			require.NotContains(t, bar, word)
		}
		for _, k := range c.keys {
			h.press(k)
			require.Nil(t, h.m.confirm, "%s: %s asks nothing", c.view, k)
		}
		for _, call := range h.fc.called() {
			require.Regexp(t, `^(ExecutorList|JobList|RunList|MissedList)`, call)
		}
	}
	// Even a request that would reach the root is refused, and so is a
	// count of missed triggers, or a confirmation that would be open.
	h.deliver(actionRequestMsg{act: action{kind: actPause, targets: []target{{id: "backup", label: "backup"}}}})
	require.Nil(t, h.m.confirm)
	h.deliver(actionRequestMsg{act: action{kind: actReplay, all: true}})
	h.m.previewSeq++
	h.m.preview, h.m.previewView = h.m.previewSeq, h.m.active
	h.deliver(replayPreviewMsg{seq: h.m.previewSeq, act: action{kind: actReplay, all: true, count: 42}})
	require.Nil(t, h.m.confirm)
	h.m.confirm = &action{kind: actReplay, all: true, count: 42}
	h.press("y")
	require.Nil(t, h.m.confirm)
	require.Empty(t, h.fc.called(), "nothing is asked of jobd, not even a dry run")
	h.press("?")
	h.requireScreen("read-only: actions are off")
}

// With NO_COLOR the program renders through the ASCII profile: no colour
// is left, and every state still reads as a word.
func TestModel_NoColor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	content := h.m.View().Content
	colour := regexp.MustCompile(`\x1b\[[0-9;]*(3[0-9]|4[0-9]|38|48)[;m]`)
	require.Regexp(t, colour, content, "colour when allowed")

	for _, noColor := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoColor=%t", noColor), func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			opts := programOptions(t.Context(), strings.NewReader(""), &out, noColor)
			// A terminal that has colour, without reading one.
			opts = append(opts, tea.WithInput(nil), tea.WithoutSignalHandler(), tea.WithWindowSize(120, 30),
				tea.WithEnvironment([]string{"TERM=xterm-256color", "COLORTERM=truecolor", "CLICOLOR_FORCE=1"}))
			probe := &programProbe{content: content}
			_, err := tea.NewProgram(probe, opts...).Run()
			require.NoError(t, err)
			drawn := out.String()
			if !noColor {
				require.NotEqual(t, colorprofile.ASCII, probe.profile)
				require.Regexp(t, colour, drawn)
				return
			}
			require.Equal(t, colorprofile.ASCII, probe.profile)
			require.NotRegexp(t, colour, drawn)
			for _, word := range []string{"online", "draining (1 left)", "offline", "▸"} {
				require.Contains(t, drawn, word)
			}
		})
	}
}

// programProbe draws content and quits once the program told it the
// colour profile it draws with.
type programProbe struct {
	content string
	profile colorprofile.Profile
}

func (p *programProbe) Init() tea.Cmd { return nil }

func (p *programProbe) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if msg, ok := msg.(tea.ColorProfileMsg); ok {
		p.profile = msg.Profile
		return p, tea.Quit
	}
	return p, nil
}

func (p *programProbe) View() tea.View { return tea.NewView(p.content) }
