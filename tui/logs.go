package tui

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/jobd/jobd/api"
)

// Logs view limits.
const (
	// logMaxLines and logMaxBytes bound the output the view keeps; older
	// lines are dropped (jobctl logs prints them all). The viewport
	// measures every line it holds on each update and render, so the
	// bytes bound what an update costs.
	logMaxLines = 20000
	logMaxBytes = 1 << 20
	// logMaxLineBytes bounds one line: the rest of a longer line is cut,
	// and a marker says how much. The viewport wraps every line it shows
	// on each render, so a line of megabytes would freeze the dashboard.
	logMaxLineBytes = 4 << 10
	// logRetryEvery is how often a broken log stream is opened again.
	logRetryEvery = 2 * time.Second
)

// errLogsHidden is why the log stream is closed while the logs are not
// shown: it is opened again, from where it was, when they are.
var errLogsHidden = errors.New("logs not shown")

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
// wrapping; / keeps only the lines containing a text. The output is
// streamed only while the view is shown.
type logsView struct {
	c     *Common
	b     *backend
	vp    viewport.Model
	runID string
	run   *api.Run
	err   error
	lines []string
	// bytes is the size of lines.
	bytes int
	// partial is the line being written, cut to logMaxLineBytes;
	// partialCut is how many bytes of it were cut.
	partial    string
	partialCut int
	dropped    int
	// offset is how much output was read: where a stream opened again
	// starts.
	offset    int64
	gen       int
	ch        <-chan logItem
	cancel    context.CancelFunc
	streaming bool
	done      bool
	broken    error
	hidden    bool
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
	v.lines, v.bytes, v.partial, v.partialCut, v.dropped, v.offset = nil, 0, "", 0, 0, 0
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

// setShown says whether the view is shown. Hiding it closes the log
// stream, which is then opened again, from where it was, once the view is
// shown again: a dashboard that left the logs costs jobd nothing.
func (v *logsView) setShown(shown bool) tea.Cmd {
	if shown {
		v.hidden = false
		return v.reopen()
	}
	v.hidden = true
	if v.runID == "" || v.done {
		return nil
	}
	// What the stream still sends, or a retry of a broken one, is of an
	// older generation and dropped; the output after offset is read again.
	v.stop()
	v.gen++
	if v.broken == nil {
		v.broken = errLogsHidden
	}
	return nil
}

// reopen opens the output again from where it was, if its stream broke
// or was closed while the view was hidden.
func (v *logsView) reopen() tea.Cmd {
	if v.runID == "" || v.hidden || v.broken == nil || v.streaming || v.done {
		return nil
	}
	v.broken = nil
	return openLogsCmd(v.b.ctx, v.b.client, v.runID, v.offset, v.gen)
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
	return tea.Batch(get, v.reopen())
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
	case logsWaitMsg:
		if msg.gen == v.gen && v.streaming {
			return waitLogsCmd(msg.gen, v.ch)
		}
	case logsDataMsg:
		if msg.gen != v.gen {
			return nil
		}
		v.append(msg.data)
		switch {
		case msg.err == nil:
			return v.b.after(logBatchWindow, logsWaitMsg{gen: msg.gen})
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

// append adds output, cutting lines at logMaxLineBytes and keeping
// logMaxLines lines and logMaxBytes bytes at most.
func (v *logsView) append(data []byte) {
	if len(data) == 0 {
		return
	}
	v.offset += int64(len(data))
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		chunk := data
		if i >= 0 {
			chunk = data[:i]
		}
		v.addPartial(chunk)
		if i < 0 {
			break
		}
		data = data[i+1:]
		v.endLine()
	}
	v.trim()
	v.refresh()
}

// addPartial adds b to the line being written, cut at logMaxLineBytes.
func (v *logsView) addPartial(b []byte) {
	room := logMaxLineBytes - len(v.partial)
	if v.partialCut > 0 || room <= 0 {
		v.partialCut += len(b)
		return
	}
	if len(b) <= room {
		v.partial += string(b)
		return
	}
	keep := room
	// Cut on a character, not inside one.
	for keep > 0 && keep > room-utf8.UTFMax && !utf8.RuneStart(b[keep]) {
		keep--
	}
	v.partial += string(b[:keep])
	v.partialCut += len(b) - keep
}

// endLine ends the line being written.
func (v *logsView) endLine() {
	v.addLine(printable(strings.TrimSuffix(v.partial, "\r")) + cutMarker(v.partialCut))
	v.partial, v.partialCut = "", 0
}

func (v *logsView) addLine(l string) {
	v.lines = append(v.lines, l)
	v.bytes += len(l)
}

// trim drops the oldest lines past logMaxLines or logMaxBytes.
func (v *logsView) trim() {
	n := max(len(v.lines)-logMaxLines, 0)
	size := v.bytes
	for i := range n {
		size -= len(v.lines[i])
	}
	for n < len(v.lines) && size > logMaxBytes {
		size -= len(v.lines[n])
		n++
	}
	if n > 0 {
		v.lines = append([]string(nil), v.lines[n:]...)
		v.bytes = size
		v.dropped += n
	}
}

// cutMarker says that n bytes of a line were cut, or is "" when none were.
func cutMarker(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" … [%s cut]", plural(int64(n), "byte"))
}

func (v *logsView) flushPartial() {
	if v.partial != "" || v.partialCut > 0 {
		v.endLine()
		v.trim()
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
		lines = append(lines, printable(v.partial)+cutMarker(v.partialCut))
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
	if api.RunEnded(ev.State) {
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
		if api.RunEnded(r.State) {
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
