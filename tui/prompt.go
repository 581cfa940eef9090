package tui

import (
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
)

// promptKind says what a prompt asks for.
type promptKind int

const (
	// promptCommand is the ":" prompt: a view name, and a filter or a run
	// id ("runs backup failed", "logs 42").
	promptCommand promptKind = iota
	// promptFilter is the "/" prompt: the filter of the view.
	promptFilter
)

// promptMargin is what the status line keeps beside the input: a space,
// the prompt, the cursor, and the rest of a suggestion, which the input
// draws past its width.
const promptMargin = 20

// prompt is the one-line input of ":" and "/", shown in the status line.
type prompt struct {
	kind  promptKind
	input textinput.Model
}

func (p *prompt) update(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	p.input, cmd = p.input.Update(msg)
	return cmd
}

func (p *prompt) view() string { return " " + p.input.View() }

var (
	promptSubmit = key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "apply"))
	promptCancel = key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))
	promptTab    = key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "complete"))
)

func (p *prompt) bindings() []key.Binding {
	if p.kind == promptCommand {
		return []key.Binding{promptSubmit, promptTab, promptCancel}
	}
	return []key.Binding{promptSubmit, promptCancel}
}

// openPrompt opens the ":" or "/" prompt.
func (m *Model) openPrompt(kind promptKind) tea.Cmd {
	in := textinput.New()
	in.SetStyles(m.c.Styles.Input)
	in.SetWidth(m.c.Width - promptMargin)
	in.CharLimit = 200
	switch kind {
	case promptCommand:
		in.Prompt = ":"
		in.Placeholder = strings.Join(viewNames[:], " | ")
		in.ShowSuggestions = true
		in.SetSuggestions(append(viewNames[:], "quit"))
	case promptFilter:
		in.Prompt = "/"
		in.Placeholder = m.views[m.active].filterHint()
		in.SetValue(m.views[m.active].filterText())
		in.CursorEnd()
	}
	m.prompt = &prompt{kind: kind, input: in}
	return m.prompt.input.Focus()
}

func (m *Model) promptKey(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case key.Matches(msg, promptCancel):
		m.prompt = nil
		return nil
	case key.Matches(msg, promptSubmit):
		p := m.prompt
		m.prompt = nil
		value := strings.TrimSpace(p.input.Value())
		if p.kind == promptFilter {
			return m.applyFilter(value)
		}
		return m.command(value)
	}
	return m.prompt.update(msg)
}

// applyFilter filters the view shown.
func (m *Model) applyFilter(value string) tea.Cmd { return m.filterView(m.active, value) }

// command runs what was typed at the ":" prompt: a view name, then a
// filter for it ("runs backup failed") or, for logs, a run id.
func (m *Model) command(s string) tea.Cmd {
	fields := strings.Fields(s)
	if len(fields) == 0 {
		return nil
	}
	name := strings.ToLower(fields[0])
	if name == "q" || name == "quit" || name == "q!" {
		return m.quit()
	}
	v, ok := lookupView(name)
	if !ok {
		return m.setFlash("unknown view "+quote(fields[0])+": try "+strings.Join(viewNames[:], ", "), true)
	}
	// A jump by name starts a new history: esc no longer goes back
	// across it.
	m.nav = nil
	rest := strings.Join(fields[1:], " ")
	switch {
	case v == viewLogs && rest != "":
		return m.drill(drillMsg{to: viewLogs, filter: fields[1]})
	case rest != "":
		return m.showFiltered(v, rest)
	}
	return m.show(v)
}

func quote(s string) string { return "\"" + printable(s) + "\"" }
