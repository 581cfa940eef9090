package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var runTests = []test{
	{"InsertGet", testRunInsertGet},
	{"Transition", testRunsTransition},
	{"ReportIdempotent", testRunReportIdempotent},
	{"ReportsBatch", testRunReportsBatch},
	{"ReportsBatchManyRuns", testRunReportsManyRuns},
	{"Params", testRunParams},
	{"LogOffset", testRunLogOffset},
	{"Prune", testRunsPrune},
	{"ReportOutputCap", testRunReportOutputCap},
	{"ActiveAndCounts", testRunsActiveCounts},
	{"ListPaging100k", testRunList100k},
}

func testRunInsertGet(t *testing.T, s store.Store) {
	runs := []*store.Run{
		{TriggerID: 7, JobID: 1, JobName: "a", Attempt: 2, State: store.RunFailed, Origin: store.OriginSchedule,
			ExecutorID: "e1", ExecutorName: "n1", ScheduledAt: at(1), CreatedAt: at(2), AssignedAt: at(3),
			StartedAt: at(4), FinishedAt: at(5), ExitCode: ptr(3), Error: "boom", Replay: true, ShardIndex: 1, ShardTotal: 3},
		{JobID: 1, JobName: "a", Attempt: 1},
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	require.NotZero(t, runs[0].ID, "ids are set in place")
	require.Greater(t, runs[1].ID, runs[0].ID)
	require.Equal(t, store.RunPending, runs[1].State, "state defaults to pending")

	got, err := s.RunGet(ctx(t), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, runs[0].ID, got.ID)
	require.EqualValues(t, 7, got.TriggerID)
	require.EqualValues(t, 1, got.JobID)
	require.Equal(t, "a", got.JobName)
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, store.RunFailed, got.State)
	require.Equal(t, store.OriginSchedule, got.Origin)
	require.Equal(t, "e1", got.ExecutorID)
	require.Equal(t, "n1", got.ExecutorName)
	for i, pair := range [][2]time.Time{
		{at(1), got.ScheduledAt}, {at(2), got.CreatedAt}, {at(3), got.AssignedAt}, {at(4), got.StartedAt}, {at(5), got.FinishedAt},
	} {
		requireTime(t, pair[0], pair[1], "time %d", i)
	}
	require.NotNil(t, got.ExitCode)
	require.Equal(t, 3, *got.ExitCode)
	require.Equal(t, "boom", got.Error)
	require.True(t, got.Replay)
	require.Equal(t, 1, got.ShardIndex)
	require.Equal(t, 3, got.ShardTotal)

	got, err = s.RunGet(ctx(t), runs[1].ID)
	require.NoError(t, err)
	require.Nil(t, got.ExitCode)
	require.True(t, got.StartedAt.IsZero())
	require.False(t, got.CreatedAt.IsZero(), "created_at defaults to now")

	_, err = s.RunGet(ctx(t), 424242)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testRunsTransition(t *testing.T, s store.Store) {
	runs := []*store.Run{{JobName: "t", Attempt: 1}, {JobName: "t", Attempt: 1}, {JobName: "t", Attempt: 1}}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	ok, err := s.RunsTransition(ctx(t), []store.RunTransition{
		{RunID: runs[0].ID, From: []string{store.RunPending}, To: store.RunAssigned,
			Set: store.RunFields{ExecutorID: "ex", ExecutorName: "host-1", AssignedAt: at(1)}},
		{RunID: runs[1].ID, From: []string{store.RunRunning}, To: store.RunSucceeded},
		{RunID: 999999, To: store.RunLost},
		{RunID: runs[2].ID, To: store.RunKilled, Set: store.RunFields{FinishedAt: at(9), Error: "killed by operator"}},
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true, false, false, true}, ok)

	r0, err := s.RunGet(ctx(t), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.RunAssigned, r0.State)
	require.Equal(t, "ex", r0.ExecutorID)
	require.Equal(t, "host-1", r0.ExecutorName)
	requireTime(t, at(1), r0.AssignedAt)
	r1, err := s.RunGet(ctx(t), runs[1].ID)
	require.NoError(t, err)
	require.Equal(t, store.RunPending, r1.State, "unmatched transition changes nothing")
	r2, err := s.RunGet(ctx(t), runs[2].ID)
	require.NoError(t, err)
	require.Equal(t, store.RunKilled, r2.State, "empty From matches any state")
	require.Equal(t, "killed by operator", r2.Error)

	// Zero fields leave columns alone; ExitCode 0 is written.
	ok, err = s.RunsTransition(ctx(t), []store.RunTransition{
		{RunID: runs[0].ID, From: []string{store.RunAssigned, store.RunPending}, To: store.RunRunning, Set: store.RunFields{StartedAt: at(2)}},
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	ok, err = s.RunsTransition(ctx(t), []store.RunTransition{
		{RunID: runs[0].ID, From: []string{store.RunRunning}, To: store.RunSucceeded, Set: store.RunFields{FinishedAt: at(3), ExitCode: ptr(0)}},
	})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	r0, err = s.RunGet(ctx(t), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, store.RunSucceeded, r0.State)
	require.Equal(t, "ex", r0.ExecutorID)
	requireTime(t, at(1), r0.AssignedAt)
	requireTime(t, at(2), r0.StartedAt)
	requireTime(t, at(3), r0.FinishedAt)
	require.NotNil(t, r0.ExitCode)
	require.Equal(t, 0, *r0.ExitCode)
}

func testRunReportIdempotent(t *testing.T, s store.Store) {
	runs := []*store.Run{{JobName: "r", Attempt: 1, State: store.RunAssigned}}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	id := runs[0].ID
	start := store.ReportParams{RunID: id, Attempt: 1, Seq: 1, Log: "hello\n", Transition: &store.RunTransition{
		From: []string{store.RunAssigned}, To: store.RunRunning, Set: store.RunFields{StartedAt: at(1)},
	}}
	res, err := s.RunReport(ctx(t), start)
	require.NoError(t, err)
	require.True(t, res.Applied)
	require.False(t, res.Duplicate)
	require.NotNil(t, res.Run, "a transition that applied returns the run")
	require.Equal(t, store.RunRunning, res.Run.State)
	requireTime(t, at(1), res.Run.StartedAt)

	res, err = s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 1, Seq: 2, Log: "world\n"})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Applied: true}, res)

	// A resent report (the executor did not see the ack) changes nothing.
	res, err = s.RunReport(ctx(t), start)
	require.NoError(t, err)
	require.True(t, res.Duplicate)

	// Reports come in Seq order: one below the highest applied was
	// applied, or skipped over for good.
	res, err = s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 1, Seq: 1, Log: "stale\n"})
	require.NoError(t, err)
	require.True(t, res.Duplicate)

	// The same seq of another attempt is another report.
	res, err = s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 2, Seq: 1, Log: "again\n"})
	require.NoError(t, err)
	require.False(t, res.Duplicate)

	// A transition that does not match is not applied; the log still is.
	res, err = s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 1, Seq: 3, Log: "late\n", Transition: &store.RunTransition{
		From: []string{store.RunAssigned}, To: store.RunFailed,
	}})
	require.NoError(t, err)
	require.Equal(t, store.ReportResult{Applied: false}, res)

	got, err := s.RunGet(ctx(t), id)
	require.NoError(t, err)
	require.Equal(t, store.RunRunning, got.State)
	requireTime(t, at(1), got.StartedAt)
	require.Equal(t, "hello\nworld\nagain\nlate\n", got.Output)

	_, err = s.RunReport(ctx(t), store.ReportParams{RunID: 777777, Attempt: 1, Seq: 1, Log: "x"})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testRunLogOffset(t *testing.T, s store.Store) {
	runs := []*store.Run{{JobName: "l", Attempt: 1, State: store.RunRunning}}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	id := runs[0].ID
	for i, chunk := range []string{"hello ", "wor", "ld\n"} {
		_, err := s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 1, Seq: int64(i + 1), Log: chunk})
		require.NoError(t, err)
	}
	for _, tc := range []struct {
		offset int64
		want   string
	}{{0, "hello world\n"}, {6, "world\n"}, {7, "orld\n"}, {9, "ld\n"}, {12, ""}, {100, ""}} {
		got, err := s.RunLog(ctx(t), id, tc.offset)
		require.NoError(t, err)
		require.Equal(t, tc.want, string(got), "offset %d", tc.offset)
	}
	got, err := s.RunLog(ctx(t), 999999, 0)
	require.NoError(t, err)
	require.Empty(t, got, "a run with no output reads empty")
}

