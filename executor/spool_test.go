package executor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

// openTestSpool opens a spool in dir, closed when the test ends.
func openTestSpool(t *testing.T, dir string, maxBytes int64) *spool {
	t.Helper()
	s := newSpool(dir, maxBytes, testLogger(t))
	require.NoError(t, s.open())
	t.Cleanup(s.close)
	return s
}

// logReports returns n log reports of run, with seqs from first.
func logReports(run string, first, n int) []api.RunReport {
	out := make([]api.RunReport, n)
	for i := range out {
		seq := int64(first + i)
		out[i] = api.RunReport{RunID: run, Report: api.Report{Attempt: 1, Seq: seq, Type: api.ReportLog, Log: fmt.Sprintf("%s-%d\n", run, seq)}}
	}
	return out
}

// drain reads and acknowledges the whole spool, batch by batch.
func drain(t *testing.T, s *spool, maxLen, maxBytes int) (all []api.RunReport, batches [][]api.RunReport) {
	t.Helper()
	for {
		rd, ok, err := s.next(maxLen, maxBytes)
		require.NoError(t, err)
		if !ok {
			return all, batches
		}
		all = append(all, rd.reports...)
		if len(rd.reports) > 0 {
			batches = append(batches, rd.reports)
		}
		s.ack(rd)
	}
}

// keys returns "RUN:SEQ" of each report.
func keys(rrs []api.RunReport) []string {
	out := make([]string, len(rrs))
	for i, rr := range rrs {
		out[i] = fmt.Sprintf("%s:%d", rr.RunID, rr.Seq)
	}
	return out
}

// spoolDirFiles lists the files of the spool directory of stateDir.
func spoolDirFiles(t *testing.T, stateDir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(stateDir, spoolDirName))
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestSpool_AppendReadAck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	require.True(t, s.empty())
	_, ok, err := s.next(10, 1<<20)
	require.NoError(t, err)
	require.False(t, ok)

	ctx := context.Background()
	require.NoError(t, s.append(ctx, logReports("a", 1, 3)))
	require.NoError(t, s.append(ctx, logReports("b", 1, 2)))
	require.NoError(t, s.append(ctx, logReports("a", 4, 2)))
	require.False(t, s.empty())
	require.ElementsMatch(t, []string{"a", "b"}, s.heldRuns())
	n, _ := s.stats()
	require.Equal(t, 7, n)

	all, batches := drain(t, s, 3, 1<<20)
	require.Equal(t, []string{"a:1", "a:2", "a:3", "b:1", "b:2", "a:4", "a:5"}, keys(all))
	require.Equal(t, []int{3, 3, 1}, []int{len(batches[0]), len(batches[1]), len(batches[2])})
	require.Equal(t, "a-1\n", all[0].Log)
	require.True(t, s.empty())
	require.Empty(t, s.heldRuns())
	require.Equal(t, []string{spoolLockName}, spoolDirFiles(t, dir), "all files but the lock are removed once delivered")

	// The spool is used again after it emptied, in new files.
	require.NoError(t, s.append(ctx, logReports("c", 1, 1)))
	all, _ = drain(t, s, 10, 1<<20)
	require.Equal(t, []string{"c:1"}, keys(all))
}

func TestSpool_BatchBytes(t *testing.T) {
	t.Parallel()
	s := openTestSpool(t, t.TempDir(), DefaultSpoolMaxBytes)
	big := logReports("r", 1, 4)
	big[1].Log = strings.Repeat("x", 3000)
	require.NoError(t, s.append(context.Background(), big))
	_, batches := drain(t, s, 100, 2000)
	var sizes []int
	for _, b := range batches {
		sizes = append(sizes, len(b))
	}
	// r:1, then r:2 alone although over the limit, then r:3 and r:4.
	require.Equal(t, []int{1, 1, 2}, sizes)
}

func TestSpool_Segments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	ctx := context.Background()
	require.NoError(t, s.append(ctx, logReports("r", 1, 1)))
	s.segBytes = 2 * s.size // two reports a file
	for i := 1; i < 10; i++ {
		require.NoError(t, s.append(ctx, logReports("r", i+1, 1)))
	}
	files := spoolFiles(t, dir)
	require.Len(t, files, 5)
	require.Equal(t, filepath.Join(dir, spoolDirName, "reports-00000000000000000001.jsonl"), files[0])

	// Acknowledged files are deleted as the cursor passes them.
	rd, ok, err := s.next(3, 1<<20)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{"r:1", "r:2"}, keys(rd.reports), "a batch ends with its file")
	s.ack(rd)
	require.Len(t, spoolFiles(t, dir), 4)
	require.FileExists(t, filepath.Join(dir, spoolDirName, spoolCursorName))

	all, _ := drain(t, s, 3, 1<<20)
	require.Len(t, all, 8)
	require.Empty(t, spoolFiles(t, dir))
}

