package tui

import (
	"fmt"

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

// markKey marks or unmarks the selected row of t for the Mark key, and
// moves to the next row; it reports whether msg was the Mark key.
func markKey(t *table, k *KeyMap, msg tea.KeyPressMsg) bool {
	if !key.Matches(msg, k.Mark) {
		return false
	}
	t.ToggleMark()
	t.MoveDown(1)
	return true
}

// targetsOf makes the targets of an action from the rows of t it applies
// to (see table.Targets): of returns the target of a row's key, or false
// to leave the row out.
func targetsOf(t *table, of func(key string) (target, bool)) []target {
	var ts []target
	for _, k := range t.Targets() {
		if tg, ok := of(k); ok {
			ts = append(ts, tg)
		}
	}
	return ts
}

// byName is the target of a row whose key is a job's name.
func byName(name string) (target, bool) { return target{id: name, label: printable(name)}, true }

// infoSuffix ends the status line of a table view: its filter, how many
// rows are marked, and the error of its last load.
func infoSuffix(filter string, t *table, err error) string {
	var s string
	if filter != "" {
		s += fmt.Sprintf(" · filter %q", filter)
	}
	if m := len(t.Marked()); m > 0 {
		s += fmt.Sprintf(" · %d marked", m)
	}
	if err != nil {
		s += " · " + err.Error()
	}
	return s
}

// noMatch is what a table view shows when its filter keeps no row of
// what there is.
func noMatch(noun, filter string) string {
	return fmt.Sprintf("no %s matches %q (esc clears the filter)", noun, filter)
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
