package tui

import (
	"context"
	"fmt"
	"slices"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"github.com/jobd/jobd/api"
)

// actionKind is an operation on jobd the dashboard can run.
type actionKind int

const (
	actDrain actionKind = iota
	actUndrain
	actTrigger
	actPause
	actResume
	actKill
	actReplay
)

// target is what an action applies to: an executor id, a job name or a
// run id, and how to name it.
type target struct {
	id    string
	label string
}

// action is an operation waiting for, or past, its confirmation.
type action struct {
	kind    actionKind
	targets []target
	// all replays the missed triggers of every job.
	all bool
	// count is what the confirmation counts besides the targets: the runs
	// an executor runs (drain), the missed triggers (replay).
	count int64
	// counts are the missed triggers of each target (replay).
	counts []int64
	// until bounds a replay to the triggers its dry run counted.
	until api.Time
}

// actionRequestMsg asks for the confirmation of an action.
type actionRequestMsg struct{ act action }

func requestAction(a action) tea.Cmd {
	return func() tea.Msg { return actionRequestMsg{act: a} }
}

// replayPreviewMsg carries how many missed triggers a replay would fire,
// as the dry run of sequence number seq counted them.
type replayPreviewMsg struct {
	seq int
	act action
	err error
}

// actionDoneMsg tells how an action went.
type actionDoneMsg struct {
	act  action
	done int
	errs []string
	// failed are the ids of the targets the action failed on.
	failed []string
	text   string
	execs  []api.Executor
}

// flashMsg shows a message in the status line for a while.
type flashMsg struct {
	text  string
	isErr bool
}

func flash(text string, isErr bool) tea.Cmd {
	return func() tea.Msg { return flashMsg{text: text, isErr: isErr} }
}

func (a action) noun() string {
	switch a.kind {
	case actDrain, actUndrain:
		return "executor"
	case actKill:
		return "run"
	case actReplay:
		return "missed trigger"
	}
	return "job"
}

func (a action) verb() string {
	return [...]string{"Drain", "Undrain", "Trigger", "Pause", "Resume", "Kill", "Replay"}[a.kind]
}

func (a action) gerund() string {
	return [...]string{"draining", "undraining", "triggering", "pausing", "resuming", "killing", "replaying"}[a.kind]
}

// title names the action and counts what it applies to: "Pause 3 jobs".
func (a action) title() string {
	if a.kind == actReplay {
		return a.verb() + " " + plural(a.count, a.noun())
	}
	return a.verb() + " " + plural(int64(len(a.targets)), a.noun())
}

func (a action) labels() []string {
	names := make([]string, len(a.targets))
	for i, t := range a.targets {
		names[i] = t.label
	}
	return names
}

// question names the targets: "Pause job backup?".
func (a action) question() string {
	const show = 5
	n := len(a.targets)
	one := n == 1
	switch a.kind {
	case actReplay:
		of := "of every job"
		switch {
		case a.all:
		case one:
			of = "of job " + a.targets[0].label
		default:
			of = "of jobs " + listNames(a.labels(), show)
		}
		return fmt.Sprintf("Replay %s %s?", plural(a.count, "missed trigger"), of)
	case actKill:
		if one {
			return "Kill " + a.targets[0].label + "?"
		}
		ids := make([]string, n)
		for i, t := range a.targets {
			ids[i] = t.id
		}
		return fmt.Sprintf("Kill %d runs: %s?", n, listNames(ids, show))
	case actTrigger:
		if one {
			return "Trigger job " + a.targets[0].label + " now?"
		}
		return fmt.Sprintf("Trigger %d jobs now: %s?", n, listNames(a.labels(), show))
	}
	if one {
		return a.verb() + " " + a.noun() + " " + a.targets[0].label + "?"
	}
	return fmt.Sprintf("%s %d %ss: %s?", a.verb(), n, a.noun(), listNames(a.labels(), show))
}

// detail says what the action does.
func (a action) detail() string {
	switch a.kind {
	case actDrain:
		it, them := "It runs", "it"
		if len(a.targets) > 1 {
			it, them = "They run", "them"
		}
		if a.count == 0 {
			return fmt.Sprintf("%s nothing now. jobd routes no more runs to %s; undrain (u) reverses it.", it, them)
		}
		return fmt.Sprintf("%s %s now. jobd routes no more runs to %s and lets those finish; undrain (u) reverses it.",
			it, plural(a.count, "run"), them)
	case actUndrain:
		return "jobd routes runs to it again."
	case actTrigger:
		return "Each job fires once, now, as a manual trigger."
	case actPause:
		return "A paused job fires no more until it is resumed."
	case actResume:
		return "It fires on its schedule again from the next due time."
	case actKill:
		return "The executor stops the run's process group: SIGTERM, then SIGKILL after a grace."
	case actReplay:
		return "Each fires again with its original scheduled time, marked as a replay."
	}
	return ""
}

