package tui

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// sizes are the terminal sizes every view is drawn at.
var sizes = []struct{ w, h int }{{80, 20}, {120, 30}, {200, 50}}

func TestOverview_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.requireScreen(
				"jobd 1.2.3  leader  ·  up 3h0m (since 09:00:00)",
				"store      sqlite /var/lib/jobd/jobd.db",
				"jobs       10,000  12 paused",
				"executors  3 online · 1 draining",
				"runs       4 running · 1,234 succeeded · 3 failed",
				"missed     42",
				"pending    120 triggers",
				"Runs ended per minute",
				"succeeded", "20 now, peak 40",
				"failed", "3 now, peak 3",
				"other", "0 now, peak 2",
				"Next triggers", "in 2s", "12:00:02  backup",
			)
			if sz.h > 20 {
				h.requireScreen("in 1m30s", "12:01:30  report")
			}
			h.requireSize()
		})
	}
}

func TestOverview_Empty(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.fc.status = &api.Status{Version: "1.2.3"}
	h.connect()
	h.requireScreen("no runs ended since jobd started", "none due in the look-ahead window",
		"executors  none registered", "runs       none yet")
	h.requireSize()
}

// The overview is loaded again when events arrive, once a second at most,
// and every few seconds anyway.
func TestOverview_Reload(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	require.Empty(t, h.fc.called(), "hello carries the status")
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "8", Job: "backup", State: api.RunSucceeded}})
	h.fc.status = &api.Status{Version: "1.2.4", Jobs: 7}
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"Status"}, h.fc.called())
	h.requireScreen("jobs       7")

	for range 5 {
		h.deliver(clockMsg{})
	}
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"Status"}, h.fc.called())
}

func TestExecutors_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.settle(h.m.command("executors"))
			h.requireScreen("NAME", "STATE", "RUN/SLOTS", "LAST SEEN",
				"▸  batch-1", "offline", "0/2", "1h0m ago",
				"web-1", "online", "3/4", "2s ago",
				"web-2", "draining (1 left)", "1/4",
				"3 executors")
			if sz.w >= 120 {
				h.requireScreen("GROUP", "e1", "DRAINING", "for 1m0s, timeout in 4m0s")
			}
			if sz.w >= 200 {
				h.requireScreen("region=eu")
			}
			h.requireSize()
		})
	}
}

// Executor events carry the whole executor: the row changes in place,
// with no reload.
func TestExecutors_Events(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.fc.called()
	x := h.fc.execs[0]
	x.State, x.Running = api.ExecutorSuspect, 2
	h.events(api.Event{Type: api.EventExecutor, Executor: &x})
	h.requireScreen("suspect", "2/4")
	h.events(api.Event{Type: api.EventExecutor, Executor: &api.Executor{ID: "e9", Name: "web-9", Group: "web", State: api.ExecutorOnline, Slots: 8}})
	h.requireScreen("web-9", "0/8", "4 executors")
	require.Empty(t, h.fc.called())
	require.Zero(t, h.pending(reloadTickMsg{}))
}

func TestExecutors_Drain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.press("j", "d")
	h.requireScreen("Drain 1 executor", "Drain executor web-1 (e1)?", "It runs 3 runs now", "[y/N]", "y yes  n/esc no")
	h.requireSize()
	h.fc.called()

	h.press("n")
	require.Nil(t, h.m.confirm)
	h.requireScreen("cancelled")
	require.Empty(t, h.fc.called())

	h.press("d", "y")
	require.Equal(t, []string{"ExecutorDrain e1"}, h.fc.called())
	h.requireScreen("draining executor web-1 (e1): 3 runs left", "draining (3 left)")
}

func TestExecutors_DrainMarked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.press("j", "space", "space") // marks web-1 and web-2
	h.requireScreen("2 marked", "* web-1", "* web-2")
	h.press("d")
	h.requireScreen("Drain 2 executors", "Drain 2 executors: web-1 (e1), web-2 (e2)?", "They run 4 runs now")
	h.fc.called()
	h.press("y")
	require.Equal(t, []string{"ExecutorDrain e1", "ExecutorDrain e2"}, h.fc.called())
	h.requireScreen("draining 2 executors")
	h.requireNotScreen("marked")
}

func TestExecutors_Undrain(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.press("j", "j", "u")
	h.requireScreen("Undrain 1 executor", "Undrain executor web-2 (e2)?", "jobd routes runs to it again")
	h.fc.called()
	h.press("y")
	require.Equal(t, []string{"ExecutorUndrain e2"}, h.fc.called())
	h.requireScreen("undrained executor web-2 (e2)")
}