func TestSpool_Reopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	for i := range 6 {
		if i == 1 {
			s.segBytes = 2 * s.size // two reports a file
		}
		require.NoError(t, s.append(ctx, logReports(fmt.Sprintf("r%d", i%2), i/2+1, 1)))
	}
	// Three reports are acknowledged: the cursor is in the second file.
	rd, _, err := s.next(2, 1<<20)
	require.NoError(t, err)
	s.ack(rd)
	rd, _, err = s.next(1, 1<<20)
	require.NoError(t, err)
	s.ack(rd)
	s.close()

	s2 := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	n, _ := s2.stats()
	require.Equal(t, 3, n)
	require.ElementsMatch(t, []string{"r0", "r1"}, s2.heldRuns())
	require.NoError(t, s2.append(ctx, logReports("r0", 4, 1)))
	all, _ := drain(t, s2, 10, 1<<20)
	require.Equal(t, []string{"r1:2", "r0:3", "r1:3", "r0:4"}, keys(all))
	require.Equal(t, []string{spoolLockName}, spoolDirFiles(t, dir))
}

func TestSpool_TornAppend(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	require.NoError(t, s.append(context.Background(), logReports("r", 1, 2)))
	s.close()
	// The agent died in the middle of an append: that batch was never
	// acknowledged to its run, so it is dropped.
	files := spoolFiles(t, dir)
	require.Len(t, files, 1)
	f, err := os.OpenFile(files[0], os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(`{"run_id":"r","seq":3,"ty`)
	require.NoError(t, err)
	require.NoError(t, f.Close())
	before, err := os.Stat(files[0])
	require.NoError(t, err)

	s2 := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	after, err := os.Stat(files[0])
	require.NoError(t, err)
	require.Less(t, after.Size(), before.Size(), "the torn line is cut off")
	require.NoError(t, s2.append(context.Background(), logReports("r", 3, 1)))
	all, _ := drain(t, s2, 10, 1<<20)
	require.Equal(t, []string{"r:1", "r:2", "r:3"}, keys(all))
}

func TestSpool_UnreadableLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	require.NoError(t, s.append(context.Background(), logReports("r", 1, 1)))
	s.close()
	files := spoolFiles(t, dir)
	f, err := os.OpenFile(files[0], os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString("not json\n{\"seq\":9}\n")
	require.NoError(t, err)
	require.NoError(t, f.Close())
	s = newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	require.NoError(t, s.append(context.Background(), logReports("r", 2, 1)))
	s.close()
	// A file that is not a segment is left alone.
	require.NoError(t, os.WriteFile(filepath.Join(dir, spoolDirName, "reports-x.jsonl"), []byte("x"), 0o600))

	s2 := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	n, _ := s2.stats()
	require.Equal(t, 2, n, "unreadable lines are not counted")
	all, _ := drain(t, s2, 10, 1<<20)
	require.Equal(t, []string{"r:1", "r:2"}, keys(all), "unreadable lines are skipped")
	require.True(t, s2.empty())
}

func TestSpool_OnlyUnreadableLines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	s.close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, spoolDirName, "reports-00000000000000000007.jsonl"), []byte("garbage\n"), 0o600))
	s2 := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	require.False(t, s2.empty(), "the bytes are there until read")
	all, _ := drain(t, s2, 10, 1<<20)
	require.Empty(t, all)
	require.True(t, s2.empty())
	// Segment numbers are never reused: the next file comes after 7.
	require.NoError(t, s2.append(context.Background(), logReports("r", 1, 1)))
	require.Equal(t, []string{filepath.Join(dir, spoolDirName, "reports-00000000000000000008.jsonl")}, spoolFiles(t, dir))
}

func TestSpool_BadCursor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	require.NoError(t, s.append(context.Background(), logReports("r", 1, 3)))
	rd, _, err := s.next(1, 1<<20)
	require.NoError(t, err)
	s.ack(rd)
	s.close()
	require.NoError(t, os.WriteFile(filepath.Join(dir, spoolDirName, spoolCursorName), []byte("{"), 0o600))
	// Everything is sent again: jobd acknowledges r:1 as a duplicate.
	s2 := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	all, _ := drain(t, s2, 10, 1<<20)
	require.Equal(t, []string{"r:1", "r:2", "r:3"}, keys(all))
}

