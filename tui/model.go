package tui

import (
	"context"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// MinWidth and MinHeight are the smallest terminal the dashboard draws in.
const (
	MinWidth  = 80
	MinHeight = 20
)

// Reload throttles: a view that events touched is loaded again at most
// once per interval, however many events arrive.
const (
	reloadEvery       = 300 * time.Millisecond
	statusReloadEvery = time.Second
	// statusRefreshEvery reloads the overview while nothing happens, for
	// the next triggers and the minute that rolls over.
	statusRefreshEvery = 5 * time.Second
	// flashFor is how long a flash message stays.
	flashFor = 6 * time.Second
	// streamStableAfter is how long the event stream must stay up before
	// the reconnect backoff starts again from its shortest wait, so that a
	// jobd that says hello and drops the stream is not hammered.
	streamStableAfter = 5 * time.Second
)

// viewID names a view.
type viewID int

const (
	viewOverview viewID = iota
	viewExecutors
	viewJobs
	viewRuns
	viewLogs
	viewMissed
	numViews
)

// viewNames are the names of the views, as the ":" prompt takes them.
var viewNames = [numViews]string{"overview", "executors", "jobs", "runs", "logs", "missed"}

// ViewNames returns the names of the views, in their order, as
// Options.View and the ":" prompt take them.
func ViewNames() []string { return slices.Clone(viewNames[:]) }

func (v viewID) String() string { return viewNames[v] }

// viewAliases are the other names the ":" prompt takes.
var viewAliases = map[string]viewID{
	"o": viewOverview, "ov": viewOverview, "status": viewOverview, "home": viewOverview,
	"x": viewExecutors, "ex": viewExecutors, "exec": viewExecutors, "executor": viewExecutors, "e": viewExecutors,
	"j": viewJobs, "job": viewJobs,
	"r": viewRuns, "run": viewRuns,
	"l": viewLogs, "log": viewLogs,
	"m": viewMissed, "miss": viewMissed,
}

func lookupView(name string) (viewID, bool) {
	name = strings.ToLower(strings.TrimPrefix(name, ":"))
	if i := slices.Index(viewNames[:], name); i >= 0 {
		return viewID(i), true
	}
	v, ok := viewAliases[name]
	return v, ok
}

// view is a Component the root model shows full screen.
type view interface {
	Component
	// load returns the command that loads again what the view shows.
	load() tea.Cmd
	// info is the view's part of the status line.
	info() string
	filterText() string
	// filterHint describes the filter; "" when the view has none.
	filterHint() string
	// setFilter filters the view, loading it again if needed.
	setFilter(s string) tea.Cmd
}

// loadedMsg is the answer of a view's load.
type loadedMsg interface{ view() viewID }

// loadState is where the loads of one view are.
type loadState struct {
	// dirty says that what the view shows changed since it was loaded.
	dirty bool
	// loading says a load is on its way.
	loading bool
	// scheduled says a reloadTickMsg is on its way.
	scheduled bool
	// loaded says the view was loaded once.
	loaded bool
}

// reloadTickMsg ends the throttle of the reloads of a view.
type reloadTickMsg struct{ view viewID }

// clockMsg moves the clock of the views, every second.
type clockMsg struct{}

// flashExpiredMsg removes the flash message of generation gen.
type flashExpiredMsg struct{ gen int }

// navEntry is where esc goes back to.
type navEntry struct {
	from viewID
	// runsFilter is the filter of the Runs view before a drill changed it.
	runsFilter  string
	changedRuns bool
}

// Options configure the dashboard.
type Options struct {
	// Client talks to jobd. Required.
	Client Client
	// Target names where jobd is (its socket or address), for the header.
	Target string
	// ReadOnly removes every action.
	ReadOnly bool
	// Context bounds every request and the event stream; default
	// context.Background(). The dashboard also ends them itself when the
	// operator quits.
	Context context.Context
	// NowFunc returns the time; default time.Now.
	NowFunc func() time.Time
	// View is the name of the first view; default overview.
	View string
	// Keys are the key bindings; default DefaultKeyMap().
	Keys *KeyMap
}

// Model is the dashboard: the root Bubble Tea model. It holds one view per
// screen, keeps the event stream of jobd open (reconnecting by itself) and
// applies its events to the views, loading again the page shown at most a
// few times a second.
type Model struct {
	c       *Common
	b       *backend
	nowFunc func() time.Time
	target  string
	// stop ends b.ctx: every request, the event stream and the logs.
	stop context.CancelFunc

	overview  *overviewView
	executors *executorsView
	jobs      *jobsView
	runs      *runsView
	logs      *logsView
	missed    *missedView
	views     [numViews]view
	active    viewID
	nav       []navEntry
	loads     [numViews]loadState

	// The event stream.
	gen       int
	events    <-chan streamItem
	cancel    context.CancelFunc
	connected bool
	attempts  int
	streamErr error
	version   string
	ticks     int

	prompt  *prompt
	confirm *action
	// preview is the sequence number of the replay dry run whose answer
	// may open a confirmation, 0 when none may; previewView is the view
	// it was asked from.
	previewSeq  int
	preview     int
	previewView viewID

	showHelp  bool
	help      help.Model
	flashText string
	flashErr  bool
	flashGen  int
	bodyH     int
}

var _ tea.Model = (*Model)(nil)

// New returns the dashboard for opts.
func New(opts Options) *Model {
	parent := opts.Context
	if parent == nil {
		parent = context.Background()
	}
	ctx, stop := context.WithCancel(parent)
	now := opts.NowFunc
	if now == nil {
		now = time.Now
	}
	k := DefaultKeyMap()
	if opts.Keys != nil {
		k = *opts.Keys
	}
	keys := &k
	if opts.ReadOnly {
		keys.readOnly()
	}
	c := &Common{Styles: DefaultStyles(true), Keys: keys, Now: now(), Loc: time.Local, ReadOnly: opts.ReadOnly}
	b := &backend{client: opts.Client, ctx: ctx}
	m := &Model{c: c, b: b, nowFunc: now, target: opts.Target, stop: stop, gen: 1, help: help.New()}
	m.help.Styles = c.Styles.Help
	m.help.ShortSeparator = "  "
	m.overview = newOverviewView(c, b)
	m.executors = newExecutorsView(c, b)
	m.jobs = newJobsView(c, b)
	m.runs = newRunsView(c, b)
	m.logs = newLogsView(c, b)
	m.missed = newMissedView(c, b)
	m.views = [numViews]view{m.overview, m.executors, m.jobs, m.runs, m.logs, m.missed}
	for i := range m.loads {
		m.loads[i].dirty = true
	}
	if v, ok := lookupView(opts.View); ok {
		m.active = v
	}
	m.logs.hidden = m.active != viewLogs
	return m
}

// Init opens the event stream and starts the clock.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(
		connectCmd(m.b.ctx, m.b.client, m.gen),
		tea.RequestBackgroundColor,
		m.clockCmd(),
	)
}