func testRunsPrune(t *testing.T, s store.Store) {
	j := createJob(t, s, "prune", time.Time{})
	res, err := s.TriggersFire(ctx(t), []*store.FireParams{
		{Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(1), Origin: store.OriginManual, State: store.TriggerFired}, State: store.TriggerFired, FireAt: at(1),
			Runs: []*store.Run{{JobID: j.ID, JobName: "prune", Attempt: 1, State: store.RunSucceeded, FinishedAt: at(2)}}},
		{Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(50), Origin: store.OriginManual, State: store.TriggerFired}, State: store.TriggerFired, FireAt: at(50),
			Runs: []*store.Run{{JobID: j.ID, JobName: "prune", Attempt: 1, State: store.RunSucceeded, FinishedAt: at(51)}}},
		{Trigger: &store.Trigger{JobID: j.ID, ScheduledAt: at(3), Origin: store.OriginManual, State: store.TriggerFired}, State: store.TriggerFired, FireAt: at(3),
			Runs: []*store.Run{{JobID: j.ID, JobName: "prune", Attempt: 1, State: store.RunRunning}}},
	})
	require.NoError(t, err)
	old := res[0].Runs[0].ID
	_, err = s.RunReport(ctx(t), store.ReportParams{RunID: old, Attempt: 1, Seq: 1, Log: "old output"})
	require.NoError(t, err)
	n, err := s.RunsPrune(ctx(t), at(10))
	require.NoError(t, err)
	require.EqualValues(t, 1, n, "only the run that ended before the cutoff")
	_, err = s.RunGet(ctx(t), old)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = s.RunGet(ctx(t), res[2].Runs[0].ID)
	require.NoError(t, err, "a run still going is kept, however old")
	ts, err := s.TriggerList(ctx(t), j.ID, at(0), at(100))
	require.NoError(t, err)
	require.Len(t, ts, 2, "the old trigger went with its run")
}