func TestSpool_Full(t *testing.T) {
	t.Parallel()
	s := openTestSpool(t, t.TempDir(), 400)
	ctx := context.Background()
	// An empty spool takes any batch, however large.
	require.NoError(t, s.append(ctx, logReports("r", 1, 5)))

	// A full one makes appends wait for room...
	appended := make(chan error, 1)
	go func() { appended <- s.append(ctx, logReports("r", 6, 1)) }()
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.full
	}, waitTimeout, time.Millisecond)
	select {
	case err := <-appended:
		t.Fatalf("append to a full spool returned %v", err)
	default:
	}
	// ...or until their context is done.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	require.ErrorIs(t, s.append(cctx, logReports("r", 6, 1)), context.Canceled)

	all, _ := drain(t, s, 10, 1<<20)
	require.NoError(t, <-appended)
	more, _ := drain(t, s, 10, 1<<20)
	require.Equal(t, []string{"r:1", "r:2", "r:3", "r:4", "r:5", "r:6"}, keys(append(all, more...)))
}

func TestSpool_InUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	openTestSpool(t, dir, DefaultSpoolMaxBytes)
	err := newSpool(dir, DefaultSpoolMaxBytes, testLogger(t)).open()
	require.ErrorContains(t, err, "is in use by another executor")
}

func TestSpool_Closed(t *testing.T) {
	t.Parallel()
	s := newSpool(t.TempDir(), DefaultSpoolMaxBytes, testLogger(t))
	require.NoError(t, s.open())
	s.close()
	require.ErrorIs(t, s.append(context.Background(), logReports("r", 1, 1)), errSpoolClosed)
}

func TestSpool_WriteFails(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := openTestSpool(t, dir, DefaultSpoolMaxBytes)
	ctx := context.Background()
	require.NoError(t, s.append(ctx, logReports("r", 1, 1)))
	// The disk fails under the open file.
	s.mu.Lock()
	require.NoError(t, s.w.Close())
	s.mu.Unlock()
	err := s.append(ctx, logReports("r", 2, 1))
	require.ErrorContains(t, err, "write report spool")
	n, _ := s.stats()
	require.Equal(t, 1, n, "nothing of the failed batch is counted")
	// The next append goes to a new file.
	require.NoError(t, s.append(ctx, logReports("r", 2, 1)))
	require.Len(t, spoolFiles(t, dir), 2)
	all, _ := drain(t, s, 10, 1<<20)
	require.Equal(t, []string{"r:1", "r:2"}, keys(all))
}

func TestSpool_OpenFails(t *testing.T) {
	t.Parallel()
	t.Run("NotADirectory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(dir, spoolDirName), nil, 0o600))
		require.ErrorContains(t, newSpool(dir, 1<<20, testLogger(t)).open(), "create spool dir")
	})
	t.Run("UnreadableSegment", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		// A directory where a segment should be.
		require.NoError(t, os.MkdirAll(filepath.Join(dir, spoolDirName, "reports-00000000000000000001.jsonl"), 0o700))
		s := newSpool(dir, 1<<20, testLogger(t))
		require.ErrorContains(t, s.open(), "read spool")
		// The lock was released.
		require.NoError(t, os.Remove(filepath.Join(dir, spoolDirName, "reports-00000000000000000001.jsonl")))
		openTestSpool(t, dir, 1<<20)
	})
}

