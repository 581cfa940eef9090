package tui

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// executorsLoadedMsg carries the registered executors, as load seq asked
// for them.
type executorsLoadedMsg struct {
	seq   int
	execs []api.Executor
	err   error
}

func (executorsLoadedMsg) view() viewID { return viewExecutors }

// executorsView lists the executors: state as a word (and colour),
// running/slots, last heartbeat, drain progress, labels. Executor events
// carry the whole executor, so they update the table in place; the list is
// loaded again only after a resync or a reconnect.
type executorsView struct {
	c      *Common
	b      *backend
	table  *table
	all    []api.Executor
	byID   map[string]int
	filter string
	// seq numbers the loads: only the answer of the last one is shown.
	seq    int
	loaded bool
	err    error
	enter  key.Binding
}

func newExecutorsView(c *Common, b *backend) *executorsView {
	v := &executorsView{c: c, b: b, byID: map[string]int{}, enter: relabel(c.Keys.Enter, "its runs")}
	v.table = newTable(c, []column{
		{Title: "NAME", Width: 14, Flex: 2},
		{Title: "STATE", Width: 18},
		{Title: "RUN/SLOTS", Width: 9, Right: true},
		{Title: "LAST SEEN", Width: 9},
		{Title: "GROUP", Width: 10, Flex: 1},
		{Title: "ID", Width: 12},
		{Title: "DRAINING", Width: 25, Flex: 1},
		{Title: "LABELS", Width: 12, Flex: 1},
	})
	v.table.Empty = "loading executors…"
	return v
}

func (v *executorsView) load() tea.Cmd {
	v.seq++
	seq := v.seq
	return v.b.call(func(ctx context.Context) tea.Msg {
		xs, err := v.b.client.ExecutorList(ctx)
		return executorsLoadedMsg{seq: seq, execs: xs, err: err}
	})
}

func (v *executorsView) SetSize(width, height int) { v.table.SetSize(width, height) }

func (v *executorsView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case executorsLoadedMsg:
		if msg.seq != v.seq {
			return nil // a newer request is on its way, or an event came after
		}
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		v.err, v.loaded = nil, true
		v.all = slices.Clone(msg.execs)
		v.refresh()
	case tea.KeyPressMsg:
		return v.key(msg)
	}
	return nil
}

func (v *executorsView) key(msg tea.KeyPressMsg) tea.Cmd {
	k := v.c.Keys
	switch {
	case moveKey(v.table, k, msg) != moveNone:
	case markKey(v.table, k, msg):
	case key.Matches(msg, k.Enter):
		if x := v.selected(); x != nil {
			return drill(viewRuns, runFilter{Executor: x.ID}.String())
		}
	case key.Matches(msg, k.Drain):
		return v.request(actDrain)
	case key.Matches(msg, k.Undrain):
		return v.request(actUndrain)
	}
	return nil
}

// request asks for a confirmation of kind on the marked or selected
// executors.
func (v *executorsView) request(kind actionKind) tea.Cmd {
	a := action{kind: kind}
	a.targets = targetsOf(v.table, func(id string) (target, bool) {
		i, ok := v.byID[id]
		if !ok {
			return target{}, false
		}
		x := v.all[i]
		a.count += int64(x.Running)
		return target{id: x.ID, label: fmt.Sprintf("%s (%s)", printable(x.Name), x.ID)}, true
	})
	if len(a.targets) == 0 {
		return nil
	}
	return requestAction(a)
}

func (v *executorsView) selected() *api.Executor {
	if i, ok := v.byID[v.table.SelectedKey()]; ok {
		return &v.all[i]
	}
	return nil
}

// apply puts x, as an executor event carries it, in the list.
func (v *executorsView) apply(x *api.Executor) {
	if i, ok := v.byID[x.ID]; ok {
		v.all[i] = *x
	} else {
		v.all = append(v.all, *x)
	}
	v.refresh()
}

// refresh sorts the executors and rebuilds the rows of those the filter
// keeps.
func (v *executorsView) refresh() {
	slices.SortFunc(v.all, func(a, b api.Executor) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Name, b.Name), cmp.Compare(a.ID, b.ID))
	})
	clear(v.byID)
	rows := make([]row, 0, len(v.all))
	for i, x := range v.all {
		v.byID[x.ID] = i
		if v.filter != "" && !executorMatches(x, v.filter) {
			continue
		}
		rows = append(rows, v.row(x))
	}
	switch {
	case len(v.all) == 0:
		v.table.Empty = "no executors registered: start one with 'jobd executor --server URL --group G'"
	default:
		v.table.Empty = noMatch("executor", v.filter)
	}
	v.table.SetRows(rows)
}

func executorMatches(x api.Executor, filter string) bool {
	hay := strings.ToLower(strings.Join([]string{x.ID, x.Name, x.Group, x.Host, x.State, textfmt.Map(x.Labels)}, " "))
	for _, f := range strings.Fields(strings.ToLower(filter)) {
		if !strings.Contains(hay, f) {
			return false
		}
	}
	return true
}

func (v *executorsView) row(x api.Executor) row {
	c := v.c
	return row{Key: x.ID, Cells: []cell{
		plain(x.Name),
		styled(x.StateText(), c.Styles.State(x.State)),
		plain(fmt.Sprintf("%d/%d", x.Running, x.Slots)),
		plain(c.ago(x.LastSeen)),
		plain(x.Group),
		plain(x.ID),
		plain(drainText(c, x)),
		plain(textfmt.Map(x.Labels)),
	}}
}

// drainText says how a drain goes: since when, and when it times out.
func drainText(c *Common, x api.Executor) string {
	d := x.Drain
	if d == nil {
		return "-"
	}
	s := "for " + shortDuration(max(c.Now.Sub(d.StartedAt.Time), 0))
	if !d.Deadline.IsZero() {
		s += ", timeout " + c.ago(d.Deadline)
	}
	return s
}

// tick redraws the rows, whose "ago" texts move with the clock.
func (v *executorsView) tick() {
	if len(v.all) > 0 {
		v.refresh()
	}
}

func (v *executorsView) View() string { return v.table.View() }

func (v *executorsView) info() string {
	n := len(v.all)
	s := plural(int64(n), "executor")
	if v.filter != "" {
		s = fmt.Sprintf("%d of %s", v.table.Len(), s)
	}
	return s + infoSuffix(v.filter, v.table, v.err)
}

func (v *executorsView) filterText() string { return v.filter }

func (v *executorsView) filterHint() string { return "name, group, state or label=value" }

func (v *executorsView) setFilter(f string) tea.Cmd {
	v.filter = strings.TrimSpace(f)
	v.refresh()
	return nil
}

func (v *executorsView) ShortHelp() []key.Binding {
	k := v.c.Keys
	return []key.Binding{v.enter, k.Drain, k.Undrain}
}

func (v *executorsView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{{v.enter, k.Drain, k.Undrain, k.Mark}, tableHelp(k)}
}