func TestExecutors_ActionFails(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.fc.fail = &api.Error{Status: 409, Message: "executor e3 is offline"}
	h.press("d", "y")
	h.requireScreen("Drain failed: batch-1 (e3): executor e3 is offline")
}

func TestJobs_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.settle(h.m.command("jobs"))
			h.requireScreen("NAME", "SCHEDULE", "NEXT", "LAST", "LAST STATE", "PAUSED",
				"▸  backup", "every 5s", "in 3s", "2s ago", "succeeded", "no",
				"flaky", "cron */5 * * * *", "in 4m0s", "1m0s ago", "failed",
				"report", "manual", "paused", "yes",
				"jobs 1–3")
			if sz.w >= 120 {
				h.requireScreen("GROUP", "batch", "KIND", "script")
			}
			h.requireSize()
		})
	}
}

func TestJobs_Actions(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		keys            []string
		title, question string
		call, done      string
	}{
		{[]string{"t"}, "Trigger 1 job", "Trigger job backup now?", "JobTrigger backup", "triggered job backup: run 99"},
		{[]string{"p"}, "Pause 1 job", "Pause job backup?", "JobPause backup", "paused job backup"},
		{[]string{"j", "j", "r"}, "Resume 1 job", "Resume job report?", "JobResume report", "resumed job report"},
		{[]string{"space", "space", "p"}, "Pause 2 jobs", "Pause 2 jobs: backup, flaky?", "JobPause backup,JobPause flaky", "paused 2 jobs"},
		{[]string{"space", "space", "space", "t"}, "Trigger 3 jobs", "Trigger 3 jobs now: backup, flaky, report?", "JobTrigger backup,JobTrigger flaky,JobTrigger report", "triggered 3 jobs"},
	} {
		t.Run(c.call, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{})
			h.connect()
			h.settle(h.m.command("jobs"))
			h.press(c.keys...)
			h.requireScreen(c.title, c.question, "[y/N]")
			h.requireSize()
			h.fc.called()
			h.press("y")
			want := strings.Split(c.call, ",")
			calls := h.fc.called()
			require.Len(t, calls, len(want), "calls: %q", calls)
			require.Equal(t, want, calls)
			h.requireScreen(c.done)
			// The page is loaded again once the throttle ends.
			h.fire(reloadTickMsg{})
			require.Contains(t, h.fc.called(), "JobList after= group= limit=200")
		})
	}
}

// Enter shows the runs of the job; esc comes back.
func TestJobs_Drill(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()
	h.press("enter")
	require.Equal(t, "runs", h.m.Active())
	require.Equal(t, []string{"RunList job=backup state= before= limit=200"}, h.fc.called())
	h.requireScreen(`filter "job=backup"`, "7 ", "5 ")
	h.requireNotScreen("flaky")
	h.press("esc")
	require.Equal(t, "jobs", h.m.Active())
}

// Jobs come a page at a time: moving past the last row loads the next
// page after the last name, and moving up from the first row the page
// before.
func TestJobs_Paging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.fc.jobs = nil
	for i := range 450 {
		h.fc.jobs = append(h.fc.jobs, api.Job{JobSpec: api.JobSpec{Name: fmt.Sprintf("job%04d", i), Group: "g", Manual: true}})
	}
	h.connect()
	h.settle(h.m.command("jobs"))
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.fc.called())
	h.requireScreen("jobs 1–200 · more below", "job0000")

	h.press("G")
	h.requireScreen("▸  job0199")
	h.press("j")
	require.Equal(t, []string{"JobList after=job0199 group= limit=200"}, h.fc.called())
	h.requireScreen("jobs 201–400 · more below · page 2", "▸  job0200")

	h.press("G", "down")
	h.requireScreen("jobs 401–450 · page 3", "▸  job0400")
	h.press("G", "j")
	h.requireScreen("▸  job0449") // the last page: nothing more

	h.press("g", "k")
	require.Equal(t, "JobList after=job0199 group= limit=200", h.fc.called()[1])
	h.requireScreen("jobs 201–400", "▸  job0399")
	h.requireSize()
}

