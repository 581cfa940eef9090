package sqlite

import (
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
