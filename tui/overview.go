package tui

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// statusLoadedMsg carries jobd's status, as load seq asked for it.
type statusLoadedMsg struct {
	seq    int
	status *api.Status
	err    error
}

func (statusLoadedMsg) view() viewID { return viewOverview }

// overviewView shows jobd's health and version, its store, the counts of
// jobs, executors, runs and missed triggers, the runs that ended per
// minute by outcome, and the next triggers due.
type overviewView struct {
	c      *Common
	b      *backend
	status *api.Status
	at     time.Time
	err    error
	// seq numbers the loads: only the answer of the last one is shown.
	seq    int
	width  int
	height int
}

func newOverviewView(c *Common, b *backend) *overviewView {
	return &overviewView{c: c, b: b}
}

func (v *overviewView) load() tea.Cmd {
	v.seq++
	seq := v.seq
	return v.b.call(func(ctx context.Context) tea.Msg {
		s, err := v.b.client.Status(ctx)
		return statusLoadedMsg{seq: seq, status: s, err: err}
	})
}

// helloStatus shows s, the status jobd sent with hello; a load asked for
// before it is older, and dropped.
func (v *overviewView) helloStatus(s *api.Status) {
	v.seq++
	v.setStatus(s)
}

// setStatus shows s.
func (v *overviewView) setStatus(s *api.Status) {
	if s != nil {
		v.status, v.at, v.err = s, v.c.Now, nil
	}
}

func (v *overviewView) Update(msg tea.Msg) tea.Cmd {
	if msg, ok := msg.(statusLoadedMsg); ok {
		if msg.seq != v.seq {
			return nil // a newer status is shown, or on its way
		}
		if msg.err != nil {
			v.err = msg.err
			return nil
		}
		v.setStatus(msg.status)
	}
	return nil
}

func (v *overviewView) SetSize(width, height int) { v.width, v.height = width, height }

func (v *overviewView) ShortHelp() []key.Binding { return []key.Binding{v.c.Keys.Refresh} }

func (v *overviewView) FullHelp() [][]key.Binding { return [][]key.Binding{{v.c.Keys.Refresh}} }

func (v *overviewView) info() string {
	s := "overview"
	if v.status != nil {
		s += " · as of " + v.at.In(v.c.loc()).Format("15:04:05")
	}
	if v.err != nil {
		s += " · " + v.err.Error()
	}
	return s
}

func (v *overviewView) filterText() string { return "" }

func (v *overviewView) setFilter(string) tea.Cmd { return nil }

func (v *overviewView) filterHint() string { return "" }

func (v *overviewView) View() string {
	st := v.c.Styles
	s := v.status
	if s == nil {
		msg := "waiting for jobd…"
		if v.err != nil {
			msg = "status: " + v.err.Error()
		}
		return lipgloss.Place(v.width, v.height, lipgloss.Center, lipgloss.Center, st.Dim.Render(msg))
	}
	left := v.facts(s)
	wide := v.width >= 110
	chartW := min(v.width-2, 100)
	if wide {
		chartW = min(v.width-nextTriggersWidth-4, 100)
	}
	chart := v.chart(s, chartW)
	next := v.nextTriggers(s)

	var lines []string
	lines = append(lines, left...)
	lines = append(lines, "")
	if wide {
		// Wide: the chart and the next triggers side by side.
		lw := 0
		for _, l := range chart {
			lw = max(lw, ansi.StringWidth(l))
		}
		lw += 4
		for i := 0; i < max(len(chart), len(next)); i++ {
			var l, r string
			if i < len(chart) {
				l = chart[i]
			}
			if i < len(next) {
				r = next[i]
			}
			lines = append(lines, padRight(l, lw)+r)
		}
	} else {
		lines = append(lines, chart...)
		lines = append(lines, "")
		lines = append(lines, next...)
	}
	if len(lines) > v.height {
		lines = lines[:v.height]
	}
	for i, l := range lines {
		lines[i] = ansi.Truncate(" "+l, v.width, "…")
	}
	return strings.Join(lines, "\n")
}

// facts are the lines about jobd and the counts.
func (v *overviewView) facts(s *api.Status) []string {
	st := v.c.Styles
	label := func(l string) string { return st.Label.Render(fmt.Sprintf("%-11s", l)) }
	role := "follower"
	if s.Leader {
		role = "leader"
	}
	up := "-"
	if !s.StartedAt.IsZero() {
		up = "up " + textfmt.Duration(v.c.Now.Sub(s.StartedAt.Time).Round(time.Second)) + " (since " + v.c.clock(s.StartedAt) + ")"
	}
	where := textfmt.OrDash(s.Socket)
	if s.Listen != "" {
		where += "  ·  listen " + s.Listen
	}
	jobs := thousands(s.Jobs)
	if s.JobsPaused > 0 {
		jobs += "  " + st.StateWarn.Render(thousands(s.JobsPaused)+" paused")
	}
	missed := thousands(s.Missed)
	if s.Missed > 0 {
		missed = st.StateWarn.Render(missed) + st.Dim.Render("  (see :missed to replay)")
	}
	return []string{
		st.Title.Render("jobd "+textfmt.OrDash(s.Version)) + "  " + role + "  ·  " + up,
		label("store") + textfmt.OrDash(s.Store),
		label("socket") + where,
		label("jobs") + jobs,
		label("executors") + v.counts(execStates, mapInt64(s.Executors), "none registered"),
		label("runs") + v.counts(api.RunStates, s.Runs, "none yet"),
		label("missed") + missed,
		label("pending") + plural(int64(s.PendingTriggers), "trigger") + st.Dim.Render(" in the look-ahead window"),
	}
}