func TestJobs_Filter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()
	h.send(keyMsg("/"))
	h.requireScreen("/", "name prefix, group=G")
	h.typeText("fl group=web")
	h.press("enter")
	// A prefix starts the page just before it.
	require.Equal(t, []string{"JobList after=fk~ group=web limit=200"}, h.fc.called())
	h.requireScreen(`filter "fl group=web"`, "flaky")
	h.requireNotScreen("backup", "report")

	h.send(keyMsg("/"))
	h.m.prompt.input.SetValue("")
	h.typeText("zzz")
	h.press("enter")
	h.requireScreen(`no job matches "zzz" (esc clears the filter)`)
}

// Job events reload the page only when they touch it; run events set the
// last outcome at once.
func TestJobs_Events(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()

	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "8", Job: "backup", State: api.RunFailed}})
	h.requireScreen("▸  backup", "failed")
	require.Equal(t, 1, h.pending(reloadTickMsg{}))
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.fc.called())

	h.events(api.Event{Type: api.EventJob, Job: &api.JobEvent{Name: "flaky", Deleted: true}})
	h.requireNotScreen("flaky")
}

// A run event that does not name its job (a run killed, lost or assigned)
// may change the last state of any job shown: the page is loaded again.
func TestJobs_EventWithoutJob(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("jobs"))
	h.fc.called()
	h.fc.jobs[0].LastState = api.RunKilled
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "7", State: api.RunKilled}})
	require.Equal(t, 1, h.pending(reloadTickMsg{}))
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"JobList after= group= limit=200"}, h.fc.called())
	h.requireScreen("▸  backup", "killed")
}

func TestRuns_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.settle(h.m.command("runs"))
			h.requireScreen("ID", "JOB", "STATE", "EXECUTOR", "TRY", "SCHEDULED", "DURATION", "EXIT",
				"▸  7", "backup", "running", "web-1", "11:59:57", "3s+",
				"6 ", "flaky", "failed", "web-2", "1.5s",
				"5 ", "succeeded", "2s",
				"newest 3 runs · live")
			if sz.w >= 120 {
				h.requireScreen("ERROR", "exit status 1")
			}
			h.requireSize()
		})
	}
}

// Run events change the state of a row shown at once; a new run reloads
// the newest page (throttled).
func TestRuns_Live(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()

	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "7", Job: "backup", State: api.RunSucceeded}})
	h.requireScreen("▸  7        backup", "succeeded")
	h.requireNotScreen("running")

	h.fc.runs = append([]api.Run{{ID: "8", Job: "flaky", State: api.RunPending, ScheduledAt: at(0)}}, h.fc.runs...)
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "8", Job: "flaky", State: api.RunPending}})
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"RunList job= state= before= limit=200"}, h.fc.called())
	h.requireScreen("pending", "▸  8", "newest 4 runs") // the cursor stays on the newest

	// Away from the newest run, the cursor stays on its run.
	h.press("j")
	h.fc.runs = append([]api.Run{{ID: "9", Job: "tick", State: api.RunPending, ScheduledAt: at(0)}}, h.fc.runs...)
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "9", Job: "tick", State: api.RunPending}})
	h.fire(reloadTickMsg{})
	h.requireScreen("▸  7", "newest 5 runs")

	// A run the filter leaves out does not reload.
	h.send(keyMsg("/"))
	h.typeText("backup")
	h.press("enter")
	h.fc.called()
	h.events(api.Event{Type: api.EventRun, Run: &api.RunEvent{ID: "10", Job: "flaky", State: api.RunPending}})
	require.Zero(t, h.pending(reloadTickMsg{}))
}

func TestRuns_Filter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()
	for _, c := range []struct{ typed, call, shown string }{
		{"failed", "RunList job= state=failed before= limit=200", `filter "state=failed"`},
		{"backup", "RunList job=backup state= before= limit=200", `filter "job=backup"`},
		{"backup running", "RunList job=backup state=running before= limit=200", `filter "job=backup state=running"`},
		{"job=flaky state=failed", "RunList job=flaky state=failed before= limit=200", `filter "job=flaky state=failed"`},
	} {
		h.send(keyMsg("/"))
		h.m.prompt.input.SetValue("")
		h.typeText(c.typed)
		h.press("enter")
		require.Equal(t, []string{c.call}, h.fc.called())
		h.requireScreen(c.shown)
	}
	h.send(keyMsg("/"))
	h.m.prompt.input.SetValue("")
	h.typeText("timed_out")
	h.press("enter")
	h.requireScreen(`no run matches "state=timed_out" (esc clears the filter)`)
}