func testRunParams(t *testing.T, s store.Store) {
	runs := []*store.Run{
		{JobName: "p", Attempt: 2, State: store.RunPending, Params: map[string]string{"region": "eu", "n": "1"}, NotBefore: at(7)},
		{JobName: "p", Attempt: 1, State: store.RunPending},
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	got, err := s.RunGet(ctx(t), runs[0].ID)
	require.NoError(t, err)
	require.Equal(t, map[string]string{"region": "eu", "n": "1"}, got.Params)
	requireTime(t, at(7), got.NotBefore)
	got, err = s.RunGet(ctx(t), runs[1].ID)
	require.NoError(t, err)
	require.Empty(t, got.Params)
	active, err := s.RunsActive(ctx(t))
	require.NoError(t, err)
	var found bool
	for _, r := range active {
		if r.ID == runs[0].ID {
			found = true
			require.Equal(t, "eu", r.Params["region"], "active runs keep their params across a restart")
		}
	}
	require.True(t, found)
}

func testRunReportsBatch(t *testing.T, s store.Store) {
	runs := []*store.Run{{JobName: "b", Attempt: 1, State: store.RunAssigned}}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	id := runs[0].ID
	code := 0
	batch := []store.ReportParams{
		{RunID: id, Attempt: 1, Seq: 1, Transition: &store.RunTransition{From: []string{store.RunAssigned}, To: store.RunRunning, Set: store.RunFields{StartedAt: at(1)}}},
		{RunID: 777777, Attempt: 1, Seq: 1, Log: "unknown run"},
		{RunID: id, Attempt: 1, Seq: 2, Log: "out\n"},
		{RunID: id, Attempt: 1, Seq: 3, Transition: &store.RunTransition{From: []string{store.RunRunning}, To: store.RunSucceeded, Set: store.RunFields{FinishedAt: at(2), ExitCode: &code}}},
	}
	res, err := s.RunReports(ctx(t), batch)
	require.NoError(t, err, "an unknown run fails alone")
	require.Len(t, res, 4)
	require.True(t, res[0].Applied)
	require.Equal(t, store.RunRunning, res[0].Run.State, "each result has the run as that report left it")
	require.ErrorIs(t, res[1].Err, store.ErrNotFound)
	require.True(t, res[2].Applied)
	require.True(t, res[3].Applied)
	require.Equal(t, store.RunSucceeded, res[3].Run.State)
	got, err := s.RunGet(ctx(t), id)
	require.NoError(t, err)
	require.Equal(t, store.RunSucceeded, got.State)
	require.Equal(t, "out\n", got.Output)
	// The whole batch again: every report is a duplicate.
	res, err = s.RunReports(ctx(t), batch)
	require.NoError(t, err)
	for i, r := range res {
		if i != 1 {
			require.True(t, r.Duplicate, "report %d", i)
		}
	}
}

func testRunReportOutputCap(t *testing.T, s store.Store) {
	runs := []*store.Run{{JobName: "cap", Attempt: 1, State: store.RunRunning}}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	id := runs[0].ID
	// 1 KiB lines of multi-byte runes, so the cut lands inside a rune.
	line := strings.Repeat("é", 511) + "\n"
	seq := int64(0)
	report := func(log string) {
		t.Helper()
		seq++
		res, err := s.RunReport(ctx(t), store.ReportParams{RunID: id, Attempt: 1, Seq: seq, Log: log})
		require.NoError(t, err, "logs past the cap are dropped, not an error")
		require.False(t, res.Duplicate)
	}
	for range store.OutputCap/len(line) + 5 {
		report(line)
	}
	got, err := s.RunGet(ctx(t), id)
	require.NoError(t, err)
	require.LessOrEqual(t, len(got.Output), store.OutputCap)
	require.Greater(t, len(got.Output), store.OutputCap-4)
	require.True(t, strings.HasSuffix(got.Output, store.OutputTruncated))
	require.True(t, utf8.ValidString(got.Output))
	require.Equal(t, 1, strings.Count(got.Output, store.OutputTruncated))

	report("more\n")
	again, err := s.RunGet(ctx(t), id)
	require.NoError(t, err)
	require.Equal(t, got.Output, again.Output, "further logs are dropped")

	// Output that fits is kept whole.
	small := []*store.Run{{JobName: "cap", Attempt: 1}}
	require.NoError(t, s.RunInsert(ctx(t), small))
	res, err := s.RunReport(ctx(t), store.ReportParams{RunID: small[0].ID, Attempt: 1, Seq: 1, Log: "ok"})
	require.NoError(t, err)
	require.True(t, res.Applied)
	got, err = s.RunGet(ctx(t), small[0].ID)
	require.NoError(t, err)
	require.Equal(t, "ok", got.Output)
}

func testRunsActiveCounts(t *testing.T, s store.Store) {
	states := []string{
		store.RunPending, store.RunAssigned, store.RunRunning, store.RunSucceeded, store.RunFailed,
		store.RunTimedOut, store.RunKilled, store.RunLost, store.RunSkipped, store.RunRunning,
	}
	runs := make([]*store.Run, 0, len(states))
	for _, st := range states {
		runs = append(runs, &store.Run{JobName: "ac", Attempt: 1, State: st})
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	active, err := s.RunsActive(ctx(t))
	require.NoError(t, err)
	require.Len(t, active, 4)
	for _, r := range active {
		require.Contains(t, []string{store.RunPending, store.RunAssigned, store.RunRunning}, r.State)
	}
	counts, err := s.RunCounts(ctx(t))
	require.NoError(t, err)
	require.Equal(t, map[string]int64{
		store.RunPending: 1, store.RunAssigned: 1, store.RunRunning: 2, store.RunSucceeded: 1, store.RunFailed: 1,
		store.RunTimedOut: 1, store.RunKilled: 1, store.RunLost: 1, store.RunSkipped: 1,
	}, counts)
}

// testRunList100k pages through 100,000 runs with every filter.
func testRunList100k(t *testing.T, s store.Store) {
	const n = 100_000
	jobs := []string{"alpha", "beta", "gamma", "delta"}
	states := []string{store.RunSucceeded, store.RunFailed, store.RunRunning}
	runs := make([]*store.Run, n)
	for i := range runs {
		runs[i] = &store.Run{JobName: jobs[i%len(jobs)], JobID: int64(i%len(jobs) + 1), Attempt: 1,
			State: states[(i/len(jobs))%len(states)], ScheduledAt: at(i)}
	}
	require.NoError(t, s.RunInsert(ctx(t), runs), "one batch")

	want := func(job, state string) []int64 {
		var ids []int64
		for i := len(runs) - 1; i >= 0; i-- {
			r := runs[i]
			if (job == "" || r.JobName == job) && (state == "" || r.State == state) {
				ids = append(ids, r.ID)
			}
		}
		return ids
	}
	for _, tc := range []struct{ job, state string }{
		{"", ""}, {"beta", ""}, {"", store.RunFailed}, {"gamma", store.RunRunning},
	} {
		t.Run(fmt.Sprintf("job=%s,state=%s", tc.job, tc.state), func(t *testing.T) {
			var got []int64
			before := int64(0)
			for {
				page, err := s.RunList(ctx(t), store.RunListParams{JobName: tc.job, State: tc.state, Before: before, Limit: 5000})
				require.NoError(t, err)
				if len(page) == 0 {
					break
				}
				require.LessOrEqual(t, len(page), 5000)
				for _, r := range page {
					got = append(got, r.ID)
				}
				before = page[len(page)-1].ID
			}
			require.Equal(t, want(tc.job, tc.state), got, "newest first, every run once")
		})
	}

	first, err := s.RunList(ctx(t), store.RunListParams{Limit: 1})
	require.NoError(t, err)
	require.Len(t, first, 1)
	require.Equal(t, runs[n-1].ID, first[0].ID)
	requireTime(t, at(n-1), first[0].ScheduledAt)
}

// testRunReportsManyRuns applies the start and result of many runs in one
// batch, as an executor under load sends them.
func testRunReportsManyRuns(t *testing.T, s store.Store) {
	runs := make([]*store.Run, 45)
	for i := range runs {
		runs[i] = &store.Run{JobName: "many", Attempt: 1, State: store.RunAssigned}
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	var batch []store.ReportParams
	for i, r := range runs {
		code := i
		batch = append(batch, store.ReportParams{RunID: r.ID, Attempt: 1, Seq: 1, Transition: &store.RunTransition{
			From: []string{store.RunAssigned}, To: store.RunRunning, Set: store.RunFields{StartedAt: at(1)}}})
		if i%3 != 0 { // the others only start
			batch = append(batch, store.ReportParams{RunID: r.ID, Attempt: 1, Seq: 2, Transition: &store.RunTransition{
				From: []string{store.RunAssigned, store.RunRunning}, To: store.RunFailed,
				Set: store.RunFields{FinishedAt: at(2), ExitCode: &code, Error: "boom"}}})
		}
	}
	res, err := s.RunReports(ctx(t), batch)
	require.NoError(t, err)
	for i, r := range res {
		require.True(t, r.Applied, "report %d", i)
		require.NotNil(t, r.Run)
	}
	for i, r := range runs {
		got, err := s.RunGet(ctx(t), r.ID)
		require.NoError(t, err)
		requireTime(t, at(1), got.StartedAt)
		if i%3 == 0 {
			require.Equal(t, store.RunRunning, got.State)
			require.Nil(t, got.ExitCode)
			continue
		}
		require.Equal(t, store.RunFailed, got.State)
		requireTime(t, at(2), got.FinishedAt)
		require.NotNil(t, got.ExitCode)
		require.Equal(t, i, *got.ExitCode)
		require.Equal(t, "boom", got.Error)
	}
	res, err = s.RunReports(ctx(t), batch)
	require.NoError(t, err)
	for i, r := range res {
		require.True(t, r.Duplicate, "report %d", i)
	}
}