func (m *Model) clockCmd() tea.Cmd { return m.b.after(time.Second, clockMsg{}) }

// Active returns the name of the view shown.
func (m *Model) Active() string { return m.active.String() }

// Connected reports whether the event stream of jobd is open.
func (m *Model) Connected() bool { return m.connected }

// Update implements tea.Model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.c.Width, m.c.Height = msg.Width, msg.Height
		m.layout()
		return m, nil
	case tea.BackgroundColorMsg:
		*m.c.Styles = *DefaultStyles(msg.IsDark())
		m.help.Styles = m.c.Styles.Help
		return m, nil
	case clockMsg:
		return m, m.tick()
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case streamOpenedMsg:
		if msg.gen != m.gen {
			msg.cancel()
			return m, nil
		}
		m.events, m.cancel = msg.ch, msg.cancel
		return m, waitEventsCmd(msg.gen, msg.ch)
	case eventsMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		cmds := m.applyEvents(msg.events)
		if msg.err != nil {
			cmds = append(cmds, m.streamBroke(msg.err))
		} else {
			cmds = append(cmds, waitEventsCmd(msg.gen, m.events))
		}
		return m, tea.Batch(cmds...)
	case reconnectMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		m.gen++
		return m, connectCmd(m.b.ctx, m.b.client, m.gen)
	case streamStableMsg:
		if msg.gen == m.gen && m.connected {
			m.attempts = 0
		}
		return m, nil
	case reloadTickMsg:
		ls := &m.loads[msg.view]
		ls.scheduled = false
		if msg.view == m.active && ls.dirty && !ls.loading {
			return m, m.startLoad(msg.view)
		}
		return m, nil
	case loadedMsg:
		v := msg.view()
		ls := &m.loads[v]
		ls.loading, ls.loaded = false, true
		cmd := m.views[v].Update(msg)
		if ls.dirty && v == m.active {
			cmd = tea.Batch(cmd, m.schedule(v))
		}
		return m, cmd
	case logsOpenedMsg, logsDataMsg, logsWaitMsg, logsRetryMsg:
		return m, m.logs.Update(msg)
	case drillMsg:
		return m, m.drill(msg)
	case actionRequestMsg:
		return m, m.requestAction(msg.act)
	case replayPreviewMsg:
		return m, m.previewed(msg)
	case actionDoneMsg:
		return m, m.actionDone(msg)
	case flashMsg:
		return m, m.setFlash(msg.text, msg.isErr)
	case flashExpiredMsg:
		if msg.gen == m.flashGen {
			m.flashText = ""
		}
		return m, nil
	}
	if m.prompt != nil {
		return m, m.prompt.update(msg)
	}
	return m, nil
}