func TestRuns_Kill(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("runs"))
	h.press("ctrl+k")
	h.requireScreen("Kill 1 run", "Kill run 7 of job backup on web-1?", "SIGTERM, then")
	h.requireSize()
	h.fc.called()
	h.press("y")
	require.Equal(t, "RunKill 7", h.fc.called()[0])
	h.requireScreen("asked jobd to kill run 7 of job backup on web-1")

	// A run that ended cannot be killed.
	h.press("j", "ctrl+k")
	require.Nil(t, h.m.confirm)
	h.requireScreen("run 6 already ended (failed): nothing to kill")
}

func TestRuns_Paging(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.fc.runs = nil
	for i := 500; i > 0; i-- {
		h.fc.runs = append(h.fc.runs, api.Run{ID: fmt.Sprint(i), Job: "tick", State: api.RunSucceeded})
	}
	h.connect()
	h.settle(h.m.command("runs"))
	h.fc.called()
	h.press("G", "j")
	require.Equal(t, []string{"RunList job= state= before=301 limit=200"}, h.fc.called())
	h.requireScreen("older runs, page 2 (200) · more below", "▸  300")
	h.press("g", "k")
	require.Equal(t, []string{"RunList job= state= before= limit=200"}, h.fc.called())
	h.requireScreen("newest 200 runs · live", "▸  301")
}

func TestMissed_View(t *testing.T) {
	t.Parallel()
	for _, sz := range sizes {
		t.Run(fmt.Sprintf("%dx%d", sz.w, sz.h), func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, harnessOpts{width: sz.w, height: sz.h})
			h.connect()
			h.settle(h.m.command("missed"))
			h.requireScreen("JOB", "MISSED", "FROM", "TO", "WHY",
				"▸  tick", "42", "11:50:00", "11:55:00",
				"backup", "1", "11:00:00", "paused",
				"43 missed triggers of 2 jobs")
			if sz.w >= 120 {
				h.requireScreen("down,no_executor")
			}
			h.requireSize()
		})
	}
}

func TestMissed_Replay(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("missed"))
	h.fc.called()

	h.press("r")
	until := api.NewTime(now).String()
	require.Equal(t, []string{"Replay job=tick dry=true until=" + until}, h.fc.called(), "a dry run counts first")
	h.requireScreen("Replay 42 missed triggers", "Replay 42 missed triggers of job tick?", "original scheduled time")
	h.requireSize()
	h.press("y")
	require.Equal(t, []string{"Replay job=tick dry=false until=" + until}, h.fc.called())
	h.requireScreen("replayed 42 missed triggers")

	h.press("R")
	require.Equal(t, []string{"Replay job= dry=true until=" + until}, h.fc.called())
	h.requireScreen("Replay 42 missed triggers of every job?")
	h.press("esc")
	require.Empty(t, h.fc.called())

	h.fc.replayCount = 0
	h.press("r")
	require.Nil(t, h.m.confirm)
	h.requireScreen("no missed triggers to replay")
}

func TestMissed_ReplayMarked(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("missed"))
	h.press("space", "space", "r")
	h.requireScreen("Replay 84 missed triggers of jobs tick, backup?")
	h.fc.called()
	h.press("y")
	require.Len(t, h.fc.called(), 2)
	h.requireScreen("replayed 84 missed triggers")
}

func TestMissed_Events(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("missed"))
	h.fc.called()
	h.fc.missed = h.fc.missed[2:]
	h.events(api.Event{Type: api.EventMissed, Missed: &api.MissedEvent{Job: "tick", Count: -42}})
	h.fire(reloadTickMsg{})
	require.Equal(t, []string{"MissedList job="}, h.fc.called())
	h.requireScreen("1 missed trigger of 1 job")
	h.requireNotScreen("tick")
}

func TestMissed_Drill(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("missed"))
	h.fc.called()
	h.press("enter")
	require.Equal(t, "runs", h.m.Active())
	require.Equal(t, []string{"RunList job=tick state= before= limit=200"}, h.fc.called())
}

// The clock moves "ago" texts without asking jobd.
func TestModel_Clock(t *testing.T) {
	t.Parallel()
	h := newHarness(t, harnessOpts{})
	h.connect()
	h.settle(h.m.command("executors"))
	h.fc.called()
	h.requireScreen("2s ago")
	h.m.nowFunc = func() time.Time { return now.Add(10 * time.Second) }
	h.deliver(clockMsg{})
	h.requireScreen("12s ago", "12:00:10")
	require.Empty(t, h.fc.called())
}
