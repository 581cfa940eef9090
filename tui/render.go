package tui

import (
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/jobd/jobd/api"
)

// View implements tea.Model.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "jobctl · " + m.active.String()
	return v
}

// render draws the screen: header, view tabs, the "unreachable" banner,
// the view (or the help, with the confirmation over it), the status line
// and the help bar.
func (m *Model) render() string {
	w, h := m.c.Width, m.c.Height
	st := m.c.Styles
	if w < MinWidth || h < MinHeight {
		msg := fmt.Sprintf("Terminal too small: %d×%d.\nThe dashboard needs at least %d×%d.\nEnlarge the window, or press q to quit.", w, h, MinWidth, MinHeight)
		return lipgloss.Place(w, h, lipgloss.Center, lipgloss.Center, st.Banner.Render(msg))
	}
	lines := make([]string, 0, h)
	lines = append(lines, m.headerView(), m.tabsView())
	if m.bannerShown() {
		lines = append(lines, fitLine(m.bannerView(), w))
	}
	var body string
	if m.showHelp {
		body = m.fullHelpView()
	} else {
		body = m.views[m.active].View()
	}
	bl := strings.Split(body, "\n")
	for len(bl) < m.bodyH {
		bl = append(bl, "")
	}
	bl = bl[:m.bodyH]
	for i, l := range bl {
		bl[i] = fitLine(l, w)
	}
	if m.confirm != nil {
		bl = overlay(bl, strings.Split(confirmView(m.c, *m.confirm, w), "\n"), w)
	}
	lines = append(lines, bl...)
	lines = append(lines, m.statusView(), m.helpBarView())
	return strings.Join(lines, "\n")
}

// fitLine cuts or pads line to exactly w cells.
func fitLine(line string, w int) string {
	if ansi.StringWidth(line) > w {
		return ansi.Truncate(line, w, "…")
	}
	return padRight(line, w)
}

// overlay puts box in the middle of the lines of body.
func overlay(body, box []string, w int) []string {
	bw := 0
	for _, l := range box {
		bw = max(bw, ansi.StringWidth(l))
	}
	top := max((len(body)-len(box))/2, 0)
	left := max((w-bw)/2, 0)
	for i, l := range box {
		if top+i >= len(body) {
			break
		}
		under := body[top+i]
		body[top+i] = ansi.Cut(under, 0, left) + padRight(l, bw) + ansi.Cut(under, left+bw, w)
	}
	return body
}

func (m *Model) headerView() string {
	st := m.c.Styles
	left := st.Brand.Render(" jobd")
	if m.version != "" {
		left += " " + st.HeaderText.Render(m.version)
	}
	left += st.HeaderDim.Render(" · ") + st.HeaderText.Render(m.target) + st.HeaderDim.Render(" · ")
	switch {
	case m.connected:
		left += st.Live.Render("● live")
	case m.streamErr != nil && api.IsUnreachable(m.streamErr):
		left += st.Unreachable.Render("✖ unreachable")
	case m.streamErr != nil:
		left += st.Unreachable.Render("✖ stream lost")
	default:
		left += st.Connecting.Render("◌ connecting…")
	}
	right := ""
	if m.c.ReadOnly {
		right += st.ReadOnly.Render("read-only") + st.HeaderDim.Render(" · ")
	}
	right += st.HeaderText.Render(m.active.String()) + st.HeaderDim.Render(" · "+m.c.Now.In(m.c.loc()).Format("15:04:05")+" ")
	gap := m.c.Width - ansi.StringWidth(left) - ansi.StringWidth(right)
	if gap < 1 {
		return fitLine(left, m.c.Width)
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) tabsView() string {
	st := m.c.Styles
	var b strings.Builder
	b.WriteString(" ")
	for i, name := range viewNames {
		if viewID(i) == m.active {
			b.WriteString(st.ActiveTab.Render("<" + name + ">"))
		} else {
			b.WriteString(st.Tab.Render(" " + name + " "))
		}
		b.WriteString(" ")
	}
	return fitLine(b.String(), m.c.Width)
}

func (m *Model) bannerView() string {
	st := m.c.Styles
	what := "jobd unreachable — reconnecting…"
	if !api.IsUnreachable(m.streamErr) {
		what = "lost jobd's event stream — reconnecting…"
	}
	detail := fmt.Sprintf(" (attempt %d) %s", m.attempts, m.streamErr.Error())
	var ue *api.UnreachableError
	if errors.As(m.streamErr, &ue) {
		detail = fmt.Sprintf(" (attempt %d) %s", m.attempts, ue.Error())
	}
	return st.Banner.Render(" "+what) + st.Dim.Render(detail)
}

func (m *Model) statusView() string {
	st := m.c.Styles
	w := m.c.Width
	if m.prompt != nil {
		return fitLine(m.prompt.view(), w)
	}
	info := st.Info.Render(" " + m.views[m.active].info())
	if m.flashText == "" {
		return fitLine(info, w)
	}
	fs := st.Flash
	if m.flashErr {
		fs = st.FlashError
	}
	fl := fs.Render(printable(m.flashText) + " ")
	iw := w - ansi.StringWidth(fl) - 1
	if iw < 20 {
		return fitLine(" "+fl, w)
	}
	return fitLine(info, iw) + " " + fl
}

// helpBindings are the bindings of the help bar: the view's, then the
// global ones.
func (m *Model) helpBindings() []key.Binding {
	k := m.c.Keys
	if m.confirm != nil {
		return []key.Binding{k.Confirm, k.Cancel}
	}
	if m.prompt != nil {
		return m.prompt.bindings()
	}
	v := m.views[m.active]
	bs := v.ShortHelp()
	bs = append(bs, k.Help, k.Command)
	if v.filterHint() != "" {
		bs = append(bs, k.Filter)
	}
	bs = append(bs, k.Quit)
	if len(m.nav) > 0 || v.filterText() != "" {
		// esc goes somewhere only then.
		bs = append(bs, k.Back)
	}
	return bs
}

func (m *Model) helpBarView() string {
	return fitLine(" "+m.help.ShortHelpView(m.helpBindings()), m.c.Width)
}

func (m *Model) fullHelpView() string {
	k := m.c.Keys
	st := m.c.Styles
	groups := m.views[m.active].FullHelp()
	groups = append(groups,
		[]key.Binding{k.Command, k.Filter, k.NextView, k.PrevView},
		[]key.Binding{k.Back, k.Refresh, k.Help, k.Quit},
	)
	var b strings.Builder
	b.WriteString(" " + st.Title.Render("Keys · "+m.active.String()) + "\n\n")
	for _, l := range strings.Split(m.help.FullHelpView(groups), "\n") {
		b.WriteString(" " + l + "\n")
	}
	b.WriteString("\n " + st.Label.Render("Views") + "  :" + strings.Join(viewNames[:], "  :") + "   (tab and shift+tab cycle)\n")
	b.WriteString(" " + st.Label.Render("Filters") + "  runs: job name and/or state (backup failed, state=running, executor=ID)\n")
	b.WriteString("          jobs: name prefix, group=G · executors, missed: any text · logs: lines containing\n")
	if m.c.ReadOnly {
		b.WriteString("\n " + st.ReadOnly.Render("read-only") + ": actions are off.\n")
	} else {
		b.WriteString("\n Actions ask for a confirmation that names what they apply to; space marks rows to act on several.\n")
	}
	b.WriteString("\n " + st.Dim.Render("? or esc closes this help"))
	return b.String()
}