// tick moves the clock: "ago" texts and running durations move, and the
// overview is loaded again now and then.
func (m *Model) tick() tea.Cmd {
	m.c.Now = m.nowFunc()
	m.ticks++
	switch m.active {
	case viewExecutors:
		m.executors.tick()
	case viewJobs:
		m.jobs.tick()
	case viewRuns:
		m.runs.tick()
	}
	cmds := []tea.Cmd{m.clockCmd()}
	if m.connected && m.ticks%int(statusRefreshEvery/time.Second) == 0 {
		cmds = append(cmds, m.invalidate(viewOverview))
	}
	return tea.Batch(cmds...)
}

// layout gives the views the size of the body.
func (m *Model) layout() {
	m.bodyH = max(m.c.Height-4, 1)
	if m.bannerShown() {
		m.bodyH = max(m.bodyH-1, 1)
	}
	for _, v := range m.views {
		v.SetSize(m.c.Width, m.bodyH)
	}
	m.help.SetWidth(m.c.Width - 1)
	if m.prompt != nil {
		m.prompt.input.SetWidth(m.c.Width - promptMargin)
	}
}

// invalidate notes that what view v shows changed; if it is shown, it is
// loaded again at the end of the throttle interval.
func (m *Model) invalidate(v viewID) tea.Cmd {
	m.loads[v].dirty = true
	if v != m.active {
		return nil
	}
	return m.schedule(v)
}

func (m *Model) schedule(v viewID) tea.Cmd {
	ls := &m.loads[v]
	if ls.scheduled || ls.loading {
		return nil
	}
	ls.scheduled = true
	every := reloadEvery
	if v == viewOverview {
		every = statusReloadEvery
	}
	return m.b.after(every, reloadTickMsg{view: v})
}

// startLoad loads view v now.
func (m *Model) startLoad(v viewID) tea.Cmd {
	cmd := m.views[v].load()
	if cmd == nil {
		m.loads[v].dirty = false
		return nil
	}
	m.loads[v].dirty, m.loads[v].loading = false, true
	return cmd
}

// loadIfStale loads view v when it changed since it was loaded, or never
// was, unless a load is on its way. While jobd is unreachable a view that
// was loaded keeps what it shows.
func (m *Model) loadIfStale(v viewID) tea.Cmd {
	ls := &m.loads[v]
	if (ls.dirty || !ls.loaded) && !ls.loading && (m.connected || !ls.loaded) {
		return m.startLoad(v)
	}
	return nil
}

// setActive makes v the view shown. The logs are followed only while
// they are shown: leaving them closes their stream, coming back opens it
// again from where it was.
func (m *Model) setActive(v viewID) tea.Cmd {
	m.showHelp = false
	prev := m.active
	m.active = v
	switch {
	case prev == v:
		return nil
	case v == viewLogs:
		return m.logs.setShown(true)
	case prev == viewLogs:
		return m.logs.setShown(false)
	}
	return nil
}

// show makes v the view shown, loading it if it changed since.
func (m *Model) show(v viewID) tea.Cmd {
	return tea.Batch(m.setActive(v), m.loadIfStale(v))
}

// filterView sets the filter of view v, loading it as the filter needs,
// or as loadIfStale does when the view filters what it holds.
func (m *Model) filterView(v viewID, filter string) tea.Cmd {
	if cmd := m.views[v].setFilter(filter); cmd != nil {
		m.loads[v].dirty, m.loads[v].loading = false, true
		return cmd
	}
	return m.loadIfStale(v)
}

