package tui

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// column is one column of a table.
type column struct {
	Title string
	// Width is the least width of the column, in cells.
	Width int
	// Flex is the column's share of the width left over; 0 keeps Width.
	Flex int
	// Right aligns the column to the right (numbers).
	Right bool
}

// cell is one cell of a table: text, and a style when it has one. The
// style is a pointer into the Styles (a style is large, and a table may
// hold thousands of rows).
type cell struct {
	Text  string
	Style *lipgloss.Style
}

func plain(text string) cell { return cell{Text: text} }

func styled(text string, st *lipgloss.Style) cell { return cell{Text: text, Style: st} }

// row is one row of a table; Key identifies it across reloads.
type row struct {
	Key   string
	Cells []cell
}

// gutterWidth is the width of the left gutter: the cursor marker, the
// mark of a marked row, and a space.
const gutterWidth = 3

// table is a table with a selected row and marked rows. It renders only
// the rows it shows, so its cost does not grow with the rows it holds.
// The bubbles table styles whole rows only; this one keeps a state's
// colour inside the selected row.
type table struct {
	c      *Common
	cols   []column
	rows   []row
	cursor int
	offset int
	width  int
	height int
	marked map[string]bool
	// Empty is shown when the table has no rows.
	Empty string
}

func newTable(c *Common, cols []column) *table {
	return &table{c: c, cols: cols, marked: map[string]bool{}, Empty: "nothing to show"}
}

// SetSize sets the size of the table, its header line included.
func (t *table) SetSize(width, height int) {
	t.width, t.height = width, height
	t.clamp()
}

// SetColumns replaces the columns.
func (t *table) SetColumns(cols []column) { t.cols = cols }

// SetRows replaces the rows, keeping the cursor on the row with the same
// key when there still is one, and dropping the marks of rows gone.
func (t *table) SetRows(rows []row) {
	key := t.SelectedKey()
	t.rows = rows
	if key != "" && !t.Select(key) {
		t.clamp()
	}
	if len(t.marked) > 0 {
		keep := make(map[string]bool, len(t.marked))
		for _, r := range rows {
			if t.marked[r.Key] {
				keep[r.Key] = true
			}
		}
		t.marked = keep
	}
}

// SetRow replaces row i in place.
func (t *table) SetRow(i int, r row) {
	if i >= 0 && i < len(t.rows) {
		t.rows[i] = r
	}
}

// Len is the number of rows.
func (t *table) Len() int { return len(t.rows) }

// Cursor is the index of the selected row.
func (t *table) Cursor() int { return t.cursor }

// SelectedKey is the key of the selected row, or "" when there is none.
func (t *table) SelectedKey() string {
	if t.cursor < 0 || t.cursor >= len(t.rows) {
		return ""
	}
	return t.rows[t.cursor].Key
}

// Select moves the cursor to the row with key and reports whether there
// is one.
func (t *table) Select(key string) bool {
	for i, r := range t.rows {
		if r.Key == key {
			t.cursor = i
			t.clamp()
			return true
		}
	}
	return false
}

// SetCursor moves the cursor to row i (clamped).
func (t *table) SetCursor(i int) {
	t.cursor = i
	t.clamp()
}

// visible is how many rows fit under the header.
func (t *table) visible() int { return max(t.height-1, 1) }

// PageSize is how many rows a page up or down moves.
func (t *table) PageSize() int { return t.visible() }

// MoveUp moves the cursor up n rows; it reports false when the cursor was
// already on the first row.
func (t *table) MoveUp(n int) bool {
	if t.cursor <= 0 {
		return false
	}
	t.cursor -= n
	t.clamp()
	return true
}

// MoveDown moves the cursor down n rows; it reports false when the cursor
// was already on the last row.
func (t *table) MoveDown(n int) bool {
	if t.cursor >= len(t.rows)-1 {
		return false
	}
	t.cursor += n
	t.clamp()
	return true
}

// Top selects the first row, Bottom the last.
func (t *table) Top() { t.SetCursor(0) }

// Bottom selects the last row.
func (t *table) Bottom() { t.SetCursor(len(t.rows) - 1) }

// ToggleMark marks or unmarks the selected row.
func (t *table) ToggleMark() {
	key := t.SelectedKey()
	if key == "" {
		return
	}
	if t.marked[key] {
		delete(t.marked, key)
	} else {
		t.marked[key] = true
	}
}

// Marked returns the keys of the marked rows in row order.
func (t *table) Marked() []string {
	var keys []string
	for _, r := range t.rows {
		if t.marked[r.Key] {
			keys = append(keys, r.Key)
		}
	}
	return keys
}

// Unmark unmarks the row with key.
func (t *table) Unmark(key string) { delete(t.marked, key) }

