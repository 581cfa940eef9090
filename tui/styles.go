package tui

import (
	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/textinput"
	"charm.land/lipgloss/v2"

	"github.com/jobd/jobd/api"
)

// Styles holds every style of the dashboard. Colour only ever repeats what
// the text says: states are words, the selected row has a marker, the
// active view is in brackets, so that the dashboard reads the same with
// NO_COLOR.
type Styles struct {
	// Header line.
	Brand        lipgloss.Style
	HeaderText   lipgloss.Style
	HeaderDim    lipgloss.Style
	Live         lipgloss.Style
	Connecting   lipgloss.Style
	Unreachable  lipgloss.Style
	ReadOnly     lipgloss.Style
	Tab          lipgloss.Style
	ActiveTab    lipgloss.Style
	Banner       lipgloss.Style
	Title        lipgloss.Style
	Label        lipgloss.Style
	Dim          lipgloss.Style
	TableHeader  lipgloss.Style
	Selected     lipgloss.Style
	Marked       lipgloss.Style
	StateOK      lipgloss.Style
	StateBad     lipgloss.Style
	StateWarn    lipgloss.Style
	StateActive  lipgloss.Style
	StateIdle    lipgloss.Style
	BarSucceeded lipgloss.Style
	BarFailed    lipgloss.Style
	BarOther     lipgloss.Style
	Plain        lipgloss.Style
	Info         lipgloss.Style
	Flash        lipgloss.Style
	FlashError   lipgloss.Style
	Dialog       lipgloss.Style
	DialogTitle  lipgloss.Style
	Prompt       lipgloss.Style
	Help         help.Styles
	Input        textinput.Styles
}

// DefaultStyles returns the styles for a terminal with a dark (isDark) or
// light background.
func DefaultStyles(isDark bool) *Styles {
	ld := lipgloss.LightDark(isDark)
	var (
		accent = ld(lipgloss.Color("#5A3FC0"), lipgloss.Color("#A68BFF"))
		text   = ld(lipgloss.Color("#1C1C1C"), lipgloss.Color("#E4E4E4"))
		dim    = ld(lipgloss.Color("#8A8A8A"), lipgloss.Color("#767676"))
		green  = ld(lipgloss.Color("#00875F"), lipgloss.Color("#3FD68F"))
		red    = ld(lipgloss.Color("#D70000"), lipgloss.Color("#FF5F72"))
		yellow = ld(lipgloss.Color("#AF8700"), lipgloss.Color("#FFD75F"))
		cyan   = ld(lipgloss.Color("#0087AF"), lipgloss.Color("#5FD7FF"))
		selBG  = ld(lipgloss.Color("#DADAFF"), lipgloss.Color("#3A3460"))
		barBG  = ld(lipgloss.Color("#EEEEEE"), lipgloss.Color("#262626"))
	)
	s := &Styles{
		Brand:        lipgloss.NewStyle().Bold(true).Foreground(accent),
		HeaderText:   lipgloss.NewStyle().Foreground(text),
		HeaderDim:    lipgloss.NewStyle().Foreground(dim),
		Live:         lipgloss.NewStyle().Bold(true).Foreground(green),
		Connecting:   lipgloss.NewStyle().Bold(true).Foreground(yellow),
		Unreachable:  lipgloss.NewStyle().Bold(true).Foreground(red),
		ReadOnly:     lipgloss.NewStyle().Bold(true).Foreground(yellow),
		Tab:          lipgloss.NewStyle().Foreground(dim),
		ActiveTab:    lipgloss.NewStyle().Bold(true).Foreground(accent),
		Banner:       lipgloss.NewStyle().Bold(true).Foreground(red),
		Title:        lipgloss.NewStyle().Bold(true).Foreground(accent),
		Label:        lipgloss.NewStyle().Bold(true),
		Dim:          lipgloss.NewStyle().Foreground(dim),
		TableHeader:  lipgloss.NewStyle().Bold(true).Foreground(accent),
		Selected:     lipgloss.NewStyle().Bold(true).Background(selBG),
		Marked:       lipgloss.NewStyle().Bold(true).Foreground(yellow),
		StateOK:      lipgloss.NewStyle().Foreground(green),
		StateBad:     lipgloss.NewStyle().Bold(true).Foreground(red),
		StateWarn:    lipgloss.NewStyle().Foreground(yellow),
		StateActive:  lipgloss.NewStyle().Foreground(cyan),
		StateIdle:    lipgloss.NewStyle().Foreground(dim),
		BarSucceeded: lipgloss.NewStyle().Foreground(green).Background(barBG),
		BarFailed:    lipgloss.NewStyle().Foreground(red).Background(barBG),
		BarOther:     lipgloss.NewStyle().Foreground(yellow).Background(barBG),
		Plain:        lipgloss.NewStyle(),
		Info:         lipgloss.NewStyle().Foreground(dim),
		Flash:        lipgloss.NewStyle().Bold(true).Foreground(green),
		FlashError:   lipgloss.NewStyle().Bold(true).Foreground(red),
		Dialog: lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(accent).
			Padding(1, 2),
		DialogTitle: lipgloss.NewStyle().Bold(true).Foreground(accent),
		Prompt:      lipgloss.NewStyle().Bold(true).Foreground(accent),
		Help:        help.DefaultStyles(isDark),
		Input:       textinput.DefaultStyles(isDark),
	}
	s.Input.Focused.Prompt = s.Prompt
	s.Input.Blurred.Prompt = s.Prompt
	return s
}

// State returns the style of a run or executor state; the state's word is
// always shown with it. The style is one of s's, not a copy.
func (s *Styles) State(state string) *lipgloss.Style {
	switch state {
	case api.RunSucceeded, api.ExecutorOnline:
		return &s.StateOK
	case api.RunFailed, api.RunTimedOut, api.RunLost, api.ExecutorOffline, api.ExecutorQuarantined:
		return &s.StateBad
	case api.RunKilled, api.ExecutorDraining, api.ExecutorSuspect:
		return &s.StateWarn
	case api.RunRunning, api.RunAssigned:
		return &s.StateActive
	case api.RunPending, api.RunSkipped, api.ExecutorDrained:
		return &s.StateIdle
	}
	return &s.Plain
}
