package tui

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// A replay count that comes late does not open a confirmation: not over
// another one, not once the operator pressed a key, not in another view.
func TestMissed_LatePreview(t *testing.T) {
	t.Parallel()
	// requestReplay presses r in Missed and returns the count on its way.
	requestReplay := func(h *harness) []any {
		h.t.Helper()
		h.settle(h.m.command("missed"))
		req := run(h.send(keyMsg("r")))
		require.Len(h.t, req, 1)
		var late []any
		for _, msg := range run(h.send(req[0])) {
			if _, ok := msg.(replayPreviewMsg); ok {
				late = append(late, msg)
			}
		}
		require.Len(h.t, late, 1)
		return late
	}

	t.Run("OverAnotherConfirmation", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.connect()
		late := requestReplay(h)
		h.send(keyMsg(":"))
		h.typeText("jobs")
		h.press("enter", "p")
		h.requireScreen("Pause job backup?")
		h.deliver(late[0])
		h.requireScreen("Pause job backup?")
		h.requireNotScreen("Replay")
		h.fc.called()
		h.press("y")
		require.Equal(t, []string{"JobPause backup"}, h.fc.called())
	})
	t.Run("AfterAKey", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.connect()
		late := requestReplay(h)
		h.requireScreen("counting missed triggers…")
		h.press("j")
		h.deliver(late[0])
		require.Nil(t, h.m.confirm)
		h.requireNotScreen("counting missed triggers…", "Replay")
	})
	t.Run("InAnotherView", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.connect()
		late := requestReplay(h)
		h.deliver(drillMsg{to: viewRuns, filter: "tick"})
		h.deliver(late[0])
		require.Nil(t, h.m.confirm)
	})
	t.Run("InTime", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, harnessOpts{})
		h.connect()
		late := requestReplay(h)
		h.deliver(late[0])
		h.requireScreen("Replay 42 missed triggers of job tick?")
		// The same count twice opens nothing more.
		h.press("n")
		h.deliver(late[0])
		require.Nil(t, h.m.confirm)
	})
}

// Each request of an action on several targets, and of the dry runs that
// count a replay, has a timeout of its own: the context of a request
// ended when the next one is made.
func TestActions_TimeoutPerTarget(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		view string
		keys []string
		call string
		n    int
	}{
		{"Pause", "jobs", []string{"space", "space", "space", "p", "y"}, "JobPause", 3},
		{"Drain", "executors", []string{"space", "space", "d", "y"}, "ExecutorDrain", 2},
		{"ReplayCount", "missed", []string{"space", "space", "r"}, "Replay job=", 2},
		{"Replay", "missed", []string{"space", "space", "r", "y"}, "Replay job=", 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.connect()
			h.settle(h.m.command(c.view))
			var prev context.Context
			var calls, shared []string
			h.fc.hook = func(ctx context.Context, call string) error {
				if !strings.HasPrefix(call, c.call) {
					return nil
				}
				calls = append(calls, call)
				_, ok := ctx.Deadline()
				require.True(t, ok, "%s has a deadline", call)
				if prev != nil && prev.Err() == nil {
					shared = append(shared, call)
				}
				prev = ctx
				return nil
			}
			h.press(c.keys...)
			require.Len(t, calls, c.n, "calls: %q", calls)
			require.Empty(t, shared, "requests that share the time of the one before")
		})
	}
}

// Marks stay on the rows an action failed on, so that it can be tried
// again; the rows it succeeded on are unmarked.
func TestActions_MarksKeptOnFailure(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.press("j", "space", "space") // web-1 and web-2
	h.fc.fail = &api.Error{Status: 503, Message: "jobd is stopping"}
	h.press("d", "y")
	h.requireScreen("Drain failed", "2 marked", "* web-1", "* web-2")

	h.fc.fail = nil
	h.fc.hook = func(_ context.Context, call string) error {
		if call == "ExecutorDrain e2" {
			return &api.Error{Status: 409, Message: "executor e2 is already draining"}
		}
		return nil
	}
	h.press("d", "y")
	h.requireScreen("(1 failed: web-2 (e2): executor e2 is already draining)", "1 marked", "* web-2")
	h.requireNotScreen("* web-1")

	h.fc.hook = nil
	h.press("d", "y")
	h.requireNotScreen("marked", "* web-2")
}
