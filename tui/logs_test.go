package tui

import (
	"fmt"
	"io"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestLogs_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.settle(h.m.command("logs"))
			h.requireScreen("no run selected", ":logs RUN_ID")
			h.settle(h.m.command("runs"))
			h.press("enter")
			h.readLogs()
			h.requireScreen("<logs>", "run 7 · job backup · running on web-1 · complete",
				"starting backup", "copying files", "— end of output —", "logs of run 7 · 2 lines · wrap on")
			h.requireSize()
		})
	}
}

// The logs follow the output until the operator scrolls up; G follows
// again. w toggles wrapping, / keeps matching lines.
func TestLogs_Follow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{width: 80, height: 20})
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()
	// Open the logs without running the stream: the test feeds it.
	h.send(drillMsg{to: viewLogs, filter: "7"})
	gen := h.m.logs.gen
	ch := make(chan logItem)
	h.send(logsOpenedMsg{gen: gen, id: "7", ch: ch, cancel: func() {}})
	h.deliver(runLoadedMsg{id: "7", run: &h.fc.runs[0]})
	h.requireScreen("waiting for output…", "FOLLOWING")

	var b strings.Builder
	for i := 1; i <= 100; i++ {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	h.send(logsDataMsg{gen: gen, data: []byte(b.String())})
	h.requireScreen("line 100", "FOLLOWING", "100 lines")
	h.requireNotScreen("line 50\n")

	h.press("k", "k")
	h.requireScreen("PAUSED — G follows", "line 98")
	h.requireNotScreen("line 100")
	h.send(logsDataMsg{gen: gen, data: []byte("line 101\n")})
	h.requireNotScreen("line 101", "line 100")

	h.press("G")
	h.requireScreen("FOLLOWING", "line 101")

	long := strings.Repeat("x", 100) + "END"
	h.send(logsDataMsg{gen: gen, data: []byte(long + "\n")})
	h.requireScreen("END", "wrap on")
	h.press("w")
	h.requireScreen("wrap off")
	h.requireNotScreen("END")
	h.press("l", "l", "l", "l", "l", "l", "l", "l", "l", "l", "l", "l")
	h.requireScreen("END")

	h.send(keyMsg("/"))
	h.typeText("line 7")
	h.press("enter")
	h.press("w") // back to wrapping, which scrolls back left
	h.requireScreen("line 70", "line 79", `filter "line 7"`)
	h.requireNotScreen("line 80")

	// The stream ends when the run does.
	h.settle(h.send(logsDataMsg{gen: gen, err: io.EOF}))
	h.requireScreen("complete")
	h.requireSize()
}

// A log stream that breaks (jobd restarts) is opened again from where it
// was.
func TestLogs_Resume(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.send(drillMsg{to: viewLogs, filter: "7"})
	gen := h.m.logs.gen
	h.send(logsOpenedMsg{gen: gen, id: "7", ch: make(chan logItem), cancel: func() {}})
	h.send(logsDataMsg{gen: gen, data: []byte("starting backup\n")})
	h.send(logsDataMsg{gen: gen, err: io.ErrUnexpectedEOF})
	h.requireScreen("output lost — reconnecting…")
	h.fc.called()
	h.fire(logsRetryMsg{})
	require.Subset(t, h.fc.called(), []string{"RunLogs 7 offset=16 follow=true"})
	h.requireScreen("starting backup", "copying files")
}

// openLogs opens the logs of run id without running their stream: the
// test feeds it. It returns the generation of the stream.
func openLogs(h *harness, id string) int {
	h.t.Helper()
	h.send(drillMsg{to: viewLogs, filter: id})
	gen := h.m.logs.gen
	h.send(logsOpenedMsg{gen: gen, id: id, ch: make(chan logItem), cancel: func() {}})
	h.deliver(runLoadedMsg{id: id, run: &h.fc.runs[0]})
	return gen
}

