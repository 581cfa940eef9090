package tui

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// The reconnect backoff doubles up to reconnectMax while the stream keeps
// breaking, even when jobd says hello before it drops it; only a stream
// that stays up streamStableAfter starts it over.
func TestModel_Backoff(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	require.Equal(t, []time.Duration{streamStableAfter}, h.durations(streamStableMsg{}))
	broke := func() time.Duration {
		t.Helper()
		h.deliver(eventsMsg{gen: h.m.gen, err: &api.UnreachableError{Target: "/run/jobd/jobd.sock", Err: errBoom}})
		ds := h.durations(reconnectMsg{})
		require.Len(t, ds, 1)
		h.fire(reconnectMsg{})
		return ds[0]
	}
	for n := 1; n <= 8; n++ {
		d := broke()
		want := min(reconnectInitial<<(n-1), reconnectMax)
		require.GreaterOrEqual(t, d, want/2, "attempt %d", n)
		require.LessOrEqual(t, d, want, "attempt %d", n)
		// jobd says hello, then drops the stream again at once.
		h.connect()
	}
	require.GreaterOrEqual(t, broke(), reconnectMax/2, "capped, not reset")

	// A stream that stays up starts the backoff over; the timers of the
	// streams that did not are dropped.
	h.connect()
	h.fire(streamStableMsg{})
	require.LessOrEqual(t, broke(), reconnectInitial)
}

// A hello while the view shown is being loaded does not load it a second
// time: the load on its way lands, and the view is loaded again after the
// throttle since the stream opened meanwhile.
func TestModel_HelloWhileLoading(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	load := h.m.command("jobs") // on its way
	h.deliver(eventsMsg{gen: h.m.gen, err: errStreamClosed})
	h.fire(reconnectMsg{})
	h.connect()
	require.Empty(t, h.requests(), "no second load")

	for _, msg := range run(load) {
		h.deliver(msg)
	}
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.requests())
	h.requireScreen("backup", "flaky")
	require.Equal(t, 1, h.pending(reloadTickMsg{}))
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.requests())
}

// An answer that lands after a newer one is dropped: the executors,
// missed triggers and status shown are those of the last load.
func TestModel_StaleLoads(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		view   viewID
		change func(fc *fakeClient)
		shown  string
	}{
		{viewExecutors, func(fc *fakeClient) { fc.execs[0].State = api.ExecutorSuspect }, "suspect"},
		{viewMissed, func(fc *fakeClient) { fc.missed = fc.missed[2:] }, "1 missed trigger of 1 job"},
		{viewOverview, func(fc *fakeClient) { fc.status = &api.Status{Version: "9.9.9", Jobs: 7} }, "jobs       7"},
	} {
		t.Run(c.view.String(), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.connect()
			h.settle(h.m.command(c.view.String()))
			older := run(h.m.startLoad(c.view))
			c.change(h.fc)
			h.settle(h.m.startLoad(c.view))
			h.requireScreen(c.shown)
			for _, msg := range older {
				h.deliver(msg)
			}
			h.requireScreen(c.shown)
		})
	}
}

// The status of hello is newer than a status asked for before it.
func TestOverview_HelloAfterLoad(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	older := run(h.m.startLoad(viewOverview))
	h.deliver(eventsMsg{gen: h.m.gen, err: errStreamClosed})
	h.fire(reconnectMsg{})
	h.fc.status = &api.Status{Version: "9.9.9", Jobs: 7}
	h.connect()
	for _, msg := range older {
		h.deliver(msg)
	}
	h.requireScreen("jobd 9.9.9", "jobs       7")
}

// A list asked for before an executor event, or a drain's answer, does
// not put the executor back as it was when it lands after: it is dropped,
// and the list loaded again.
func TestExecutors_ListAfterChange(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.fc.called()

	older := run(h.m.startLoad(viewExecutors))
	x := h.fc.execs[0]
	x.State, x.Running = api.ExecutorSuspect, 2
	h.events(api.Event{Type: api.EventExecutor, Executor: &x})
	for _, msg := range older {
		h.deliver(msg)
	}
	h.requireScreen("suspect", "2/4")
	require.Equal(t, 1, h.pending(reloadTickMsg{}), "loaded again once the old list landed")
	h.fc.execs[0] = x
	h.fc.called()
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"ExecutorList"}, h.fc.called())
	h.requireScreen("suspect", "2/4")

	// The same with the answer of a drain.
	h.press("g", "j") // web-1
	older = run(h.m.startLoad(viewExecutors))
	h.press("d", "y")
	h.requireScreen("draining (2 left)")
	for _, msg := range older {
		h.deliver(msg)
	}
	h.requireScreen("draining (2 left)")
	h.requireNotScreen("suspect")
}
