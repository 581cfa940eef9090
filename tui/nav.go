package tui

import (
	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
)

// move is what a movement key did to a table.
type move int

const (
	// moveNone: the key is not a movement key.
	moveNone move = iota
	// moveDone: the cursor moved, or could not.
	moveDone
	// movePastTop: the cursor was on the first row and the key moves up.
	movePastTop
	// movePastBottom: the cursor was on the last row and the key moves
	// down.
	movePastBottom
)

// moveKey moves the cursor of t for a movement key.
func moveKey(t *table, k *KeyMap, msg tea.KeyPressMsg) move {
	switch {
	case key.Matches(msg, k.Up):
		if !t.MoveUp(1) {
			return movePastTop
		}
	case key.Matches(msg, k.Down):
		if !t.MoveDown(1) {
			return movePastBottom
		}
	case key.Matches(msg, k.PageUp):
		if !t.MoveUp(t.PageSize()) {
			return movePastTop
		}
	case key.Matches(msg, k.PageDown):
		if !t.MoveDown(t.PageSize()) {
			return movePastBottom
		}
	case key.Matches(msg, k.Top):
		t.Top()
	case key.Matches(msg, k.Bottom):
		t.Bottom()
	default:
		return moveNone
	}
	return moveDone
}

// tableHelp are the movement bindings of a table, for the full help.
func tableHelp(k *KeyMap) []key.Binding {
	return []key.Binding{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom}
}

// drillMsg asks the root model to open view to with filter (for the logs,
// the run id), remembering the current view so that esc comes back to it.
type drillMsg struct {
	to     viewID
	filter string
}

func drill(to viewID, filter string) tea.Cmd {
	return func() tea.Msg { return drillMsg{to: to, filter: filter} }
}