// A line that never ends is cut at logMaxLineBytes, with a marker that
// counts the bytes cut, however much of it comes: what the viewport wraps
// on each render stays small.
func TestLogs_LongLines(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{width: 80, height: 20})
	h.connect()
	gen := openLogs(h, "7")
	const chunk = 64 << 10

	h.send(logsDataMsg{gen: gen, data: []byte(strings.Repeat("x", chunk))})
	require.LessOrEqual(t, len(h.m.logs.partial), logMaxLineBytes)
	h.requireScreen(fmt.Sprintf("[%s cut]", plural(chunk-logMaxLineBytes, "byte")))

	// The line goes on, then ends: the count grows, the line does not.
	h.send(logsDataMsg{gen: gen, data: []byte(strings.Repeat("y", chunk) + "tail\nnext line\n")})
	lines := h.m.logs.lines
	require.Len(t, lines, 2)
	marker := fmt.Sprintf(" … [%s cut]", plural(2*chunk+4-logMaxLineBytes, "byte"))
	require.Equal(t, strings.Repeat("x", logMaxLineBytes)+marker, lines[0])
	require.Equal(t, "next line", lines[1])
	require.Empty(t, h.m.logs.partial)
	h.requireScreen("bytes cut]", "next line")
	h.requireSize()

	// A line is cut between characters, not inside one.
	h.send(logsDataMsg{gen: gen, data: []byte("a" + strings.Repeat("é", logMaxLineBytes) + "\n")})
	last := h.m.logs.lines[len(h.m.logs.lines)-1]
	require.True(t, utf8.ValidString(last))
	require.True(t, strings.HasPrefix(last, "a"+strings.Repeat("é", (logMaxLineBytes-1)/2)+" … ["), last[len(last)-40:])
	require.Equal(t, fmt.Sprintf(" … [%s cut]", plural(int64(2*logMaxLineBytes+1-(logMaxLineBytes-1)), "byte")),
		strings.TrimPrefix(last, "a"+strings.Repeat("é", (logMaxLineBytes-1)/2)))

	// The end of the output ends a cut line too.
	h.send(logsDataMsg{gen: gen, data: []byte(strings.Repeat("z", chunk))})
	h.settle(h.send(logsDataMsg{gen: gen, err: io.EOF}))
	require.Equal(t, strings.Repeat("z", logMaxLineBytes)+fmt.Sprintf(" … [%s cut]", plural(chunk-logMaxLineBytes, "byte")),
		h.m.logs.lines[len(h.m.logs.lines)-1])
	h.requireScreen("— end of output —")
}

// The view keeps logMaxBytes of output at most, however long the lines.
func TestLogs_ByteBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	gen := openLogs(h, "7")
	line := strings.Repeat("x", logMaxLineBytes-1) + "\n"
	const n = 2 * logMaxBytes / logMaxLineBytes
	h.send(logsDataMsg{gen: gen, data: []byte(strings.Repeat(line, n))})
	size := 0
	for _, l := range h.m.logs.lines {
		size += len(l)
	}
	require.LessOrEqual(t, size, logMaxBytes)
	require.Greater(t, size, logMaxBytes-logMaxLineBytes, "no more lines are dropped than needed")
	require.Equal(t, n, len(h.m.logs.lines)+h.m.logs.dropped)
	require.Less(t, len(h.m.logs.lines), logMaxLines, "the bytes bound the lines here")
	h.press("g")
	h.requireScreen(fmt.Sprintf("… %d earlier lines not shown: jobctl logs 7 prints them all", h.m.logs.dropped),
		fmt.Sprintf("%s lines", thousands(n)))
}

// The logs are followed only while they are shown: leaving them closes
// their stream, coming back opens it again from where it was.
func TestLogs_StopWhenHidden(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()
	h.send(drillMsg{to: viewLogs, filter: "7"})
	gen := h.m.logs.gen
	cancelled := false
	h.send(logsOpenedMsg{gen: gen, id: "7", ch: make(chan logItem), cancel: func() { cancelled = true }})
	h.send(logsDataMsg{gen: gen, data: []byte("starting backup\n")})
	require.Equal(t, 1, h.pending(logsWaitMsg{}), "the next output is waited for")

	h.press("esc")
	require.Equal(t, "runs", h.m.Active())
	require.True(t, cancelled, "the log stream is closed")
	// What the closed stream still sends is dropped, and nothing waits
	// for more.
	require.Nil(t, h.send(logsDataMsg{gen: gen, data: []byte("copying files\n")}))
	h.fire(logsWaitMsg{})
	h.fire(logsRetryMsg{})
	require.Equal(t, []string{"starting backup"}, h.m.logs.lines)
	require.Empty(t, h.fc.called())

	// The run ends meanwhile: the run is loaded again, not its output.
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "7", Job: "backup", State: api.RunSucceeded}})
	for _, c := range h.fc.called() {
		require.NotContains(t, c, "RunLogs")
	}

	h.press("tab")
	require.Equal(t, "logs", h.m.Active())
	require.Contains(t, h.fc.called(), "RunLogs 7 offset=16 follow=true")
	h.readLogs()
	h.requireScreen("starting backup", "copying files", "— end of output —")
	require.Equal(t, []string{"starting backup", "copying files"}, h.m.logs.lines)
}

// Each batch of output waits for the backend's timer before the next is
// taken, so that a run that writes fast costs a few renders a second.
func TestLogs_BatchTimer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	gen := openLogs(h, "7")
	require.Nil(t, h.send(logsWaitMsg{gen: gen - 1}), "an older stream's timer is dropped")
	h.send(logsDataMsg{gen: gen, data: []byte("one\n")})
	require.Equal(t, []time.Duration{logBatchWindow}, h.durations(logsWaitMsg{}))
}
