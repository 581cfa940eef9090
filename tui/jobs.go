package tui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
)

// jobsPageSize is how many jobs one page holds: more than a screen, so
// that the page is reloaded rarely as the cursor moves.
const jobsPageSize = 200

// pager pages a list that jobd orders, by cursor: cursors[i] is where page
// i starts, "" for the first.
type pager struct {
	cursors []string
	page    int
	// more says the page was full, so there may be a next one.
	more bool
}

func (p *pager) cursor() string {
	if p.page < len(p.cursors) {
		return p.cursors[p.page]
	}
	return ""
}

// reset goes back to the first page, which starts at first.
func (p *pager) reset(first string) {
	p.cursors, p.page, p.more = []string{first}, 0, false
}

// where to put the cursor once a page is loaded.
type selectHint int

const (
	selectKeep  selectHint = iota // the same row, by key
	selectFirst                   // the first row (the page after)
	selectLast                    // the last row (the page before)
)

// jobsLoadedMsg carries one page of jobs.
type jobsLoadedMsg struct {
	seq    int
	page   int
	cursor string
	jobs   []api.Job
	more   bool
	hint   selectHint
	err    error
}

func (jobsLoadedMsg) view() viewID { return viewJobs }

// jobFilter is what the Jobs view shows: jobs whose name starts with
// Prefix, in Group.
type jobFilter struct {
	Prefix string
	Group  string
}

func parseJobFilter(s string) jobFilter {
	var f jobFilter
	for _, w := range strings.Fields(s) {
		if g, ok := cutKey(w, "group"); ok {
			f.Group = g
			continue
		}
		f.Prefix = w
	}
	return f
}

func (f jobFilter) String() string {
	var parts []string
	if f.Prefix != "" {
		parts = append(parts, f.Prefix)
	}
	if f.Group != "" {
		parts = append(parts, "group="+f.Group)
	}
	return strings.Join(parts, " ")
}

// cutKey parses "key=value" or "key:value".
func cutKey(w, k string) (string, bool) {
	for _, sep := range []string{"=", ":"} {
		if v, ok := strings.CutPrefix(w, k+sep); ok {
			return v, true
		}
	}
	return "", false
}

// firstCursor is the paging cursor just before the first name starting
// with prefix: jobs are ordered by name and '~' sorts after every
// character a job name may hold.
func firstCursor(prefix string) string {
	if prefix == "" {
		return ""
	}
	n := len(prefix)
	return prefix[:n-1] + string(prefix[n-1]-1) + "~"
}

// jobsView lists jobs a page at a time, ordered by name: schedule, next
// and last fire, last outcome, paused. Moving past the last row loads the
// next page; past the first row, the page before.
type jobsView struct {
	c      *Common
	b      *backend
	table  *table
	jobs   []api.Job
	index  map[string]int
	filter jobFilter
	pager  pager
	seq    int
	loaded bool
	err    error
	enter  key.Binding
}

func newJobsView(c *Common, b *backend) *jobsView {
	v := &jobsView{c: c, b: b, index: map[string]int{}, enter: relabel(c.Keys.Enter, "its runs")}
	v.table = newTable(c, []column{
		{Title: "NAME", Width: 16, Flex: 2},
		{Title: "SCHEDULE", Width: 14, Flex: 1},
		{Title: "NEXT", Width: 10},
		{Title: "LAST", Width: 10},
		{Title: "LAST STATE", Width: 10},
		{Title: "PAUSED", Width: 6},
		{Title: "GROUP", Width: 10, Flex: 1},
		{Title: "KIND", Width: 8},
	})
	v.table.Empty = "loading jobs…"
	v.pager.reset("")
	return v
}

// load reloads the page shown.
func (v *jobsView) load() tea.Cmd { return v.loadPage(v.pager.page, v.pager.cursor(), selectKeep) }

