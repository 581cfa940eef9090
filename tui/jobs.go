package tui

import (
	"context"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// jobsPageSize is how many jobs one page holds: more than a screen, so
// that the page is reloaded rarely as the cursor moves.
const jobsPageSize = 200

// jobsLoadedMsg carries one page of jobs.
type jobsLoadedMsg struct {
	pageLoad
	jobs []api.Job
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
	pages  pages
	jobs   []api.Job
	index  map[string]int
	filter jobFilter
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
	v.pages.reset("")
	return v
}

// load reloads the page shown.
func (v *jobsView) load() tea.Cmd { return v.loadPage(v.pages.current()) }

func (v *jobsView) loadPage(r pageRequest) tea.Cmd {
	l, f := v.pages.request(r), v.filter
	return v.b.call(func(ctx context.Context) tea.Msg {
		jobs, err := v.b.client.JobList(ctx, api.JobListOptions{Group: f.Group, After: l.cursor, Limit: jobsPageSize})
		msg := jobsLoadedMsg{pageLoad: l}
		if err != nil {
			msg.err = err
			return msg
		}
		if len(jobs) == jobsPageSize {
			msg.next = jobs[len(jobs)-1].Name
		}
		if f.Prefix != "" {
			for i, j := range jobs {
				if !strings.HasPrefix(j.Name, f.Prefix) {
					jobs, msg.next = jobs[:i], ""
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
		if !v.pages.land(msg.pageLoad, len(msg.jobs)) {
			return nil
		}
		v.jobs = msg.jobs
		v.rebuild()
		v.pages.place(v.table, msg.hint)
	case tea.KeyPressMsg:
		return v.key(msg)
	}
	return nil
}

func (v *jobsView) key(msg tea.KeyPressMsg) tea.Cmd {
	k := v.c.Keys
	if cmd, ok := v.pages.moveKey(v.table, k, msg, v.loadPage); ok {
		return cmd
	}
	switch {
	case markKey(v.table, k, msg):
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
	a := action{kind: kind, targets: targetsOf(v.table, byName)}
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
		v.table.Empty = noMatch("job", v.filter.String())
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
		styled(textfmt.OrDash(j.LastState), c.Styles.State(j.LastState)),
		paused,
		plain(j.Group),
		plain(textfmt.OrDash(j.Kind)),
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
	return textfmt.OrDash(j.Schedule)
}

// inPage reports whether a job called name belongs to the page shown.
func (v *jobsView) inPage(name string) bool {
	if v.filter.Prefix != "" && !strings.HasPrefix(name, v.filter.Prefix) {
		return false
	}
	if c := v.pages.cursor(); c != "" && name <= c {
		return false
	}
	if v.pages.next != "" && len(v.jobs) > 0 && name > v.jobs[len(v.jobs)-1].Name {
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
// An event that does not name the job (a plain change of state: killed,
// lost, assigned) may be of any job shown: the page is loaded again.
func (v *jobsView) applyRun(ev *api.RunEvent) bool {
	if ev.Job == "" {
		return len(v.jobs) > 0
	}
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
	if v.pages.loaded {
		first := v.pages.page*jobsPageSize + 1
		s = fmt.Sprintf("jobs %d–%d", first, first+len(v.jobs)-1)
		if len(v.jobs) == 0 {
			s = "no jobs"
		}
		if v.pages.next != "" {
			s += " · more below"
		}
		if v.pages.page > 0 {
			s += fmt.Sprintf(" · page %d", v.pages.page+1)
		}
	}
	return s + infoSuffix(v.filter.String(), v.table, v.pages.err)
}

func (v *jobsView) filterText() string { return v.filter.String() }

func (v *jobsView) filterHint() string { return "name prefix, group=G" }

func (v *jobsView) setFilter(s string) tea.Cmd {
	v.filter = parseJobFilter(s)
	v.pages.reset(firstCursor(v.filter.Prefix))
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