// previewReplayCmd asks jobd, in a dry run, how many missed triggers the
// replay would fire, bounding it to the triggers scheduled until now. Each
// request has its own timeout.
func previewReplayCmd(b *backend, a action, now api.Time, seq int) tea.Cmd {
	return func() tea.Msg {
		a.until = now
		a.count = 0
		req := api.ReplayRequest{DryRun: true, Until: now}
		replay := func(ctx context.Context) (*api.ReplayResponse, error) { return b.client.Replay(ctx, req) }
		if a.all {
			res, err := bounded(b, replay)
			if err != nil {
				return replayPreviewMsg{seq: seq, act: a, err: fmt.Errorf("count missed triggers: %w", err)}
			}
			a.count = res.Count
			return replayPreviewMsg{seq: seq, act: a}
		}
		var keep []target
		a.counts = nil
		for _, t := range a.targets {
			req.Job = t.id
			res, err := bounded(b, replay)
			if err != nil {
				return replayPreviewMsg{seq: seq, act: a, err: fmt.Errorf("count missed triggers of job %s: %w", t.label, err)}
			}
			if res.Count > 0 {
				keep = append(keep, t)
				a.counts = append(a.counts, res.Count)
				a.count += res.Count
			}
		}
		a.targets = keep
		return replayPreviewMsg{seq: seq, act: a}
	}
}

// runActionCmd runs a confirmed action on each target in turn, each
// request with its own timeout: one slow target does not use up the time
// of the next.
func runActionCmd(b *backend, a action) tea.Cmd {
	return func() tea.Msg {
		res := actionDoneMsg{act: a}
		var fired int64
		var runIDs []string
		if a.kind == actReplay && a.all {
			r, err := bounded(b, func(ctx context.Context) (*api.ReplayResponse, error) {
				return b.client.Replay(ctx, api.ReplayRequest{Until: a.until})
			})
			if err != nil {
				res.errs = append(res.errs, err.Error())
			} else {
				res.done, fired = 1, r.Fired
			}
		}
		for _, t := range a.targets {
			if a.all {
				break
			}
			err := b.do(func(ctx context.Context) error {
				var err error
				switch a.kind {
				case actDrain:
					var x *api.Executor
					if x, err = b.client.ExecutorDrain(ctx, t.id, api.DrainRequest{}); err == nil {
						res.execs = append(res.execs, *x)
					}
				case actUndrain:
					var x *api.Executor
					if x, err = b.client.ExecutorUndrain(ctx, t.id); err == nil {
						res.execs = append(res.execs, *x)
					}
				case actTrigger:
					var tr *api.TriggerResponse
					if tr, err = b.client.JobTrigger(ctx, t.id, api.TriggerRequest{}); err == nil {
						for _, r := range tr.Runs {
							runIDs = append(runIDs, r.ID)
						}
					}
				case actPause:
					_, err = b.client.JobPause(ctx, t.id)
				case actResume:
					_, err = b.client.JobResume(ctx, t.id)
				case actKill:
					_, err = b.client.RunKill(ctx, t.id)
				case actReplay:
					var r *api.ReplayResponse
					if r, err = b.client.Replay(ctx, api.ReplayRequest{Job: t.id, Until: a.until}); err == nil {
						fired += r.Fired
					}
				}
				return err
			})
			if err != nil {
				res.errs = append(res.errs, t.label+": "+err.Error())
				res.failed = append(res.failed, t.id)
				continue
			}
			res.done++
		}
		res.text = doneText(a, res, fired, runIDs)
		return res
	}
}