func (v *jobsView) loadPage(page int, cursor string, hint selectHint) tea.Cmd {
	v.seq++
	seq, f := v.seq, v.filter
	return v.b.call(func(ctx context.Context) tea.Msg {
		jobs, err := v.b.client.JobList(ctx, api.JobListOptions{Group: f.Group, After: cursor, Limit: jobsPageSize})
		msg := jobsLoadedMsg{seq: seq, page: page, cursor: cursor, hint: hint, err: err}
		if err != nil {
			return msg
		}
		msg.more = len(jobs) == jobsPageSize
		if f.Prefix != "" {
			for i, j := range jobs {
				if !strings.HasPrefix(j.Name, f.Prefix) {
					jobs, msg.more = jobs[:i], false
					break
				}
			}
		}
		msg.jobs = jobs
		return msg
	})
}

func (v *jobsView) SetSize(width, height int) { v.table.SetSize(width, height) }

func (v *jobsView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case jobsLoadedMsg:
		if msg.seq != v.seq {
			return nil // a newer request is on its way
		}
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		if len(msg.jobs) == 0 && msg.page > 0 {
			// The page after a full page was empty: stay.
			v.pager.more = false
			return nil
		}
		v.err, v.loaded = nil, true
		v.pager.page = msg.page
		v.pager.cursors = append(v.pager.cursors[:msg.page], msg.cursor)
		v.pager.more = msg.more
		v.jobs = msg.jobs
		v.rebuild()
		switch msg.hint {
		case selectFirst:
			v.table.Top()
		case selectLast:
			v.table.Bottom()
		}
	case tea.KeyPressMsg:
		return v.key(msg)
	}
	return nil
}

func (v *jobsView) key(msg tea.KeyPressMsg) tea.Cmd {
	k := v.c.Keys
	switch mv := moveKey(v.table, k, msg); mv {
	case movePastBottom:
		if v.pager.more && len(v.jobs) > 0 {
			return v.loadPage(v.pager.page+1, v.jobs[len(v.jobs)-1].Name, selectFirst)
		}
		return nil
	case movePastTop:
		if v.pager.page > 0 {
			return v.loadPage(v.pager.page-1, v.pager.cursors[v.pager.page-1], selectLast)
		}
		return nil
	case moveDone:
		return nil
	}
	switch {
	case key.Matches(msg, k.Mark):
		v.table.ToggleMark()
		v.table.MoveDown(1)
	case key.Matches(msg, k.Enter):
		if name := v.table.SelectedKey(); name != "" {
			return drill(viewRuns, runFilter{Job: name}.String())
		}
	case key.Matches(msg, k.Trigger):
		return v.request(actTrigger)
	case key.Matches(msg, k.Pause):
		return v.request(actPause)
	case key.Matches(msg, k.Resume):
		return v.request(actResume)
	}
	return nil
}

func (v *jobsView) request(kind actionKind) tea.Cmd {
	a := action{kind: kind}
	for _, name := range v.table.Targets() {
		a.targets = append(a.targets, target{id: name, label: printable(name)})
	}
	if len(a.targets) == 0 {
		return nil
	}
	a.count = int64(len(a.targets))
	return requestAction(a)
}

// rebuild makes the rows from the jobs.
func (v *jobsView) rebuild() {
	clear(v.index)
	rows := make([]row, len(v.jobs))
	for i, j := range v.jobs {
		v.index[j.Name] = i
		rows[i] = v.row(j)
	}
	switch {
	case v.filter != (jobFilter{}):
		v.table.Empty = fmt.Sprintf("no job matches %q (esc clears the filter)", v.filter.String())
	default:
		v.table.Empty = "no jobs yet: create one with 'jobctl job create'"
	}
	v.table.SetRows(rows)
}

