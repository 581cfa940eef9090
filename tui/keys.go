package tui

import "charm.land/bubbles/v2/key"

// KeyMap holds every key binding of the dashboard. Views show the bindings
// they act on in the help bar, sometimes under a description of their own
// ("enter logs" in Runs, "enter runs" in Jobs).
type KeyMap struct {
	// Moving in a table or the logs.
	Up       key.Binding
	Down     key.Binding
	PageUp   key.Binding
	PageDown key.Binding
	Top      key.Binding
	Bottom   key.Binding
	Left     key.Binding
	Right    key.Binding

	// Enter drills into the selected row; Back returns to where it came
	// from, or clears the filter.
	Enter key.Binding
	Back  key.Binding

	// NextView and PrevView cycle through the views.
	NextView key.Binding
	PrevView key.Binding
	// Command opens the ":" prompt to switch view by name.
	Command key.Binding
	// Filter opens the "/" prompt to filter the view.
	Filter key.Binding
	Help   key.Binding
	// Quit quits, but not while a prompt or a confirmation is open;
	// ForceQuit quits whatever is open.
	Quit      key.Binding
	ForceQuit key.Binding
	Refresh   key.Binding
	// Mark marks the selected row, so that an action applies to every
	// marked row.
	Mark key.Binding

	// Actions; disabled in read-only mode.
	Drain     key.Binding
	Undrain   key.Binding
	Trigger   key.Binding
	Pause     key.Binding
	Resume    key.Binding
	Kill      key.Binding
	Replay    key.Binding
	ReplayAll key.Binding

	// Follow resumes following the logs; Wrap toggles line wrapping.
	Follow key.Binding
	Wrap   key.Binding

	// Confirm and Cancel answer a confirmation.
	Confirm key.Binding
	Cancel  key.Binding
}

// DefaultKeyMap returns the key bindings operators know from k9s, lazygit
// and less: j/k and arrows, ":" for views, "/" to filter, "?" for help.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup", "ctrl+b", "ctrl+u"), key.WithHelp("pgup/ctrl+b", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown", "ctrl+f", "ctrl+d"), key.WithHelp("pgdn/ctrl+f", "page down")),
		Top:      key.NewBinding(key.WithKeys("g", "home"), key.WithHelp("g/home", "top")),
		Bottom:   key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G/end", "bottom")),
		Left:     key.NewBinding(key.WithKeys("left", "h"), key.WithHelp("←/h", "scroll left")),
		Right:    key.NewBinding(key.WithKeys("right", "l"), key.WithHelp("→/l", "scroll right")),

		Enter: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "open")),
		Back:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "back")),

		NextView:  key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevView:  key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous view")),
		Command:   key.NewBinding(key.WithKeys(":"), key.WithHelp(":", "view")),
		Filter:    key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Help:      key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:      key.NewBinding(key.WithKeys("q"), key.WithHelp("q", "quit")),
		ForceQuit: key.NewBinding(key.WithKeys("ctrl+c"), key.WithHelp("ctrl+c", "quit")),
		Refresh:   key.NewBinding(key.WithKeys("ctrl+r"), key.WithHelp("ctrl+r", "reload")),
		Mark:      key.NewBinding(key.WithKeys("space"), key.WithHelp("space", "mark")),

		Drain:     key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "drain")),
		Undrain:   key.NewBinding(key.WithKeys("u"), key.WithHelp("u", "undrain")),
		Trigger:   key.NewBinding(key.WithKeys("t"), key.WithHelp("t", "trigger")),
		Pause:     key.NewBinding(key.WithKeys("p"), key.WithHelp("p", "pause")),
		Resume:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "resume")),
		Kill:      key.NewBinding(key.WithKeys("ctrl+k"), key.WithHelp("ctrl+k", "kill")),
		Replay:    key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "replay job")),
		ReplayAll: key.NewBinding(key.WithKeys("R"), key.WithHelp("R", "replay all")),

		Follow: key.NewBinding(key.WithKeys("G", "end"), key.WithHelp("G", "follow")),
		Wrap:   key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "wrap")),

		Confirm: key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		Cancel:  key.NewBinding(key.WithKeys("n", "N", "esc", "q"), key.WithHelp("n/esc", "no")),
	}
}

// readOnly disables every action binding, so that no key runs one and the
// help no longer lists them.
func (k *KeyMap) readOnly() {
	for _, b := range []*key.Binding{&k.Drain, &k.Undrain, &k.Trigger, &k.Pause, &k.Resume, &k.Kill, &k.Replay, &k.ReplayAll, &k.Mark} {
		b.SetEnabled(false)
	}
}

// relabel returns b with another help description; it matches the same
// keys and is enabled the same.
func relabel(b key.Binding, desc string) key.Binding {
	nb := key.NewBinding(key.WithKeys(b.Keys()...), key.WithHelp(b.Help().Key, desc))
	nb.SetEnabled(b.Enabled())
	return nb
}
