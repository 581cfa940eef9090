package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/jobd/jobd/api"
)

// Logs view limits.
const (
	// logMaxLines is how many lines of output the view keeps; older ones
	// are dropped (jobctl logs prints them all).
	logMaxLines = 20000
	// logRetryEvery is how often a broken log stream is opened again.
	logRetryEvery = 2 * time.Second
)

// runLoadedMsg carries the run whose logs are shown.
type runLoadedMsg struct {
	id  string
	run *api.Run
	err error
}

func (runLoadedMsg) view() viewID { return viewLogs }

// logsRetryMsg asks to open the log stream of generation gen again.
type logsRetryMsg struct{ gen int }

// logsView shows the output of one run. It follows the output as it
// arrives until the operator scrolls up; G follows again. w toggles line
// wrapping; / keeps only the lines containing a text.
type logsView struct {
	c         *Common
	b         *backend
	vp        viewport.Model
	runID     string
	run       *api.Run
	err       error
	lines     []string
	partial   string
	dropped   int
	offset    int64
	gen       int
	ch        <-chan logItem
	cancel    context.CancelFunc
	streaming bool
	done      bool
	broken    error
	following bool
	grep      string
	width     int
	height    int
}

func newLogsView(c *Common, b *backend) *logsView {
	vp := viewport.New()
	vp.SoftWrap = true
	return &logsView{c: c, b: b, vp: vp, following: true}
}

// open shows the output of run id, from the start, following it.
func (v *logsView) open(id string) tea.Cmd {
	v.stop()
	v.gen++
	v.runID, v.run, v.err = id, nil, nil
	v.lines, v.partial, v.dropped, v.offset = nil, "", 0, 0
	v.done, v.broken, v.following, v.grep = false, nil, true, ""
	v.vp.SetContentLines(nil)
	return tea.Batch(openLogsCmd(v.b.ctx, v.b.client, id, 0, v.gen), v.load())
}

// stop closes the log stream.
func (v *logsView) stop() {
	if v.cancel != nil {
		v.cancel()
		v.cancel = nil
	}
	v.streaming = false
}

// load reloads the run; it also opens the output again if its stream
// broke.
func (v *logsView) load() tea.Cmd {
	if v.runID == "" {
		return nil
	}
	id := v.runID
	get := v.b.call(func(ctx context.Context) tea.Msg {
		r, err := v.b.client.RunGet(ctx, id)
		return runLoadedMsg{id: id, run: r, err: err}
	})
	if v.broken != nil && !v.streaming && !v.done {
		v.broken = nil
		return tea.Batch(get, openLogsCmd(v.b.ctx, v.b.client, id, v.offset, v.gen))
	}
	return get
}

func (v *logsView) SetSize(width, height int) {
	v.width, v.height = width, height
	v.vp.SetWidth(width)
	v.vp.SetHeight(max(height-1, 1))
	if v.following {
		v.vp.GotoBottom()
	}
}

func (v *logsView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case runLoadedMsg:
		if msg.id != v.runID {
			return nil
		}
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		v.run, v.err = msg.run, nil
	case logsOpenedMsg:
		if msg.gen != v.gen {
			if msg.cancel != nil {
				msg.cancel()
			}
			return nil
		}
		if msg.err != nil {
			return v.broke(msg.err)
		}
		v.ch, v.cancel, v.streaming, v.broken = msg.ch, msg.cancel, true, nil
		return waitLogsCmd(msg.gen, msg.ch)
	case logsDataMsg:
		if msg.gen != v.gen {
			return nil
		}
		v.append(msg.data)
		switch {
		case msg.err == nil:
			return waitLogsCmd(msg.gen, v.ch)
		case errors.Is(msg.err, io.EOF):
			v.stop()
			v.done = true
			v.flushPartial()
			v.refresh()
			return v.load()
		default:
			v.stop()
			return v.broke(msg.err)
		}
	case logsRetryMsg:
		if msg.gen == v.gen && v.broken != nil && !v.streaming && !v.done {
			return v.load()
		}
	case tea.KeyPressMsg:
		return v.key(msg)
	}
	return nil
}

// broke records that the stream broke with err and schedules a retry;
// a run that does not exist is not retried.
func (v *logsView) broke(err error) tea.Cmd {
	v.streaming = false
	if api.IsNotFound(err) {
		v.err, v.done = err, true
		return nil
	}
	v.broken = err
	gen := v.gen
	return v.b.after(logRetryEvery, logsRetryMsg{gen: gen})
}

// append adds output, keeping logMaxLines lines.
func (v *logsView) append(data []byte) {
	if len(data) == 0 {
		return
	}
	v.offset += int64(len(data))
	text := v.partial + string(data)
	parts := strings.Split(text, "\n")
	v.partial = parts[len(parts)-1]
	for _, p := range parts[:len(parts)-1] {
		v.lines = append(v.lines, printable(strings.TrimSuffix(p, "\r")))
	}
	if n := len(v.lines) - logMaxLines; n > 0 {
		v.lines = append([]string(nil), v.lines[n:]...)
		v.dropped += n
	}
	v.refresh()
}

func (v *logsView) flushPartial() {
	if v.partial != "" {
		v.lines = append(v.lines, printable(v.partial))
		v.partial = ""
	}
}

