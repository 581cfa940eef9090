package tui

import (
	tea "charm.land/bubbletea/v2"
)

// where to put the cursor once a page is loaded.
type selectHint int

const (
	selectKeep  selectHint = iota // the same row, by key
	selectFirst                   // the first row (the page after)
	selectLast                    // the last row (the page before)
)

// pageRequest asks for one page: number page, which starts after cursor.
type pageRequest struct {
	page   int
	cursor string
	hint   selectHint
}

// pageLoad is the answer of a page load, but its rows: the message of
// each paged view embeds it.
type pageLoad struct {
	pageRequest
	seq int
	// next is where the page after starts, "" when there is none.
	next string
	err  error
}

// pages pages a table over a list that jobd orders and pages by cursor
// (jobs by name, runs newest first): the table holds one page; moving
// past its last row loads the page after, past its first row the page
// before.
type pages struct {
	// cursors[i] is where page i starts, "" for the first.
	cursors []string
	page    int
	// next is where the page after starts, "" when this is the last.
	next string
	// seq numbers the loads: only the answer of the last one is shown.
	seq    int
	loaded bool
	err    error
}

// reset goes back to the first page, which starts after first.
func (p *pages) reset(first string) {
	p.cursors, p.page, p.next = []string{first}, 0, ""
}

// cursor is where the page shown starts.
func (p *pages) cursor() string {
	if p.page < len(p.cursors) {
		return p.cursors[p.page]
	}
	return ""
}

// current asks for the page shown again.
func (p *pages) current() pageRequest {
	return pageRequest{page: p.page, cursor: p.cursor(), hint: selectKeep}
}

// request numbers a load of r; the command of the load fills in the
// rest of the answer.
func (p *pages) request(r pageRequest) pageLoad {
	p.seq++
	return pageLoad{pageRequest: r, seq: p.seq}
}

// land takes the answer l of a load that found rows rows; it reports
// whether those rows are the page to show now. The answer of an older
// load is dropped; an empty page after the last full one keeps the page
// shown.
func (p *pages) land(l pageLoad, rows int) bool {
	switch {
	case l.seq != p.seq:
		return false // a newer load is on its way
	case l.err != nil:
		p.err = l.err
		return false
	case rows == 0 && l.page > 0:
		p.next = ""
		return false
	}
	p.err, p.loaded = nil, true
	p.page = l.page
	p.cursors = append(p.cursors[:l.page], l.cursor)
	p.next = l.next
	return true
}

// place moves the cursor of t where a page loaded with hint puts it.
func (p *pages) place(t *table, hint selectHint) {
	switch hint {
	case selectFirst:
		t.Top()
	case selectLast:
		t.Bottom()
	}
}

// moveKey moves the cursor of t for a movement key; past the last or the
// first row it asks, with load, for the page after or before.
func (p *pages) moveKey(t *table, k *KeyMap, msg tea.KeyPressMsg, load func(pageRequest) tea.Cmd) (tea.Cmd, bool) {
	switch moveKey(t, k, msg) {
	case moveNone:
		return nil, false
	case movePastBottom:
		if p.next != "" {
			return load(pageRequest{page: p.page + 1, cursor: p.next, hint: selectFirst}), true
		}
	case movePastTop:
		if p.page > 0 {
			return load(pageRequest{page: p.page - 1, cursor: p.cursors[p.page-1], hint: selectLast}), true
		}
	}
	return nil, true
}
