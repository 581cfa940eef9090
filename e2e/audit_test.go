package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
	"github.com/jobd/jobd/store"
)

// grid is the fire times of an every schedule: anchor + k*interval, in unix
// milliseconds. The tests compute it themselves rather than asking the
// schedule package they are checking.
type grid struct {
	anchor, interval int64
}

func gridOf(t *testing.T, j *store.Job) grid {
	t.Helper()
	var spec api.JobSpec
	require.NoError(t, json.Unmarshal(j.Spec, &spec), "spec of job %s", j.Name)
	require.NotNil(t, spec.Every, "job %s is not an every job", j.Name)
	g := grid{interval: spec.Every.D().Milliseconds()}
	if spec.Anchor != nil {
		g.anchor = spec.Anchor.UnixMilli()
	}
	return g
}

func (g grid) on(ms int64) bool { return ((ms-g.anchor)%g.interval+g.interval)%g.interval == 0 }

// between lists the grid times in [from, to], in milliseconds.
func (g grid) between(from, to int64) []int64 {
	var out []int64
	k := (from - g.anchor) / g.interval
	for t := g.anchor + (k-1)*g.interval; t <= to; t += g.interval {
		if t >= from {
			out = append(out, t)
		}
	}
	return out
}

func fmtMS(ms int64) string { return time.UnixMilli(ms).UTC().Format(api.TimeFormat) }

func fmtMSs(ms []int64) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = fmtMS(m)
	}
	return "[" + strings.Join(s, " ") + "]"
}

// jobAudit is what the store holds about the schedule of one every job.
type jobAudit struct {
	Job  *store.Job
	Grid grid
	// Expected is every grid time from the first one the store knows of up
	// to (not including) the earliest pending trigger, or the cursor.
	Expected []int64
	// Fired are the scheduled times of fired schedule triggers.
	Fired map[int64]*store.Trigger
	// Missed are the times the missed rows cover, with their reason.
	Missed map[int64]string
	// Pending are the scheduled times of pending schedule triggers.
	Pending []int64
	// Runs are the job's runs by trigger id.
	Runs map[int64][]*store.Run
	// Problems lists every broken invariant found.
	Problems []string
}

func (a *jobAudit) problem(format string, args ...any) {
	a.Problems = append(a.Problems, fmt.Sprintf(format, args...))
}