// doneText says what an action did.
func doneText(a action, res actionDoneMsg, fired int64, runIDs []string) string {
	n := len(a.targets)
	what := plural(int64(res.done), a.noun())
	if n == 1 {
		what = a.noun() + " " + a.targets[0].label
	}
	var s string
	switch a.kind {
	case actDrain:
		s = "draining " + what
		if len(res.execs) == 1 {
			s += fmt.Sprintf(": %s left", plural(int64(res.execs[0].RunsLeft()), "run"))
		}
	case actUndrain:
		s = "undrained " + what
	case actTrigger:
		s = "triggered " + what
		if len(runIDs) > 0 && len(runIDs) <= 3 {
			s += ": run " + strings.Join(runIDs, ", ")
		}
	case actPause:
		s = "paused " + what
	case actResume:
		s = "resumed " + what
	case actKill:
		s = "asked jobd to kill " + plural(int64(res.done), "run")
		if n == 1 {
			s = "asked jobd to kill " + a.targets[0].label
		}
	case actReplay:
		s = "replayed " + plural(fired, "missed trigger")
		if res.done > 0 && fired < a.count {
			s += fmt.Sprintf(" of %s (jobd caps one replay: r again for the rest)", thousands(a.count))
		}
	}
	if res.done == 0 && len(res.errs) > 0 {
		return a.verb() + " failed: " + strings.Join(res.errs, "; ")
	}
	if len(res.errs) > 0 {
		s += fmt.Sprintf(" (%d failed: %s)", len(res.errs), strings.Join(res.errs, "; "))
	}
	return s
}

// confirmView renders the confirmation of a, width cells wide at most.
func confirmView(c *Common, a action, width int) string {
	st := c.Styles
	inner := min(64, width-8)
	wrap := lipgloss.NewStyle().Width(inner)
	body := []string{
		st.DialogTitle.Render(a.title()),
		"",
		wrap.Render(a.question()),
		st.Dim.Render(wrap.Render(a.detail())),
		"",
		st.Label.Render("y") + " yes   " + st.Label.Render("n/esc") + " no  " + st.Dim.Render("[y/N]"),
	}
	return st.Dialog.Render(strings.Join(body, "\n"))
}

// countingText is the flash shown while a replay's dry run counts.
const countingText = "counting missed triggers…"

// requestAction asks for the confirmation of a; a replay first counts
// what it would fire.
func (m *Model) requestAction(a action) tea.Cmd {
	if m.c.ReadOnly {
		return nil
	}
	if a.kind == actReplay {
		m.previewSeq++
		m.preview, m.previewView = m.previewSeq, m.active
		return tea.Batch(m.setFlash(countingText, false),
			previewReplayCmd(m.b, a, api.NewTime(m.nowFunc()), m.previewSeq))
	}
	m.confirm = &a
	return nil
}

// previewed opens the confirmation of a replay once its dry run counted
// the missed triggers. A count that comes too late is dropped: one the
// operator pressed a key after, or left the view since, or that would
// replace a confirmation already open.
func (m *Model) previewed(msg replayPreviewMsg) tea.Cmd {
	late := m.c.ReadOnly || msg.seq != m.preview || m.confirm != nil || m.active != m.previewView
	if msg.seq == m.preview {
		m.preview = 0
	}
	if late {
		if m.preview == 0 && m.flashText == countingText {
			m.flashText = "" // nothing is being counted any more
		}
		return nil
	}
	if msg.err != nil {
		return m.setFlash(msg.err.Error(), true)
	}
	a := msg.act
	if a.count == 0 {
		return m.setFlash("no missed triggers to replay", false)
	}
	m.flashText = ""
	m.confirm = &a
	return nil
}

func (m *Model) actionDone(msg actionDoneMsg) tea.Cmd {
	cmds := []tea.Cmd{m.setFlash(msg.text, len(msg.errs) > 0)}
	for i := range msg.execs {
		cmds = append(cmds, m.applyExecutor(&msg.execs[i]))
	}
	m.unmark(msg)
	switch msg.act.kind {
	case actDrain, actUndrain:
		cmds = append(cmds, m.invalidate(viewOverview))
	case actTrigger, actPause, actResume:
		cmds = append(cmds, m.invalidate(viewJobs), m.invalidate(viewRuns))
	case actKill:
		cmds = append(cmds, m.invalidate(viewRuns))
	case actReplay:
		cmds = append(cmds, m.invalidate(viewMissed), m.invalidate(viewRuns))
	}
	return tea.Batch(cmds...)
}

// unmark unmarks the rows of the view an action came from once it
// succeeded. The rows it failed on stay marked, so that the operator can
// try again.
func (m *Model) unmark(msg actionDoneMsg) {
	var t *table
	switch msg.act.kind {
	case actDrain, actUndrain:
		t = m.executors.table
	case actTrigger, actPause, actResume:
		t = m.jobs.table
	case actKill:
		t = m.runs.table
	case actReplay:
		t = m.missed.table
	}
	switch {
	case len(msg.errs) == 0:
		t.ClearMarks()
	case len(msg.failed) > 0:
		for _, tg := range msg.act.targets {
			if !slices.Contains(msg.failed, tg.id) {
				t.Unmark(tg.id)
			}
		}
	}
}