// ClearMarks unmarks every row.
func (t *table) ClearMarks() { clear(t.marked) }

// Targets returns the keys an action applies to: the marked rows, else the
// selected one.
func (t *table) Targets() []string {
	if keys := t.Marked(); len(keys) > 0 {
		return keys
	}
	if key := t.SelectedKey(); key != "" {
		return []string{key}
	}
	return nil
}

func (t *table) clamp() {
	t.cursor = min(max(t.cursor, 0), max(len(t.rows)-1, 0))
	vis := t.visible()
	if t.cursor < t.offset {
		t.offset = t.cursor
	}
	if t.cursor >= t.offset+vis {
		t.offset = t.cursor - vis + 1
	}
	t.offset = min(max(t.offset, 0), max(len(t.rows)-vis, 0))
}

// widths lays out the columns in the width: each gets its least width, in
// order, while it fits (the rest are hidden, 0); the width left goes to
// the flexible ones.
func (t *table) widths() []int {
	ws := make([]int, len(t.cols))
	avail := t.width - gutterWidth
	used, flex := 0, 0
	for i, c := range t.cols {
		need := c.Width
		if i > 0 {
			need++
		}
		if used+need > avail {
			break
		}
		ws[i] = c.Width
		used += need
		flex += c.Flex
	}
	extra := avail - used
	if extra > 0 && flex > 0 {
		given := 0
		last := -1
		for i, c := range t.cols {
			if ws[i] > 0 && c.Flex > 0 {
				add := extra * c.Flex / flex
				ws[i] += add
				given += add
				last = i
			}
		}
		ws[last] += extra - given
	}
	return ws
}

// View renders the header and the rows that fit.
func (t *table) View() string {
	if t.width <= gutterWidth || t.height <= 0 {
		return ""
	}
	st := t.c.Styles
	ws := t.widths()
	lines := make([]string, 0, t.height)

	var hb strings.Builder
	hb.WriteString(strings.Repeat(" ", gutterWidth))
	for i, c := range t.cols {
		if ws[i] == 0 {
			continue
		}
		if i > 0 {
			hb.WriteByte(' ')
		}
		hb.WriteString(fit(c.Title, ws[i], c.Right))
	}
	lines = append(lines, st.TableHeader.Render(padRight(hb.String(), t.width)))

	if len(t.rows) == 0 {
		if t.height > 2 {
			lines = append(lines, "", st.Dim.Render("  "+ansi.Truncate(t.Empty, t.width-2, "…")))
		}
		return strings.Join(lines, "\n")
	}
	end := min(t.offset+t.visible(), len(t.rows))
	for i := t.offset; i < end; i++ {
		lines = append(lines, t.renderRow(i, ws))
	}
	return strings.Join(lines, "\n")
}

func (t *table) renderRow(i int, ws []int) string {
	st := t.c.Styles
	r := t.rows[i]
	selected := i == t.cursor
	base := lipgloss.NewStyle()
	if selected {
		base = st.Selected
	}
	var b strings.Builder
	marker := " "
	if selected {
		marker = "▸"
	}
	mark := " "
	if t.marked[r.Key] {
		mark = "*"
	}
	b.WriteString(base.Render(marker))
	if mark != " " {
		b.WriteString(st.Marked.Inherit(base).Render(mark))
	} else {
		b.WriteString(base.Render(mark))
	}
	b.WriteString(base.Render(" "))
	width := gutterWidth
	for j, c := range t.cols {
		if ws[j] == 0 {
			continue
		}
		if j > 0 {
			b.WriteString(base.Render(" "))
			width++
		}
		var cl cell
		if j < len(r.Cells) {
			cl = r.Cells[j]
		}
		text := fit(printable(cl.Text), ws[j], c.Right)
		switch {
		case cl.Style != nil && selected:
			b.WriteString(cl.Style.Inherit(base).Render(text))
		case cl.Style != nil:
			b.WriteString(cl.Style.Render(text))
		default:
			b.WriteString(base.Render(text))
		}
		width += ws[j]
	}
	if width < t.width {
		b.WriteString(base.Render(strings.Repeat(" ", t.width-width)))
	}
	return b.String()
}

// fit truncates s to w cells and pads it to exactly w.
func fit(s string, w int, right bool) string {
	s = ansi.Truncate(s, w, "…")
	pad := w - ansi.StringWidth(s)
	if pad <= 0 {
		return s
	}
	if right {
		return strings.Repeat(" ", pad) + s
	}
	return s + strings.Repeat(" ", pad)
}

// padRight pads s with spaces to w cells.
func padRight(s string, w int) string {
	if n := w - ansi.StringWidth(s); n > 0 {
		return s + strings.Repeat(" ", n)
	}
	return s
}