// execStates orders executor states for the counts.
var execStates = []string{api.ExecutorOnline, api.ExecutorSuspect, api.ExecutorDraining, api.ExecutorDrained, api.ExecutorQuarantined, api.ExecutorOffline}

func mapInt64(m map[string]int) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, n := range m {
		out[k] = int64(n)
	}
	return out
}

// counts formats counts by state in the order of states (then any other
// state, sorted): "4 running · 1,234 succeeded".
func (v *overviewView) counts(states []string, m map[string]int64, none string) string {
	var parts []string
	add := func(state string) {
		if n := m[state]; n != 0 {
			parts = append(parts, thousands(n)+" "+v.c.Styles.State(state).Render(state))
		}
	}
	for _, s := range states {
		add(s)
	}
	for _, s := range slices.Sorted(maps.Keys(m)) {
		if !slices.Contains(states, s) {
			add(s)
		}
	}
	if len(parts) == 0 {
		return v.c.Styles.Dim.Render(none)
	}
	return strings.Join(parts, " · ")
}

// nextTriggersWidth is the width the next triggers take beside the chart.
const nextTriggersWidth = 40

// chartMinutes is how many minutes the chart spans: what jobd keeps.
const chartMinutes = 30

// sparkBlocks are the levels of a sparkline, from none to full.
var sparkBlocks = []rune(" ▁▂▃▄▅▆▇█")

// chart draws the runs that ended per minute as one labelled sparkline per
// outcome, each scaled to its own peak, with the current minute and the
// peak as numbers.
func (v *overviewView) chart(s *api.Status, width int) []string {
	st := v.c.Styles
	mins := s.RunsPerMinute
	title := st.Title.Render("Runs ended per minute")
	if len(mins) == 0 {
		return []string{title, st.Dim.Render("no runs ended since jobd started")}
	}
	title += st.Dim.Render(fmt.Sprintf(" · last %d min, now on the right", chartMinutes))
	if len(mins) > chartMinutes {
		mins = mins[len(mins)-chartMinutes:]
	}
	const labelW, numW = 11, 20
	per := 1
	if avail := width - labelW - numW - 2; avail > chartMinutes {
		per = min(avail/chartMinutes, 2)
	}
	series := []struct {
		name  string
		style lipgloss.Style
		val   func(api.RunMinute) int64
	}{
		{api.RunSucceeded, st.BarSucceeded, func(m api.RunMinute) int64 { return m.Succeeded }},
		{api.RunFailed, st.BarFailed, func(m api.RunMinute) int64 { return m.Failed }},
		{"other", st.BarOther, func(m api.RunMinute) int64 { return m.Other }},
	}
	lines := []string{title}
	for _, se := range series {
		var peak int64
		for _, m := range mins {
			peak = max(peak, se.val(m))
		}
		var b strings.Builder
		// Minutes before jobd started are blank, so that the chart keeps
		// its width and now stays on the right.
		b.WriteString(strings.Repeat(" ", max(chartMinutes-len(mins), 0)*per))
		for _, m := range mins {
			n := se.val(m)
			level := 0
			if n > 0 {
				level = int((n*int64(len(sparkBlocks)-1) + peak - 1) / peak)
			}
			b.WriteString(strings.Repeat(string(sparkBlocks[level]), per))
		}
		now := se.val(mins[len(mins)-1])
		nums := fmt.Sprintf(" %s now, peak %s", thousands(now), thousands(peak))
		lines = append(lines, fmt.Sprintf("%-*s", labelW, se.name)+se.style.Render(b.String())+st.Dim.Render(nums))
	}
	return lines
}

// nextTriggers lists the next triggers due.
func (v *overviewView) nextTriggers(s *api.Status) []string {
	st := v.c.Styles
	lines := []string{st.Title.Render("Next triggers")}
	if len(s.NextTriggers) == 0 {
		return append(lines, st.Dim.Render("none due in the look-ahead window"))
	}
	for _, t := range s.NextTriggers {
		lines = append(lines, fmt.Sprintf("%-9s %s  %s", v.c.ago(t.ScheduledAt), v.c.clock(t.ScheduledAt), printable(t.Job)))
	}
	return lines
}
