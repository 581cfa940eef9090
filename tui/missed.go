package tui

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
)

// missedLoadedMsg carries the records of missed triggers, as load seq
// asked for them.
type missedLoadedMsg struct {
	seq    int
	missed []api.Missed
	err    error
}

func (missedLoadedMsg) view() viewID { return viewMissed }

// missedJob sums the missed triggers of one job.
type missedJob struct {
	Job     string
	Count   int64
	From    api.Time
	To      api.Time
	Reasons []string
	Records int
}

// groupMissed sums records by job, the jobs with the most missed triggers
// first.
func groupMissed(records []api.Missed) []missedJob {
	by := map[string]*missedJob{}
	var out []*missedJob
	for _, m := range records {
		g := by[m.Job]
		if g == nil {
			g = &missedJob{Job: m.Job, From: m.From, To: m.To}
			by[m.Job] = g
			out = append(out, g)
		}
		g.Count += m.Count
		g.Records++
		if m.From.Before(g.From.Time) {
			g.From = m.From
		}
		if m.To.After(g.To.Time) {
			g.To = m.To
		}
		if m.Reason != "" && !slices.Contains(g.Reasons, m.Reason) {
			g.Reasons = append(g.Reasons, m.Reason)
		}
	}
	res := make([]missedJob, len(out))
	for i, g := range out {
		slices.Sort(g.Reasons)
		res[i] = *g
	}
	slices.SortFunc(res, func(a, b missedJob) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Job, b.Job))
	})
	return res
}

// missedView shows the missed triggers per job: how many, from when to
// when, and why. r replays those of the selected (or marked) jobs, R all.
type missedView struct {
	c      *Common
	b      *backend
	table  *table
	groups []missedJob
	total  int64
	filter string
	// seq numbers the loads: only the answer of the last one is shown.
	seq    int
	loaded bool
	err    error
	enter  key.Binding
}

func newMissedView(c *Common, b *backend) *missedView {
	v := &missedView{c: c, b: b, enter: relabel(c.Keys.Enter, "its runs")}
	v.table = newTable(c, []column{
		{Title: "JOB", Width: 16, Flex: 2},
		{Title: "MISSED", Width: 8, Right: true},
		{Title: "FROM", Width: 19},
		{Title: "TO", Width: 19},
		{Title: "WHY", Width: 10, Flex: 1},
		{Title: "RECORDS", Width: 7, Right: true},
	})
	v.table.Empty = "loading missed triggers…"
	return v
}

func (v *missedView) load() tea.Cmd {
	v.seq++
	seq := v.seq
	return v.b.call(func(ctx context.Context) tea.Msg {
		m, err := v.b.client.MissedList(ctx, api.MissedListOptions{})
		return missedLoadedMsg{seq: seq, missed: m, err: err}
	})
}

func (v *missedView) SetSize(width, height int) { v.table.SetSize(width, height) }

func (v *missedView) Update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case missedLoadedMsg:
		if msg.seq != v.seq {
			return nil // a newer request is on its way
		}
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		v.err, v.loaded = nil, true
		v.groups = groupMissed(msg.missed)
		v.rebuild()
	case tea.KeyPressMsg:
		k := v.c.Keys
		switch {
		case moveKey(v.table, k, msg) != moveNone:
		case markKey(v.table, k, msg):
		case key.Matches(msg, k.Enter):
			if job := v.table.SelectedKey(); job != "" {
				return drill(viewRuns, runFilter{Job: job}.String())
			}
		case key.Matches(msg, k.Replay):
			return v.requestReplay(false)
		case key.Matches(msg, k.ReplayAll):
			if len(v.groups) > 0 {
				return v.requestReplay(true)
			}
		}
	}
	return nil
}

// requestReplay asks to replay the missed triggers of the marked or
// selected jobs, or of every job. The root model first asks jobd, in a
// dry run, how many that is.
func (v *missedView) requestReplay(all bool) tea.Cmd {
	a := action{kind: actReplay, all: all}
	if all {
		a.count = v.total
		return requestAction(a)
	}
	a.targets = targetsOf(v.table, byName)
	if len(a.targets) == 0 {
		return nil
	}
	return requestAction(a)
}

func (v *missedView) rebuild() {
	v.total = 0
	rows := make([]row, 0, len(v.groups))
	for _, g := range v.groups {
		v.total += g.Count
		if v.filter != "" && !strings.Contains(g.Job, v.filter) {
			continue
		}
		rows = append(rows, row{Key: g.Job, Cells: []cell{
			plain(g.Job),
			styled(thousands(g.Count), &v.c.Styles.StateWarn),
			plain(v.c.clock(g.From)),
			plain(v.c.clock(g.To)),
			plain(strings.Join(g.Reasons, ",")),
			plain(strconv.Itoa(g.Records)),
		}})
	}
	switch {
	case len(v.groups) == 0:
		v.table.Empty = "no missed triggers"
	default:
		v.table.Empty = noMatch("job", v.filter)
	}
	v.table.SetRows(rows)
}

func (v *missedView) View() string { return v.table.View() }

func (v *missedView) info() string {
	s := fmt.Sprintf("%s of %s", plural(v.total, "missed trigger"), plural(int64(len(v.groups)), "job"))
	return s + infoSuffix(v.filter, v.table, v.err)
}

func (v *missedView) filterText() string { return v.filter }

func (v *missedView) filterHint() string { return "part of a job name" }

func (v *missedView) setFilter(s string) tea.Cmd {
	v.filter = strings.TrimSpace(s)
	v.rebuild()
	return nil
}

func (v *missedView) ShortHelp() []key.Binding {
	k := v.c.Keys
	return []key.Binding{v.enter, k.Replay, k.ReplayAll}
}

func (v *missedView) FullHelp() [][]key.Binding {
	k := v.c.Keys
	return [][]key.Binding{{v.enter, k.Replay, k.ReplayAll, k.Mark}, tableHelp(k)}
}