// showFiltered shows v with filter.
func (m *Model) showFiltered(v viewID, filter string) tea.Cmd {
	cmd := m.setActive(v)
	return tea.Batch(cmd, m.filterView(v, filter))
}

// drill opens a view from the selected row, remembering where esc goes
// back to.
func (m *Model) drill(msg drillMsg) tea.Cmd {
	e := navEntry{from: m.active}
	var cmd tea.Cmd
	switch msg.to {
	case viewLogs:
		m.setActive(viewLogs)
		cmd = m.logs.open(msg.filter)
	case viewRuns:
		e.runsFilter, e.changedRuns = m.runs.filterText(), true
		cmd = m.showFiltered(viewRuns, msg.filter)
	default:
		cmd = m.showFiltered(msg.to, msg.filter)
	}
	if len(m.nav) >= 32 {
		m.nav = m.nav[1:]
	}
	m.nav = append(m.nav, e)
	return cmd
}

// back goes back to where the view was drilled into from; else it clears
// the filter of the view.
func (m *Model) back() tea.Cmd {
	if n := len(m.nav); n > 0 {
		e := m.nav[n-1]
		m.nav = m.nav[:n-1]
		var cmds []tea.Cmd
		if e.changedRuns && m.runs.filterText() != e.runsFilter {
			cmds = append(cmds, m.filterView(viewRuns, e.runsFilter))
		}
		cmds = append(cmds, m.show(e.from))
		return tea.Batch(cmds...)
	}
	if m.views[m.active].filterText() != "" {
		return m.filterView(m.active, "")
	}
	return nil
}

func (m *Model) key(msg tea.KeyPressMsg) tea.Cmd {
	k := m.c.Keys
	// Whatever the operator does now, a replay count still on its way
	// must not open a confirmation over it.
	m.preview = 0
	if key.Matches(msg, k.ForceQuit) {
		return m.quit()
	}
	if m.confirm != nil {
		switch {
		case key.Matches(msg, k.Confirm):
			a := *m.confirm
			m.confirm = nil
			if m.c.ReadOnly {
				return nil
			}
			return tea.Batch(m.setFlash(a.gerund()+"…", false), runActionCmd(m.b, a))
		case key.Matches(msg, k.Cancel):
			m.confirm = nil
			return m.setFlash("cancelled", false)
		}
		return nil
	}
	if m.prompt != nil {
		return m.promptKey(msg)
	}
	if m.showHelp {
		switch {
		case key.Matches(msg, k.Help), key.Matches(msg, k.Back):
			m.showHelp = false
			return nil
		case key.Matches(msg, k.Quit):
			return m.quit()
		}
		return nil
	}
	switch {
	case key.Matches(msg, k.Quit):
		return m.quit()
	case key.Matches(msg, k.Help):
		m.showHelp = true
		return nil
	case key.Matches(msg, k.Command):
		return m.openPrompt(promptCommand)
	case key.Matches(msg, k.Filter):
		if m.views[m.active].filterHint() == "" {
			return m.setFlash("the "+m.active.String()+" view has no filter", false)
		}
		return m.openPrompt(promptFilter)
	case key.Matches(msg, k.NextView):
		m.nav = nil
		return m.show((m.active + 1) % numViews)
	case key.Matches(msg, k.PrevView):
		m.nav = nil
		return m.show((m.active + numViews - 1) % numViews)
	case key.Matches(msg, k.Back):
		return m.back()
	case key.Matches(msg, k.Refresh):
		if m.loads[m.active].loading {
			return nil
		}
		return m.startLoad(m.active)
	}
	return m.views[m.active].Update(msg)
}

// quit ends the dashboard: every request on its way, the event stream
// (even one still being opened) and the logs end with it.
func (m *Model) quit() tea.Cmd {
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	m.logs.stop()
	m.stop()
	return tea.Quit
}

func (m *Model) setFlash(text string, isErr bool) tea.Cmd {
	m.flashGen++
	m.flashText, m.flashErr = text, isErr
	gen := m.flashGen
	d := flashFor
	if isErr {
		d *= 2
	}
	return m.b.after(d, flashExpiredMsg{gen: gen})
}
