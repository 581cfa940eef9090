// Package storetest is the conformance suite every store.Store driver must
// pass. A driver's tests call Run with a function that opens a fresh, empty
// store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
//	}
//
// Each behaviour is its own parallel subtest on its own store, so open must
// be safe to call concurrently and should close the store in t.Cleanup.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

// Opener opens a fresh, empty, migrated store for one test and arranges for
// it to be closed when the test ends.
type Opener func(t *testing.T) store.Store

// Run runs the conformance suite against the driver open returns.
func Run(t *testing.T, open Opener) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Job", jobTests},
		{"Trigger", triggerTests},
		{"Missed", missedTests},
		{"Run", runTests},
		{"Executor", executorTests},
		{"Script", scriptTests},
		{"RunFilter", runFilterTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.fn(t, open(t))
				})
			}
		})
	}
}

type test struct {
	name string
	fn   func(t *testing.T, s store.Store)
}

// base is the suite's reference time: far from now, so that a driver that
// fills a zero time with now cannot pass by accident.
var base = time.Date(2031, 3, 14, 15, 9, 26, 0, time.UTC)

// at is base plus sec seconds.
func at(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func ctx(t *testing.T) context.Context { return t.Context() }

// requireTime checks that got is want to the millisecond (zero matches
// only zero).
func requireTime(t *testing.T, want, got time.Time, msgAndArgs ...any) {
	t.Helper()
	require.Equal(t, want.IsZero(), got.IsZero(), msgAndArgs...)
	if !want.IsZero() {
		require.Equal(t, want.UnixMilli(), got.UnixMilli(), msgAndArgs...)
	}
}

// createJob creates a job with a cursor at next (zero: none).
func createJob(t *testing.T, s store.Store, name string, next time.Time) *store.Job {
	t.Helper()
	j, err := s.JobCreate(ctx(t), &store.Job{Name: name, Group: "default", Spec: []byte(`{"name":"` + name + `"}`), NextFireAt: next})
	require.NoError(t, err)
	return j
}

// materialize stores pending schedule triggers for job at the given
// times, moving its cursor from its current value past the last one.
func materialize(t *testing.T, s store.Store, job *store.Job, times ...time.Time) []*store.Trigger {
	t.Helper()
	cur, err := s.JobGetByID(ctx(t), job.ID)
	require.NoError(t, err)
	trs := make([]*store.Trigger, 0, len(times))
	for _, tm := range times {
		trs = append(trs, &store.Trigger{JobID: job.ID, ScheduledAt: tm, Origin: store.OriginSchedule})
	}
	out, err := s.TriggersMaterialize(ctx(t), store.MaterializeParams{
		Advances: []store.JobAdvance{{JobID: job.ID, Expect: cur.NextFireAt, Next: times[len(times)-1].Add(time.Second)}},
		Triggers: trs,
	})
	require.NoError(t, err)
	return out
}

// fire fires a stored trigger with one pending run.
func fire(t *testing.T, s store.Store, job *store.Job, triggerID int64) store.FireResult {
	t.Helper()
	res, err := s.TriggersFire(ctx(t), []*store.FireParams{{
		TriggerID: triggerID,
		State:     store.TriggerFired,
		FireAt:    at(1000),
		Runs:      []*store.Run{{JobName: job.Name, Attempt: 1, State: store.RunPending}},
	}})
	require.NoError(t, err)
	require.Len(t, res, 1)
	return res[0]
}

func pendingOf(t *testing.T, s store.Store, jobID int64) []*store.Trigger {
	t.Helper()
	all, err := s.TriggersPending(ctx(t))
	require.NoError(t, err)
	var out []*store.Trigger
	for _, tr := range all {
		if tr.JobID == jobID {
			out = append(out, tr)
		}
	}
	return out
}

func ptr[T any](v T) *T { return &v }
