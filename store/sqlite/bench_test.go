package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

// BenchmarkTriggersFire fires batches of 1,000 stored triggers, one run
// each, in one TriggersFire call (the scheduler's hot path).
func BenchmarkTriggersFire(b *testing.B) {
	const batch = 1000
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	j, err := s.JobCreate(b.Context(), &store.Job{Name: "bench", Group: "g"})
	require.NoError(b, err)

	next := time.UnixMilli(1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		trs := make([]*store.Trigger, batch)
		for i := range trs {
			trs[i] = &store.Trigger{JobID: j.ID, ScheduledAt: next, Origin: store.OriginSchedule}
			next = next.Add(time.Millisecond)
		}
		stored, err := s.TriggersMaterialize(b.Context(), store.MaterializeParams{Triggers: trs})
		require.NoError(b, err)
		fire := make([]*store.FireParams, len(stored))
		for i, tr := range stored {
			fire[i] = &store.FireParams{TriggerID: tr.ID, State: store.TriggerFired, FireAt: tr.ScheduledAt,
				Runs: []*store.Run{{JobName: "bench", Attempt: 1}}}
		}
		b.StartTimer()

		res, err := s.TriggersFire(b.Context(), fire)
		require.NoError(b, err)
		require.Len(b, res, batch)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/trigger")
}

// BenchmarkTriggersMaterialize stores batches of 1,000 pending triggers.
func BenchmarkTriggersMaterialize(b *testing.B) {
	const batch = 1000
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	j, err := s.JobCreate(b.Context(), &store.Job{Name: "bench", Group: "g"})
	require.NoError(b, err)
	next := time.UnixMilli(1)
	for b.Loop() {
		trs := make([]*store.Trigger, batch)
		for i := range trs {
			trs[i] = &store.Trigger{JobID: j.ID, ScheduledAt: next, Origin: store.OriginSchedule}
			next = next.Add(time.Millisecond)
		}
		_, err := s.TriggersMaterialize(b.Context(), store.MaterializeParams{Triggers: trs})
		require.NoError(b, err)
	}
}

// BenchmarkRunReport applies one log report per call (an executor's
// batched log flush).
func BenchmarkRunReport(b *testing.B) {
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	runs := make([]*store.Run, 1000)
	for i := range runs {
		runs[i] = &store.Run{JobName: "bench", Attempt: 1, State: store.RunRunning}
	}
	require.NoError(b, s.RunInsert(b.Context(), runs))
	seq := int64(0)
	for b.Loop() {
		seq++
		_, err := s.RunReport(b.Context(), store.ReportParams{
			RunID: runs[seq%int64(len(runs))].ID, Attempt: 1, Seq: seq, Log: "a line of output\n",
		})
		require.NoError(b, err)
	}
}

// BenchmarkTriggerLifecycle runs the store's whole per-trigger path the
// way jobd does at a steady rate: for 10,000 jobs (one trigger each per
// round, in batches of 100) it stores the pending triggers and advances
// the cursors, fires them with one run each, then applies each run's start
// and result reports.
func BenchmarkTriggerLifecycle(b *testing.B) {
	const (
		jobs  = 10_000
		batch = 100
	)
	s, err := Open(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	require.NoError(b, err)
	b.Cleanup(func() { _ = s.Close() })
	spec := make([]byte, 300)
	for i := range spec {
		spec[i] = 'x'
	}
	ids := make([]int64, jobs)
	cursor := make([]time.Time, jobs)
	for i := range ids {
		cursor[i] = time.UnixMilli(1_000_000 + int64(i))
		j, err := s.JobCreate(b.Context(), &store.Job{Name: fmt.Sprintf("job-%05d", i), Group: "g", Spec: spec, NextFireAt: cursor[i]})
		require.NoError(b, err)
		ids[i] = j.ID
	}
	code := 0
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		var mp store.MaterializeParams
		for k := 0; k < batch; k++ {
			i := (next + k*97) % jobs
			mp.Advances = append(mp.Advances, store.JobAdvance{JobID: ids[i], Expect: cursor[i], Next: cursor[i].Add(time.Second)})
			mp.Triggers = append(mp.Triggers, &store.Trigger{JobID: ids[i], ScheduledAt: cursor[i], Origin: store.OriginSchedule})
			cursor[i] = cursor[i].Add(time.Second)
		}
		next++
		stored, err := s.TriggersMaterialize(b.Context(), mp)
		require.NoError(b, err)
		require.Len(b, stored, batch)
		fire := make([]*store.FireParams, len(stored))
		for i, tr := range stored {
			fire[i] = &store.FireParams{TriggerID: tr.ID, State: store.TriggerFired, FireAt: tr.ScheduledAt,
				Runs: []*store.Run{{JobID: tr.JobID, JobName: fmt.Sprintf("job-%05d", tr.JobID-1), Attempt: 1, State: store.RunAssigned,
					ExecutorID: "e1", ExecutorName: "bench", AssignedAt: tr.ScheduledAt}}}
		}
		res, err := s.TriggersFire(b.Context(), fire)
		require.NoError(b, err)
		starts := make([]store.ReportParams, len(res))
		ends := make([]store.ReportParams, len(res))
		for i, r := range res {
			id := r.Runs[0].ID
			starts[i] = store.ReportParams{RunID: id, Attempt: 1, Seq: 1, Transition: &store.RunTransition{
				From: []string{store.RunAssigned}, To: store.RunRunning, Set: store.RunFields{StartedAt: time.UnixMilli(2)}}}
			ends[i] = store.ReportParams{RunID: id, Attempt: 1, Seq: 2, Transition: &store.RunTransition{
				From: []string{store.RunAssigned, store.RunRunning}, To: store.RunSucceeded,
				Set: store.RunFields{FinishedAt: time.UnixMilli(3), ExitCode: &code}}}
		}
		_, err = s.RunReports(b.Context(), starts)
		require.NoError(b, err)
		_, err = s.RunReports(b.Context(), ends)
		require.NoError(b, err)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/trigger")
}