func (v *jobsView) row(j api.Job) row {
	c := v.c
	paused := plain("no")
	if j.Paused {
		paused = styled("yes", &c.Styles.StateWarn)
	}
	next := c.ago(j.NextFireAt)
	if j.Paused && j.NextFireAt.IsZero() {
		next = "paused"
	}
	return row{Key: j.Name, Cells: []cell{
		plain(j.Name),
		plain(scheduleText(c, j)),
		plain(next),
		plain(c.ago(j.LastFireAt)),
		styled(orDash(j.LastState), c.Styles.State(j.LastState)),
		paused,
		plain(j.Group),
		plain(orDash(j.Kind)),
	}}
}

// scheduleText describes the schedule of j in one short string.
func scheduleText(c *Common, j api.Job) string {
	s := j.JobSpec
	switch {
	case s.Cron != "":
		return "cron " + s.Cron
	case s.Every != nil:
		return "every " + s.Every.D().String()
	case s.Delay != nil:
		return "delay " + s.Delay.D().String()
	case s.At != nil:
		return "at " + c.clock(*s.At)
	case s.Manual:
		return "manual"
	}
	return orDash(j.Schedule)
}

// inPage reports whether a job called name belongs to the page shown.
func (v *jobsView) inPage(name string) bool {
	if v.filter.Prefix != "" && !strings.HasPrefix(name, v.filter.Prefix) {
		return false
	}
	if c := v.pager.cursor(); c != "" && name <= c {
		return false
	}
	if v.pager.more && len(v.jobs) > 0 && name > v.jobs[len(v.jobs)-1].Name {
		return false
	}
	return true
}

// applyJob applies a job event; it reports whether the page shown must
// be reloaded.
func (v *jobsView) applyJob(ev *api.JobEvent) bool {
	if ev.Deleted {
		if i, ok := v.index[ev.Name]; ok {
			v.jobs = append(v.jobs[:i], v.jobs[i+1:]...)
			v.rebuild()
		}
	}
	return v.inPage(ev.Name)
}

// applyRun applies a run event to the job of the run, when it is shown:
// the state of its newest run changes at once. It reports whether the
// page must be reloaded (the last fire moved, or an older run changed).
func (v *jobsView) applyRun(ev *api.RunEvent) bool {
	i, ok := v.index[ev.Job]
	if !ok {
		return false
	}
	v.jobs[i].LastState = ev.State
	v.table.SetRow(i, v.row(v.jobs[i]))
	return true
}

// tick redraws the rows, whose "ago" texts move with the clock.
func (v *jobsView) tick() {
	if len(v.jobs) > 0 {
		v.rebuild()
	}
}

func (v *jobsView) View() string { return v.table.View() }

func (v *jobsView) info() string {
	s := "jobs"
	if v.loaded {
		first := v.pager.page*jobsPageSize + 1
		s = fmt.Sprintf("jobs %d–%d", first, first+len(v.jobs)-1)
		if len(v.jobs) == 0 {
			s = "no jobs"
		}
		if v.pager.more {
			s += " · more below"
		}
		if v.pager.page > 0 {
			s += fmt.Sprintf(" · page %d", v.pager.page+1)
		}
	}
	if f := v.filter.String(); f != "" {
		s += fmt.Sprintf(" · filter %q", f)
	}
	if m := len(v.table.Marked()); m > 0 {
		s += fmt.Sprintf(" · %d marked", m)
	}
	if v.err != nil {
		s += " · " + v.err.Error()
	}
	return s
}

func (v *jobsView) filterText() string { return v.filter.String() }

func (v *jobsView) filterHint() string { return "name prefix, group=G" }

func (v *jobsView) setFilter(s string) tea.Cmd {
	v.filter = parseJobFilter(s)
	v.pager.reset(firstCursor(v.filter.Prefix))
	v.table.ClearMarks()
	v.table.Top()
	return v.load()
}

func (v *jobsView) ShortHelp() []key.Binding {
	k := v.c.Keys
	return []key.Binding{v.enter, k.Trigger, k.Pause, k.Resume}
}

func (v *jobsView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{{v.enter, k.Trigger, k.Pause, k.Resume, k.Mark}, tableHelp(k)}
}