// refresh puts the lines in the viewport.
func (v *logsView) refresh() {
	lines := make([]string, 0, len(v.lines)+3)
	if v.dropped > 0 {
		lines = append(lines, v.c.Styles.Dim.Render(fmt.Sprintf("… %d earlier lines not shown: jobctl logs %s prints them all", v.dropped, v.runID)))
	}
	for _, l := range v.lines {
		if v.grep == "" || strings.Contains(l, v.grep) {
			lines = append(lines, l)
		}
	}
	if v.partial != "" && (v.grep == "" || strings.Contains(v.partial, v.grep)) {
		lines = append(lines, printable(v.partial))
	}
	if v.done {
		lines = append(lines, v.c.Styles.Dim.Render("— end of output —"))
	}
	v.vp.SetContentLines(lines)
	if v.following {
		v.vp.GotoBottom()
	}
}

func (v *logsView) key(msg tea.KeyPressMsg) tea.Cmd {
	k := v.c.Keys
	switch {
	case key.Matches(msg, k.Follow):
		v.following = true
		v.vp.GotoBottom()
	case key.Matches(msg, k.Up):
		v.scrollUp(1)
	case key.Matches(msg, k.PageUp):
		v.scrollUp(v.vp.Height())
	case key.Matches(msg, k.Top):
		v.following = false
		v.vp.GotoTop()
	case key.Matches(msg, k.Down):
		v.vp.ScrollDown(1)
	case key.Matches(msg, k.PageDown):
		v.vp.ScrollDown(v.vp.Height())
	case key.Matches(msg, k.Wrap):
		v.vp.SoftWrap = !v.vp.SoftWrap
		v.vp.SetXOffset(0)
		if v.following {
			v.vp.GotoBottom()
		}
	case key.Matches(msg, k.Left):
		if !v.vp.SoftWrap {
			v.vp.ScrollLeft(8)
		}
	case key.Matches(msg, k.Right):
		if !v.vp.SoftWrap {
			v.vp.ScrollRight(8)
		}
	}
	return nil
}

// scrollUp scrolls up n lines and stops following.
func (v *logsView) scrollUp(n int) {
	v.vp.ScrollUp(n)
	if !v.vp.AtBottom() {
		v.following = false
	}
}

// applyRun applies a run event of the run shown; once the run ended it is
// loaded again for its exit code.
func (v *logsView) applyRun(ev *api.RunEvent) tea.Cmd {
	if ev.ID != v.runID || v.run == nil {
		return nil
	}
	if v.run.State == ev.State {
		return nil
	}
	v.run.State = ev.State
	if runEnded(ev.State) {
		return v.load()
	}
	return nil
}

func (v *logsView) View() string {
	st := v.c.Styles
	if v.runID == "" {
		return st.Dim.Render(" no run selected: press enter on a run in Runs, or type :logs RUN_ID")
	}
	head := " " + st.Title.Render("run "+v.runID)
	if r := v.run; r != nil {
		head += " · job " + printable(r.Job) + " · " + st.State(r.State).Render(r.State)
		if r.Executor != "" {
			head += " on " + printable(r.Executor)
		}
		if r.Attempt > 1 {
			head += fmt.Sprintf(" · attempt %d", r.Attempt)
		}
		if runEnded(r.State) {
			if r.ExitCode != nil {
				head += fmt.Sprintf(" · exit %d", *r.ExitCode)
			}
			if r.Error != "" {
				head += " · " + printable(oneLine(r.Error, 60))
			}
		}
	}
	var mode string
	switch {
	case v.err != nil:
		mode = st.FlashError.Render(v.err.Error())
	case v.broken != nil:
		mode = st.StateWarn.Render("output lost — reconnecting…")
	case v.done:
		mode = st.Dim.Render("complete")
	case v.following:
		mode = st.Live.Render("FOLLOWING")
	default:
		mode = st.StateWarn.Render("PAUSED") + st.Dim.Render(" — G follows")
	}
	head = ansi.Truncate(head+" · "+mode, v.width, "…")
	body := v.vp.View()
	if len(v.lines) == 0 && v.partial == "" && !v.done {
		body = st.Dim.Render(" waiting for output…")
	}
	return head + "\n" + body
}

func (v *logsView) info() string {
	if v.runID == "" {
		return "logs"
	}
	s := fmt.Sprintf("logs of run %s · %s", v.runID, plural(int64(len(v.lines)+v.dropped), "line"))
	if v.vp.SoftWrap {
		s += " · wrap on"
	} else {
		s += " · wrap off"
	}
	if v.grep != "" {
		s += fmt.Sprintf(" · filter %q", v.grep)
	}
	return s
}

func (v *logsView) filterText() string { return v.grep }

func (v *logsView) filterHint() string { return "show only lines containing this text" }

func (v *logsView) setFilter(s string) tea.Cmd {
	v.grep = s
	v.refresh()
	return nil
}

func (v *logsView) ShortHelp() []key.Binding {
	k := v.c.Keys
	return []key.Binding{k.Follow, k.Wrap, k.Up, k.Down}
}

func (v *logsView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{{k.Follow, k.Wrap, k.Left, k.Right}, {k.Up, k.Down, k.PageUp, k.PageDown, k.Top}}
}