// auditJob reads job name from st and checks that every scheduled time of
// it was either fired exactly once or recorded as missed exactly once —
// never both, never neither — and that every run belongs to a fired
// trigger. The store must not be written meanwhile (jobd stopped).
func auditJob(t *testing.T, st store.Store, name string) *jobAudit {
	t.Helper()
	ctx := context.Background()
	j, err := st.JobGet(ctx, name)
	require.NoError(t, err, "job %s", name)
	a := &jobAudit{Job: j, Grid: gridOf(t, j), Fired: map[int64]*store.Trigger{}, Missed: map[int64]string{},
		Runs: map[int64][]*store.Run{}}
	g := a.Grid

	trs, err := st.TriggerList(ctx, j.ID, time.Time{}, time.Time{})
	require.NoError(t, err)
	byID := map[int64]*store.Trigger{}
	start := int64(-1)
	for _, tr := range trs {
		byID[tr.ID] = tr
		if tr.Origin != store.OriginSchedule {
			continue
		}
		ms := tr.ScheduledAt.UnixMilli()
		if !g.on(ms) {
			a.problem("trigger %d at %s is off the grid", tr.ID, fmtMS(ms))
		}
		if start < 0 || ms < start {
			start = ms
		}
		switch tr.State {
		case store.TriggerFired:
			if prev := a.Fired[ms]; prev != nil {
				a.problem("time %s fired twice (triggers %d and %d)", fmtMS(ms), prev.ID, tr.ID)
			}
			a.Fired[ms] = tr
		case store.TriggerPending:
			a.Pending = append(a.Pending, ms)
		case store.TriggerMissed:
			// Counted by its missed row below.
		default:
			a.problem("trigger %d in unknown state %q", tr.ID, tr.State)
		}
	}

	ms, err := st.MissedList(ctx, store.MissedListParams{JobName: name})
	require.NoError(t, err)
	for _, m := range ms {
		from, to := m.From.UnixMilli(), m.To.UnixMilli()
		if !g.on(from) || !g.on(to) {
			a.problem("missed row %d %s..%s is off the grid", m.ID, fmtMS(from), fmtMS(to))
			continue
		}
		times := g.between(from, to)
		if int64(len(times)) != m.Count {
			a.problem("missed row %d %s..%s (%s) has count %d but covers %d times", m.ID, fmtMS(from), fmtMS(to), m.Reason, m.Count, len(times))
		}
		for _, tm := range times {
			if r, dup := a.Missed[tm]; dup {
				a.problem("time %s recorded missed twice (%s and %s)", fmtMS(tm), r, m.Reason)
			}
			a.Missed[tm] = m.Reason
		}
		if len(times) > 0 && (start < 0 || from < start) {
			start = from
		}
	}

	slices.Sort(a.Pending)
	end := j.NextFireAt.UnixMilli()
	if len(a.Pending) > 0 {
		end = a.Pending[0]
		// Pending triggers run without a hole up to the cursor.
		if want := g.between(a.Pending[0], j.NextFireAt.UnixMilli()-1); !slices.Equal(want, a.Pending) {
			a.problem("pending triggers %s are not the grid up to the cursor %s", fmtMSs(a.Pending), fmtMS(j.NextFireAt.UnixMilli()))
		}
	}
	if j.NextFireAt.IsZero() {
		a.problem("job has no cursor")
	}
	if start >= 0 {
		a.Expected = g.between(start, end-1)
	}

	for tm := range a.Fired {
		if _, ok := a.Missed[tm]; ok {
			a.problem("time %s both fired and missed (%s)", fmtMS(tm), a.Missed[tm])
		}
	}
	covered := map[int64]bool{}
	for _, tm := range a.Expected {
		covered[tm] = true
		_, f := a.Fired[tm]
		_, m := a.Missed[tm]
		if !f && !m {
			a.problem("time %s neither fired nor missed", fmtMS(tm))
		}
	}
	for tm := range a.Fired {
		if !covered[tm] {
			a.problem("fired time %s is outside the expected range", fmtMS(tm))
		}
	}
	for tm := range a.Missed {
		if !covered[tm] {
			a.problem("missed time %s is outside the expected range", fmtMS(tm))
		}
	}

	runs, err := st.RunList(ctx, store.RunListParams{JobName: name})
	require.NoError(t, err)
	for _, r := range runs {
		tr := byID[r.TriggerID]
		switch {
		case tr == nil:
			a.problem("run %d points to trigger %d, which is not the job's", r.ID, r.TriggerID)
			continue
		case tr.State != store.TriggerFired:
			a.problem("run %d belongs to trigger %d in state %s", r.ID, tr.ID, tr.State)
		case !tr.ScheduledAt.Equal(r.ScheduledAt):
			a.problem("run %d scheduled at %s but its trigger at %s", r.ID, r.ScheduledAt, tr.ScheduledAt)
		}
		a.Runs[r.TriggerID] = append(a.Runs[r.TriggerID], r)
	}
	for tm, tr := range a.Fired {
		if len(a.Runs[tr.ID]) == 0 {
			a.problem("fired time %s (trigger %d) has no run", fmtMS(tm), tr.ID)
		}
	}
	return a
}

// requireClean fails the test with every problem the audit found.
func (a *jobAudit) requireClean(t *testing.T) {
	t.Helper()
	if len(a.Problems) > 0 {
		t.Errorf("job %s: %d problems:\n  %s", a.Job.Name, len(a.Problems), strings.Join(a.Problems, "\n  "))
	}
}

// runAt returns the runs of the fired trigger at ms, if any.
func (a *jobAudit) runAt(ms int64) []*store.Run {
	if tr := a.Fired[ms]; tr != nil {
		return a.Runs[tr.ID]
	}
	return nil
}
