package tui

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/jobd/jobd/api"
)

// How the event stream is read.
const (
	// eventBatchWindow is how long the wait for events keeps collecting
	// after the first one, so that a burst of events costs one update and
	// one render rather than one per event.
	eventBatchWindow = 50 * time.Millisecond
	// maxEventBatch caps the events of one batch.
	maxEventBatch = 4096
	// eventBuffer is how many events wait between the stream and the
	// dashboard; past it the stream waits, and jobd sends a resync when
	// its own buffer overflows.
	eventBuffer = 1024
)

// Reconnect backoff after the stream broke.
const (
	reconnectInitial = 250 * time.Millisecond
	reconnectMax     = 5 * time.Second
)

// streamItem is one event, or the error that ended the stream.
type streamItem struct {
	ev  api.Event
	err error
}

// streamOpenedMsg says the event stream of generation gen is being read
// into ch.
type streamOpenedMsg struct {
	gen    int
	ch     <-chan streamItem
	cancel context.CancelFunc
}

// eventsMsg carries a batch of events of the stream of generation gen.
// Err is set when the stream ended after them.
type eventsMsg struct {
	gen    int
	events []api.Event
	err    error
}

// reconnectMsg asks to open the stream again after a backoff.
type reconnectMsg struct{ gen int }

// streamStableMsg says the stream of generation gen was opened
// streamStableAfter ago: if it is still up, the backoff starts over.
type streamStableMsg struct{ gen int }

// errStreamClosed is the error of a stream that ended without one.
var errStreamClosed = errors.New("event stream closed")