// startSpoolReporter returns a spoolReporter sending to f, with its
// resender running until the test ends. Its executor is registered, or
// not.
func startSpoolReporter(t *testing.T, f *fakeJobd, registered bool) *spoolReporter {
	t.Helper()
	sp := openTestSpool(t, t.TempDir(), DefaultSpoolMaxBytes)
	id := ""
	if registered {
		id = "ex-1"
	}
	tr := newTransport([]string{f.srv.URL}, "test-token", &http.Client{})
	rep := newSpoolReporter(sp, tr, testLogger(t),
		func() string { return id },
		func(context.Context) (string, error) { return "ex-1", nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		rep.resend(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return rep
}

func requireAllOK(t *testing.T, res []api.ReportResponse, n int) {
	t.Helper()
	require.Len(t, res, n)
	for _, r := range res {
		require.True(t, r.OK)
	}
}

func TestSpoolReporter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("StraightToJobd", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		res, err := rep.Send(ctx, logReports("r", 1, 3))
		require.NoError(t, err)
		requireAllOK(t, res, 3)
		require.Len(t, f.runReports("r"), 3)
		require.True(t, rep.spool.empty())
	})

	t.Run("SpoolsUntilJobdAnswers", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		f.mu.Lock()
		f.failReports["r"] = []int{http.StatusServiceUnavailable, http.StatusServiceUnavailable, http.StatusServiceUnavailable}
		f.mu.Unlock()
		res, err := rep.Send(ctx, logReports("r", 1, 2))
		require.NoError(t, err)
		requireAllOK(t, res, 2)
		// While the spool holds reports, new ones join it even though jobd
		// would take them.
		for seq := 3; seq <= 6; seq++ {
			res, err = rep.Send(ctx, logReports("r", seq, 1))
			require.NoError(t, err)
			requireAllOK(t, res, 1)
		}
		f.waitFor("every report", func() bool { return len(f.reports["r"]) == 6 })
		require.Eventually(t, rep.spool.empty, waitTimeout, time.Millisecond)
		f.mu.Lock()
		tries := slices.Clone(f.tries["r"])
		f.mu.Unlock()
		require.Equal(t, []int64{1, 2}, tries[0], "tried once straight to jobd")
		require.Equal(t, tries[1], tries[2], "the resender sends the same batch until stored")
		require.Equal(t, []int64{1, 2, 3, 4, 5, 6}, slices.Concat(tries[3:]...))

		// Once the spool is empty, reports go straight to jobd again.
		res, err = rep.Send(ctx, logReports("r", 7, 1))
		require.NoError(t, err)
		requireAllOK(t, res, 1)
		require.Len(t, f.runReports("r"), 7)
	})

	t.Run("NotRegistered", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, false)
		res, err := rep.Send(ctx, logReports("r", 1, 1))
		require.NoError(t, err)
		requireAllOK(t, res, 1)
		f.waitFor("the spooled report", func() bool { return len(f.reports["r"]) == 1 })
		f.mu.Lock()
		defer f.mu.Unlock()
		require.Len(t, f.batches, 1, "nothing is sent without an executor id but the spool")
	})

	t.Run("SplitsTooLargeAndSpoolsTheRest", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		f.mu.Lock()
		f.maxBatch = 2
		// [1..4] is too large, [1 2] is stored, [3 4] finds jobd failing.
		f.failReports["r"] = []int{0, 0, http.StatusBadGateway}
		f.mu.Unlock()
		res, err := rep.Send(ctx, logReports("r", 1, 4))
		require.NoError(t, err)
		requireAllOK(t, res, 4)
		f.waitFor("every report", func() bool { return len(f.reports["r"]) == 4 })
		f.mu.Lock()
		defer f.mu.Unlock()
		require.Equal(t, [][]int64{{1, 2, 3, 4}, {1, 2}, {3, 4}, {3, 4}}, f.tries["r"])
		require.Zero(t, f.duplicates)
	})

	t.Run("RefusedForGood", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		f.mu.Lock()
		f.failReports["r"] = []int{http.StatusBadRequest}
		f.mu.Unlock()
		res, err := rep.Send(ctx, logReports("r", 1, 2))
		require.ErrorContains(t, err, "send 2 reports: jobd answered 400")
		require.Empty(t, res)
		require.True(t, rep.spool.empty(), "a batch jobd refuses is not spooled")
	})

	t.Run("KeepsReportsThroughRefusedToken", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		f.mu.Lock()
		f.refuseToken = true
		f.mu.Unlock()
		res, err := rep.Send(ctx, logReports("r", 1, 2))
		require.NoError(t, err)
		requireAllOK(t, res, 2)
		// The resender keeps trying through 401s (a token being rotated)...
		f.waitFor("refused resends", func() bool { return f.servers[0].served >= 3 })
		require.False(t, rep.spool.empty())
		f.mu.Lock()
		f.refuseToken = false
		f.mu.Unlock()
		// ...and delivers once the token is taken.
		f.waitFor("every report", func() bool { return len(f.reports["r"]) == 2 })
	})

	t.Run("RefusedSpooledReports", func(t *testing.T) {
		t.Parallel()
		f := newFakeJobd(t)
		rep := startSpoolReporter(t, f, true)
		f.mu.Lock()
		f.failReports["gone"] = []int{http.StatusServiceUnavailable}
		f.refuseRuns["gone"] = "run gone: not found"
		f.mu.Unlock()
		_, err := rep.Send(ctx, logReports("gone", 1, 2))
		require.NoError(t, err)
		_, err = rep.Send(ctx, logReports("ok", 1, 1))
		require.NoError(t, err)
		// Reports refused one by one are dropped; the others delivered.
		f.waitFor("the other run's report", func() bool { return len(f.reports["ok"]) == 1 })
		require.Eventually(t, rep.spool.empty, waitTimeout, time.Millisecond)
		f.mu.Lock()
		defer f.mu.Unlock()
		require.Equal(t, []string{"gone:1", "gone:2"}, f.refused)
	})

	t.Run("SpoolUnwritable", func(t *testing.T) {
		t.Parallel()
		dead := newFakeJobd(t)
		dead.setDown(dead.servers[0], true)
		rep := startSpoolReporter(t, dead, true)
		rep.spool.close() // appends fail from now on
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		// No jobd and no spool: the batch is not acknowledged; Send keeps
		// trying until its context is done.
		res, err := rep.Send(cctx, logReports("r", 1, 1))
		require.Error(t, err)
		require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, errSpoolClosed), "%v", err)
		require.Empty(t, res)
	})
}
