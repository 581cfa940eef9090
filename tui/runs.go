package tui

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// runsPageSize is how many runs one page of the Runs view holds.
const runsPageSize = 200

// runFilter is what the Runs view shows: runs of Job, in State, on
// Executor (an id); empty fields keep every run.
type runFilter struct {
	Job      string
	State    string
	Executor string
}

// parseRunFilter parses "job=NAME state=S executor=ID"; a bare word is a
// state when it names one, else a job.
func parseRunFilter(s string) runFilter {
	var f runFilter
	for _, w := range strings.Fields(s) {
		if v, ok := cutKey(w, "job"); ok {
			f.Job = v
		} else if v, ok := cutKey(w, "state"); ok {
			f.State = v
		} else if v, ok := cutKey(w, "executor"); ok {
			f.Executor = v
		} else if slices.Contains(api.RunStates, w) {
			f.State = w
		} else {
			f.Job = w
		}
	}
	return f
}

func (f runFilter) String() string {
	var parts []string
	if f.Job != "" {
		parts = append(parts, "job="+f.Job)
	}
	if f.State != "" {
		parts = append(parts, "state="+f.State)
	}
	if f.Executor != "" {
		parts = append(parts, "executor="+f.Executor)
	}
	return strings.Join(parts, " ")
}

// mayMatch reports whether the run of ev may be one the filter keeps; the
// fields an event leaves empty match.
func (f runFilter) mayMatch(ev *api.RunEvent) bool {
	return (f.Job == "" || ev.Job == "" || ev.Job == f.Job) &&
		(f.State == "" || ev.State == f.State) &&
		(f.Executor == "" || ev.ExecutorID == "" || ev.ExecutorID == f.Executor)
}

// runsLoadedMsg carries one page of runs, newest first.
type runsLoadedMsg struct {
	pageLoad
	runs []api.Run
}

func (runsLoadedMsg) view() viewID { return viewRuns }

// runsView lists runs a page at a time, newest first, live: run events
// change the state of the rows shown at once, and a new run matching the
// filter reloads the first page (at most a few times a second).
type runsView struct {
	c      *Common
	b      *backend
	table  *table
	pages  pages
	runs   []api.Run
	index  map[string]int
	filter runFilter
	enter  key.Binding
}

func newRunsView(c *Common, b *backend) *runsView {
	v := &runsView{c: c, b: b, index: map[string]int{}, enter: relabel(c.Keys.Enter, "logs")}
	v.table = newTable(c, []column{
		{Title: "ID", Width: 8},
		{Title: "JOB", Width: 14, Flex: 2},
		{Title: "STATE", Width: 10},
		{Title: "EXECUTOR", Width: 12, Flex: 1},
		{Title: "TRY", Width: 3, Right: true},
		{Title: "SCHEDULED", Width: 9},
		{Title: "DURATION", Width: 8, Right: true},
		{Title: "EXIT", Width: 4, Right: true},
		{Title: "ERROR", Width: 10, Flex: 2},
	})
	v.table.Empty = "loading runs…"
	v.pages.reset("")
	return v
}

func (v *runsView) load() tea.Cmd { return v.loadPage(v.pages.current()) }

func (v *runsView) loadPage(r pageRequest) tea.Cmd {
	l, f := v.pages.request(r), v.filter
	return v.b.call(func(ctx context.Context) tea.Msg {
		msg := runsLoadedMsg{pageLoad: l}
		runs, err := v.b.client.RunList(ctx, api.RunListOptions{
			Job: f.Job, State: f.State, Executor: f.Executor, Before: l.cursor, Limit: runsPageSize,
		})
		if err != nil {
			msg.err = err
			return msg
		}
		msg.runs = runs
		if len(runs) == runsPageSize {
			msg.next = runs[len(runs)-1].ID
		}
		return msg
	})
}

func (v *runsView) SetSize(width, height int) { v.table.SetSize(width, height) }

func (v *runsView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case runsLoadedMsg:
		// On the newest page, a cursor on the newest run stays on the
		// newest run as new ones come in; elsewhere it stays on its run.
		newest := v.pages.page == 0 && msg.page == 0 && v.table.Cursor() == 0
		if !v.pages.land(msg.pageLoad, len(msg.runs)) {
			return nil
		}
		v.runs = msg.runs
		v.rebuild()
		v.pages.place(v.table, msg.hint)
		if msg.hint == selectKeep && newest {
			v.table.Top()
		}
	case tea.KeyPressMsg:
		return v.key(msg)
	}
	return nil
}