// connectCmd opens the event stream of generation gen: a goroutine reads
// the stream into a channel until ctx ends or the stream breaks.
func connectCmd(ctx context.Context, c Client, gen int) tea.Cmd {
	return func() tea.Msg {
		sctx, cancel := context.WithCancel(ctx)
		ch := make(chan streamItem, eventBuffer)
		go func() {
			defer close(ch)
			for ev, err := range c.Events(sctx) {
				select {
				case ch <- streamItem{ev: ev, err: err}:
				case <-sctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		}()
		return streamOpenedMsg{gen: gen, ch: ch, cancel: cancel}
	}
}

// waitEventsCmd waits for the next events of the stream; the root model
// arms it again after each batch.
func waitEventsCmd(gen int, ch <-chan streamItem) tea.Cmd {
	return func() tea.Msg {
		it, ok := <-ch
		if !ok {
			return eventsMsg{gen: gen, err: errStreamClosed}
		}
		if it.err != nil {
			return eventsMsg{gen: gen, err: it.err}
		}
		evs := []api.Event{it.ev}
		timer := time.NewTimer(eventBatchWindow)
		defer timer.Stop()
		for len(evs) < maxEventBatch {
			select {
			case it, ok := <-ch:
				if !ok {
					return eventsMsg{gen: gen, events: evs, err: errStreamClosed}
				}
				if it.err != nil {
					return eventsMsg{gen: gen, events: evs, err: it.err}
				}
				evs = append(evs, it.ev)
			case <-timer.C:
				return eventsMsg{gen: gen, events: evs}
			}
		}
		return eventsMsg{gen: gen, events: evs}
	}
}

// backoff is the wait before reconnect attempt n (1-based): doubling from
// reconnectInitial up to reconnectMax, with jitter so that many
// dashboards do not come back at the same instant.
func backoff(n int) time.Duration {
	d := reconnectInitial
	for i := 1; i < n && d < reconnectMax; i++ {
		d *= 2
	}
	d = min(d, reconnectMax)
	half := d / 2
	return half + rand.N(d-half+1)
}

// How logs are read.
const (
	// logChunk is the size of one read of a log stream.
	logChunk = 32 << 10
	// logBatchWindow is how long the dashboard waits after a batch of
	// output before it takes the next, so that a run that writes fast
	// costs a few updates and renders a second, not one per read.
	logBatchWindow = 50 * time.Millisecond
	// maxLogBatch bounds the output of one update.
	maxLogBatch = 1 << 20
)

// logItem is a piece of output, or how the output ended: io.EOF when the
// run ended and all its output was sent, another error when the stream
// broke.
type logItem struct {
	data []byte
	err  error
}

// logsOpenedMsg says the output of run id from offset on, generation gen,
// is being read into ch.
type logsOpenedMsg struct {
	gen    int
	id     string
	state  string
	ch     <-chan logItem
	cancel context.CancelFunc
	err    error
}

// logsDataMsg carries output of the log stream of generation gen; err is
// io.EOF when the output is complete, another error when the stream broke.
type logsDataMsg struct {
	gen  int
	data []byte
	err  error
}

// logsWaitMsg asks to take the next output of the log stream of
// generation gen, logBatchWindow after the last.
type logsWaitMsg struct{ gen int }

// openLogsCmd opens the output of run id from offset on, following it.
func openLogsCmd(ctx context.Context, c Client, id string, offset int64, gen int) tea.Cmd {
	return func() tea.Msg {
		lctx, cancel := context.WithCancel(ctx)
		body, state, err := c.RunLogs(lctx, id, offset, true)
		if err != nil {
			cancel()
			return logsOpenedMsg{gen: gen, id: id, err: err}
		}
		ch := make(chan logItem, 64)
		go func() {
			defer close(ch)
			defer body.Close()
			for {
				buf := make([]byte, logChunk)
				n, err := body.Read(buf)
				if n > 0 {
					select {
					case ch <- logItem{data: buf[:n]}:
					case <-lctx.Done():
						return
					}
				}
				if err != nil {
					if lctx.Err() != nil {
						return
					}
					select {
					case ch <- logItem{err: err}:
					case <-lctx.Done():
					}
					return
				}
			}
		}()
		return logsOpenedMsg{gen: gen, id: id, state: state, ch: ch, cancel: cancel}
	}
}

// waitLogsCmd waits for more output of the log stream, and takes with it
// whatever else already waits in ch. The logs view arms it again
// logBatchWindow after each batch, through the backend's timer.
func waitLogsCmd(gen int, ch <-chan logItem) tea.Cmd {
	return func() tea.Msg {
		it, ok := <-ch
		if !ok {
			return logsDataMsg{gen: gen, err: io.ErrUnexpectedEOF}
		}
		if it.err != nil {
			return logsDataMsg{gen: gen, err: it.err}
		}
		data := it.data
		for len(data) < maxLogBatch {
			select {
			case it, ok := <-ch:
				if !ok {
					return logsDataMsg{gen: gen, data: data, err: io.ErrUnexpectedEOF}
				}
				data = append(data, it.data...)
				if it.err != nil {
					return logsDataMsg{gen: gen, data: data, err: it.err}
				}
			default:
				return logsDataMsg{gen: gen, data: data}
			}
		}
		return logsDataMsg{gen: gen, data: data}
	}
}

// applyEvents applies a batch of events to the views and returns what to
// do about it: the pages the events touched are loaded again, once per
// throttle interval at most.
func (m *Model) applyEvents(evs []api.Event) []tea.Cmd {
	var cmds []tea.Cmd
	var dirty [numViews]bool
	hello := false
	for i := range evs {
		ev := &evs[i]
		switch ev.Type {
		case api.EventHello:
			hello = true
			wasConnected := m.connected
			m.connected, m.streamErr = true, nil
			if !wasConnected {
				m.layout()
				// The backoff starts over only once the stream stays up.
				cmds = append(cmds, m.b.after(streamStableAfter, streamStableMsg{gen: m.gen}))
			}
			if ev.Status != nil {
				m.version = ev.Status.Version
				m.overview.helloStatus(ev.Status)
			}
		case api.EventRun:
			if ev.Run == nil {
				continue
			}
			dirty[viewRuns] = m.runs.applyRun(ev.Run) || dirty[viewRuns]
			dirty[viewJobs] = m.jobs.applyRun(ev.Run) || dirty[viewJobs]
			if cmd := m.logs.applyRun(ev.Run); cmd != nil {
				cmds = append(cmds, cmd)
			}
			dirty[viewOverview] = true
		case api.EventJob:
			if ev.Job == nil {
				continue
			}
			dirty[viewJobs] = m.jobs.applyJob(ev.Job) || dirty[viewJobs]
			dirty[viewOverview] = true
		case api.EventExecutor:
			if ev.Executor != nil {
				cmds = append(cmds, m.applyExecutor(ev.Executor))
				dirty[viewOverview] = true
			}
		case api.EventMissed:
			dirty[viewMissed] = true
			dirty[viewOverview] = true
		case api.EventResync:
			for v := range dirty {
				dirty[v] = true
			}
		}
	}
	if hello {
		// A new stream: what is shown may have changed while there was
		// none. Load the view shown now; the others when they are shown.
		// A load already on its way is not doubled: the view is dirty,
		// so it is loaded again, after the throttle, once that load
		// lands. The logs stream only while shown: they too are loaded
		// when shown.
		for v := range m.loads {
			m.loads[v].dirty = viewID(v) != viewOverview
		}
		if m.active != viewOverview && !m.loads[m.active].loading {
			cmds = append(cmds, m.startLoad(m.active))
		}
	}
	for v, d := range dirty {
		if d {
			cmds = append(cmds, m.invalidate(viewID(v)))
		}
	}
	return cmds
}

// applyExecutor puts x, as an event or an action's answer carries it, in
// the executors. A list asked for before x may land after it and put the
// executor back as it was: that list is dropped, and the view loaded
// again once it lands.
func (m *Model) applyExecutor(x *api.Executor) tea.Cmd {
	m.executors.apply(x)
	if m.loads[viewExecutors].loading {
		m.executors.seq++
		return m.invalidate(viewExecutors)
	}
	return nil
}

// streamBroke notes that the event stream broke and schedules a
// reconnect.
func (m *Model) streamBroke(err error) tea.Cmd {
	if m.cancel != nil {
		m.cancel()
		m.cancel = nil
	}
	wasShown := m.bannerShown()
	m.connected, m.streamErr = false, err
	m.attempts++
	if !wasShown {
		m.layout()
	}
	gen := m.gen
	return m.b.after(backoff(m.attempts), reconnectMsg{gen: gen})
}

// bannerShown reports whether the "unreachable" banner takes a line.
func (m *Model) bannerShown() bool { return !m.connected && m.streamErr != nil }
