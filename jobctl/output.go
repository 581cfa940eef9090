package jobctl

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/internal/textfmt"
)

// ANSI colours used in tables.
const (
	colorReset  = "\x1b[0m"
	colorBold   = "\x1b[1m"
	colorDim    = "\x1b[2m"
	colorRed    = "\x1b[31m"
	colorGreen  = "\x1b[32m"
	colorYellow = "\x1b[33m"
	colorCyan   = "\x1b[36m"
)

// printer writes command results in the format of -o.
type printer struct {
	format string
	out    io.Writer
	color  bool
	now    time.Time
	loc    *time.Location
}

// structured reports whether the output is JSON or YAML.
func (p *printer) structured() bool { return p.format == formatJSON || p.format == formatYAML }

// wide reports whether tables get their extra columns.
func (p *printer) wide() bool { return p.format == formatWide }

// encode writes v as JSON or YAML. Lists must be non-nil slices so that an
// empty list prints [] rather than null.
func (p *printer) encode(v any) error {
	if p.format == formatYAML {
		enc := yaml.NewEncoder(p.out)
		enc.SetIndent(2)
		if err := enc.Encode(v); err != nil {
			return fmt.Errorf("write yaml: %w", err)
		}
		return enc.Close()
	}
	enc := json.NewEncoder(p.out)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

// cell is one table cell: text and an optional colour.
type cell struct {
	text  string
	color string
}

func colored(text, color string) cell { return cell{text: text, color: color} }

func cells(texts ...string) []cell {
	row := make([]cell, len(texts))
	for i, t := range texts {
		row[i] = cell{text: t}
	}
	return row
}

// table writes rows under header, columns separated by three spaces. Colour
// is applied after padding, so escape codes never shift the columns.
func (p *printer) table(header []string, rows [][]cell) error {
	widths := make([]int, len(header))
	for i, h := range header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, row := range rows {
		for i, cl := range row {
			if i < len(widths) {
				widths[i] = max(widths[i], utf8.RuneCountInString(cl.text))
			}
		}
	}
	var b strings.Builder
	writeRow := func(row []cell) {
		for i, cl := range row {
			text := cl.text
			if i < len(row)-1 {
				text += strings.Repeat(" ", widths[i]-utf8.RuneCountInString(text)+3)
			}
			if p.color && cl.color != "" {
				text = cl.color + strings.TrimRight(text, " ") + colorReset + text[len(strings.TrimRight(text, " ")):]
			}
			b.WriteString(text)
		}
		b.WriteByte('\n')
	}
	hrow := make([]cell, len(header))
	for i, h := range header {
		hrow[i] = colored(h, colorBold)
	}
	writeRow(hrow)
	for _, row := range rows {
		writeRow(row)
	}
	_, err := io.WriteString(p.out, b.String())
	return err
}

// kv writes "key  value" lines with aligned values, for one object.
func (p *printer) kv(pairs [][2]string) error {
	width := 0
	for _, kv := range pairs {
		width = max(width, len(kv[0]))
	}
	var b strings.Builder
	for _, kv := range pairs {
		label := kv[0] + ":"
		if kv[0] == "" {
			label = "" // a continuation line
		}
		key := fmt.Sprintf("%-*s", width+1, label)
		if p.color {
			key = colorBold + key + colorReset
		}
		fmt.Fprintf(&b, "%s  %s\n", key, kv[1])
	}
	_, err := io.WriteString(p.out, b.String())
	return err
}

// linef writes one line of human output.
func (p *printer) linef(format string, args ...any) error {
	_, err := fmt.Fprintf(p.out, format+"\n", args...)
	return err
}

// time formats t as local time to the second, or "-".
func (p *printer) time(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.In(p.loc).Format("2006-01-02 15:04:05")
}

// timeRel formats t as local time with how long ago or ahead it is.
func (p *printer) timeRel(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := t.Sub(p.now)
	rel := "in " + textfmt.Duration(d)
	if d < 0 {
		rel = textfmt.Duration(-d) + " ago"
	}
	return p.time(t) + " (" + rel + ")"
}

// ago formats t relative to now only: "3.2s ago", "in 5m0s", "just now"
// within a second either way (clocks of two machines), or "-".
func (p *printer) ago(t api.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := p.now.Sub(t.Time)
	switch {
	case d > -time.Second && d < time.Second:
		return "just now"
	case d > 0:
		return textfmt.Duration(d) + " ago"
	default:
		return "in " + textfmt.Duration(-d)
	}
}

// runDuration is how long r ran, or has been running, or "-".
func (p *printer) runDuration(r api.Run) string {
	switch {
	case r.StartedAt.IsZero():
		return "-"
	case r.FinishedAt.IsZero():
		return textfmt.Duration(p.now.Sub(r.StartedAt.Time)) + "+"
	default:
		return textfmt.Duration(r.FinishedAt.Sub(r.StartedAt.Time))
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func stateColor(state string) string {
	switch state {
	case api.RunSucceeded, api.ExecutorOnline:
		return colorGreen
	case api.RunFailed, api.RunTimedOut, api.RunKilled, api.RunLost,
		api.ExecutorOffline, api.ExecutorQuarantined:
		return colorRed
	case api.RunRunning, api.RunAssigned:
		return colorCyan
	case api.ExecutorDraining, api.ExecutorSuspect:
		return colorYellow
	case api.RunSkipped, api.RunPending, api.ExecutorDrained:
		return colorDim
	}
	return ""
}

// printable replaces control characters other than newline and tab, so
// that text from a job (its output, its error) cannot drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\n' || r == '\t' {
			return r
		}
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}