func (v *runsView) key(msg tea.KeyPressMsg) tea.Cmd {
	k := v.c.Keys
	if cmd, ok := v.pages.moveKey(v.table, k, msg, v.loadPage); ok {
		return cmd
	}
	switch {
	case markKey(v.table, k, msg):
	case key.Matches(msg, k.Enter):
		if id := v.table.SelectedKey(); id != "" {
			return drill(viewLogs, id)
		}
	case key.Matches(msg, k.Kill):
		return v.requestKill()
	}
	return nil
}

func (v *runsView) requestKill() tea.Cmd {
	var ended []string
	a := action{kind: actKill, targets: targetsOf(v.table, func(id string) (target, bool) {
		i, ok := v.index[id]
		if !ok {
			return target{}, false
		}
		r := v.runs[i]
		if api.RunEnded(r.State) {
			ended = append(ended, fmt.Sprintf("run %s already ended (%s)", r.ID, r.State))
			return target{}, false
		}
		label := "run " + r.ID + " of job " + printable(r.Job)
		if r.Executor != "" {
			label += " on " + printable(r.Executor)
		}
		return target{id: r.ID, label: label}, true
	})}
	if len(a.targets) == 0 {
		if len(ended) > 0 {
			return flash(strings.Join(ended, "; ")+": nothing to kill", true)
		}
		return nil
	}
	a.count = int64(len(a.targets))
	return requestAction(a)
}

func (v *runsView) rebuild() {
	clear(v.index)
	rows := make([]row, len(v.runs))
	for i, r := range v.runs {
		v.index[r.ID] = i
		rows[i] = v.row(r)
	}
	switch {
	case v.filter != (runFilter{}):
		v.table.Empty = noMatch("run", v.filter.String())
	default:
		v.table.Empty = "no runs yet"
	}
	v.table.SetRows(rows)
}

func (v *runsView) row(r api.Run) row {
	c := v.c
	exit := "-"
	if r.ExitCode != nil {
		exit = strconv.Itoa(*r.ExitCode)
	}
	return row{Key: r.ID, Cells: []cell{
		plain(r.ID),
		plain(r.Job),
		styled(r.State, c.Styles.State(r.State)),
		plain(textfmt.OrDash(r.Executor)),
		plain(strconv.Itoa(r.Attempt)),
		plain(c.clock(r.ScheduledAt)),
		plain(c.runDuration(r)),
		plain(exit),
		plain(textfmt.OrDash(oneLine(r.Error, 200))),
	}}
}

// applyRun applies a run event; it reports whether the page must be
// reloaded: a row changed state (its times, executor and exit code are
// not in the event), or a new run that the filter may keep started while
// the newest runs are shown.
func (v *runsView) applyRun(ev *api.RunEvent) bool {
	if i, ok := v.index[ev.ID]; ok {
		r := &v.runs[i]
		changed := r.State != ev.State
		r.State = ev.State
		if ev.ExecutorID != "" {
			r.ExecutorID = ev.ExecutorID
		}
		if ev.Attempt > 0 {
			r.Attempt = ev.Attempt
		}
		v.table.SetRow(i, v.row(*r))
		return changed
	}
	return v.pages.page == 0 && v.filter.mayMatch(ev)
}

// tick redraws the rows: durations of running runs move with the clock.
func (v *runsView) tick() {
	for i, r := range v.runs {
		if r.FinishedAt.IsZero() && !r.StartedAt.IsZero() {
			v.table.SetRow(i, v.row(r))
		}
	}
}

func (v *runsView) View() string { return v.table.View() }

func (v *runsView) info() string {
	s := "runs"
	if v.pages.loaded {
		switch {
		case len(v.runs) == 0:
			s = "no runs"
		case v.pages.page == 0:
			s = fmt.Sprintf("newest %s · live", plural(int64(len(v.runs)), "run"))
		default:
			s = fmt.Sprintf("older runs, page %d (%d)", v.pages.page+1, len(v.runs))
		}
		if v.pages.next != "" {
			s += " · more below"
		}
	}
	return s + infoSuffix(v.filter.String(), v.table, v.pages.err)
}

func (v *runsView) filterText() string { return v.filter.String() }

func (v *runsView) filterHint() string {
	return "job name and/or state, e.g. backup failed; executor=ID"
}

func (v *runsView) setFilter(s string) tea.Cmd {
	v.filter = parseRunFilter(s)
	v.pages.reset("")
	v.table.ClearMarks()
	v.table.Top()
	return v.load()
}

func (v *runsView) ShortHelp() []key.Binding {
	k := v.c.Keys
	return []key.Binding{v.enter, k.Kill}
}

func (v *runsView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{{v.enter, k.Kill, k.Mark}, tableHelp(k)}
}
