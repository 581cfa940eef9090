package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/api"
)

func TestConfig_Validate(t *testing.T) {
	t.Parallel()
	valid := func() Config { return Config{Servers: []string{"http://127.0.0.1:7070"}, Group: "g"} }
	tests := []struct {
		name   string
		modify func(*Config)
		fields []string
	}{
		{"Valid", func(*Config) {}, nil},
		{"NoServers", func(c *Config) { c.Servers = nil }, []string{"servers"}},
		{"BadScheme", func(c *Config) { c.Servers = []string{"ftp://x"} }, []string{"servers[0]"}},
		{"NoHost", func(c *Config) { c.Servers = append(c.Servers, "http://") }, []string{"servers[1]"}},
		{"NoGroup", func(c *Config) { c.Group = " " }, []string{"group"}},
		{"NegativeSlots", func(c *Config) { c.Slots = -1 }, []string{"slots"}},
		{"NegativeDurations", func(c *Config) {
			c.PollWait, c.KillGrace, c.ShutdownGrace = -1, -1, -1
		}, []string{"kill_grace", "poll_wait", "shutdown_grace"}},
		{"EmptyLabel", func(c *Config) { c.Labels = map[string]string{"": "x"} }, []string{"labels"}},
		{"NegativeSpool", func(c *Config) { c.SpoolMaxBytes = -1 }, []string{"spool_max_bytes"}},
		{"HTTPClientAndTLS", func(c *Config) {
			c.HTTPClient, c.CAFile = &http.Client{}, "/etc/ca.pem"
		}, []string{"http_client"}},
		{"Unparsable", func(c *Config) { c.Servers = []string{"http://user:secret@[::1"} }, []string{"servers[0]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.modify(&c)
			err := c.Validate()
			if tt.fields == nil {
				require.NoError(t, err)
				return
			}
			require.NotContains(t, err.Error(), "secret", "URLs are redacted")
			var fields []string
			for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
				var ce *ConfigError
				require.ErrorAs(t, e, &ce)
				fields = append(fields, ce.Field)
			}
			require.Equal(t, tt.fields, fields)
		})
	}
}

func TestNew_Defaults(t *testing.T) {
	t.Parallel()
	a, err := New(Config{Servers: []string{"http://127.0.0.1:1"}, Group: "g"})
	require.NoError(t, err)
	require.Equal(t, DefaultSlots, a.cfg.Slots)
	require.Equal(t, DefaultPollWait, a.cfg.PollWait)
	require.Equal(t, DefaultKillGrace, a.cfg.KillGrace)
	require.Equal(t, DefaultShutdownGrace, a.cfg.ShutdownGrace)
	require.Equal(t, DefaultSpoolMaxBytes, a.cfg.SpoolMaxBytes)
	require.NotEmpty(t, a.cfg.Name)
	require.Nil(t, a.spool, "no state dir, no spool")

	var ce *ConfigError
	_, err = New(Config{Servers: []string{"http://127.0.0.1:1"}, Group: "g", CAFile: "/nonexistent/ca.pem"})
	require.ErrorAs(t, err, &ce)
	require.ErrorIs(t, ce, os.ErrNotExist)

	_, err = New(Config{})
	require.ErrorContains(t, err, "servers: at least one jobd URL is required")
}

func TestRunEnv(t *testing.T) {
	t.Parallel()
	base := []string{"PATH=/bin", "JOBD_TOKEN=secret", "JOBD_RUN_ID=stale", "HOME=/root"}
	asg := &api.Assignment{RunID: "r1", Job: "j", Attempt: 2, Params: map[string]string{
		"b-name": "2", "a.name": "1", "Mixed_Case9": "3",
	}}
	require.Equal(t, []string{
		"PATH=/bin", "HOME=/root",
		"JOBD_RUN_ID=r1", "JOBD_JOB=j", "JOBD_ATTEMPT=2", "JOBD_SCHEDULED_AT=",
		"JOBD_TRIGGER_ID=", "JOBD_SHARD_INDEX=0", "JOBD_SHARD_TOTAL=0",
		"JOBD_PARAM_MIXED_CASE9=3", "JOBD_PARAM_A_NAME=1", "JOBD_PARAM_B_NAME=2",
	}, runEnv(base, asg))
}

func TestUTF8Cut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want int
	}{
		{"abcdef", 4, 4},
		{"abc", 10, 3},
		{"aé", 2, 1},  // é is 2 bytes: do not split it
		{"aé", 3, 3},  // whole
		{"a€b", 3, 1}, // € is 3 bytes
		{"a€b", 4, 4},
		{"a😀", 4, 1}, // 4-byte rune
		{"a😀", 5, 5},
		{"\xff\xff\xff\xff\xff", 3, 3}, // not UTF-8: cut anyway
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, utf8Cut([]byte(tt.in), tt.n), "%q at %d", tt.in, tt.n)
	}
}

// recordingReporter acknowledges every report and records each batch. When
// gate is set, each batch waits for a token from it first.
type recordingReporter struct {
	gate    chan struct{}
	mu      sync.Mutex
	batches [][]api.RunReport
	sent    chan struct{}
}

func (r *recordingReporter) Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error) {
	if r.gate != nil {
		select {
		case <-r.gate:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(batch))
	r.mu.Unlock()
	r.sent <- struct{}{}
	res := make([]api.ReportResponse, len(batch))
	for i := range res {
		res[i].OK = true
	}
	return res, nil
}

// reports returns the reports received, in order.
func (r *recordingReporter) reports() []api.RunReport {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Concat(r.batches...)
}

// startQueue runs a report queue sending through rep until the test ends.
func startQueue(t *testing.T, rep reporter) *reportQueue {
	t.Helper()
	q := newReportQueue(rep, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.loop(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return q
}

func TestLogWriter(t *testing.T) {
	t.Parallel()
	rec := &recordingReporter{sent: make(chan struct{}, 100)}
	r := startQueue(t, rec).newRun(testLogger(t), "r1", 1)
	w := newLogWriter(r)

	// A small write is flushed on its own after a while.
	_, err := w.Write([]byte("small"))
	require.NoError(t, err)
	select {
	case <-rec.sent:
	case <-time.After(waitTimeout):
		t.Fatal("small write never flushed")
	}

	// A big write is cut into reports of at most logBatchMax bytes, each
	// valid UTF-8.
	big := strings.Repeat("é", logBatchMax) // 2 bytes each
	_, err = w.Write([]byte(big))
	require.NoError(t, err)
	require.NoError(t, w.Close())
	_, err = w.Write([]byte("late"))
	require.ErrorIs(t, err, errLogClosed)
	r.close()
	<-r.done

	reps := rec.reports()
	require.Equal(t, "small", reps[0].Log)
	var all strings.Builder
	for i, rep := range reps {
		require.Equal(t, "r1", rep.RunID)
		require.Equal(t, int64(i+1), rep.Seq)
		require.Equal(t, 1, rep.Attempt)
		require.Equal(t, api.ReportLog, rep.Type)
		require.LessOrEqual(t, len(rep.Log), logBatchMax)
		require.True(t, utf8.ValidString(rep.Log), "report %d", i)
		if i > 0 {
			all.WriteString(rep.Log)
		}
	}
	require.Equal(t, big, all.String())
	require.GreaterOrEqual(t, len(reps), 3)
}

// waitTaken waits until the sender of q took every waiting report.
func waitTaken(t *testing.T, q *reportQueue) {
	t.Helper()
	require.Eventually(t, func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return len(q.waiting) == 0
	}, waitTimeout, time.Millisecond)
}

func TestReportQueue(t *testing.T) {
	t.Parallel()
	rec := &recordingReporter{gate: make(chan struct{}), sent: make(chan struct{}, 100)}
	q := startQueue(t, rec)
	q.mu.Lock()
	q.maxLen = 3
	q.mu.Unlock()
	r1 := q.newRun(testLogger(t), "r1", 1)
	r2 := q.newRun(testLogger(t), "r2", 2)
	logRep := func(s string) api.Report { return api.Report{Type: api.ReportLog, Log: s} }
	waitBlocked := func(n int) {
		t.Helper()
		require.Eventually(t, func() bool {
			q.mu.Lock()
			defer q.mu.Unlock()
			return q.adders == n
		}, waitTimeout, time.Millisecond)
	}

	// The sender takes the first report and waits at the gate with it; two
	// more fill the queue and the next log report waits for room.
	r1.add(api.Report{Type: api.ReportStart})
	waitTaken(t, q)
	r1.add(logRep("a"))
	r2.add(api.Report{Type: api.ReportStart})
	added := make(chan struct{})
	go func() {
		r1.add(logRep("b"))
		close(added)
	}()
	waitBlocked(1)
	// Start and result reports never wait.
	r2.add(api.Report{Type: api.ReportResult})
	r2.close()
	select {
	case <-added:
		t.Fatal("a log report was queued beyond the limit")
	default:
	}

	// The first batch is acknowledged, and the next one takes everything
	// queued meanwhile; the result of r2 went over the limit, so the log
	// report still waits until that batch is acknowledged too.
	rec.gate <- struct{}{}
	waitTaken(t, q)
	waitBlocked(1)
	rec.gate <- struct{}{}
	<-added
	r1.add(api.Report{Type: api.ReportResult})
	r1.close()
	close(rec.gate)
	<-r1.done
	<-r2.done

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got [][]string
	for _, b := range rec.batches {
		var ids []string
		for _, rr := range b {
			ids = append(ids, fmt.Sprintf("%s:%d:%s%s", rr.RunID, rr.Seq, rr.Type, rr.Log))
		}
		got = append(got, ids)
	}
	require.Equal(t, []string{"r1:1:start"}, got[0])
	require.Equal(t, []string{"r1:2:loga", "r2:1:start", "r2:2:result"}, got[1],
		"everything queued while a batch was in flight goes in the next one")
	require.Equal(t, []string{
		"r1:1:start", "r1:2:loga", "r2:1:start", "r2:2:result", "r1:3:logb", "r1:4:result",
	}, slices.Concat(got...))
}

func TestReportQueue_BatchLimits(t *testing.T) {
	t.Parallel()
	rec := &recordingReporter{gate: make(chan struct{}), sent: make(chan struct{}, 100)}
	q := startQueue(t, rec)
	q.mu.Lock()
	q.batchLen = 3
	q.batchBytes = 5 * reportOverhead
	q.mu.Unlock()
	r := q.newRun(testLogger(t), "r", 1)
	r.add(api.Report{Type: api.ReportStart})
	waitTaken(t, q)
	for range 5 {
		r.add(api.Report{Type: api.ReportLog, Log: "x"})
	}
	r.add(api.Report{Type: api.ReportLog, Log: strings.Repeat("y", 600)})
	r.add(api.Report{Type: api.ReportLog, Log: strings.Repeat("z", 2000)})
	r.add(api.Report{Type: api.ReportResult})
	r.close()
	close(rec.gate)
	<-r.done

	rec.mu.Lock()
	defer rec.mu.Unlock()
	var sizes []int
	for _, b := range rec.batches {
		sizes = append(sizes, len(b))
	}
	// [start] alone in flight, then 3 x (the count limit), 2 x (y is over
	// the bytes limit), y (so is z), z alone although over the limit, and
	// the result.
	require.Equal(t, []int{1, 3, 2, 1, 1, 1}, sizes)
	for i, rr := range slices.Concat(rec.batches...) {
		require.Equal(t, int64(i+1), rr.Seq)
	}
}

func TestReportQueue_Discard(t *testing.T) {
	t.Parallel()
	rec := &recordingReporter{gate: make(chan struct{}), sent: make(chan struct{}, 100)}
	q := startQueue(t, rec)
	keep := q.newRun(testLogger(t), "keep", 1)
	lost := q.newRun(testLogger(t), "lost", 1)
	keep.add(api.Report{Type: api.ReportStart})
	waitTaken(t, q) // in flight at the gate
	lost.add(api.Report{Type: api.ReportStart})
	keep.add(api.Report{Type: api.ReportResult})
	lost.discard()
	lost.add(api.Report{Type: api.ReportResult})
	lost.close()
	keep.close()
	close(rec.gate)
	<-keep.done
	<-lost.done
	for _, rr := range rec.reports() {
		require.Equal(t, "keep", rr.RunID)
	}
}

func TestHTTPReporter_SplitsTooLarge(t *testing.T) {
	t.Parallel()
	f := newFakeJobd(t)
	f.maxBatch = 2
	h := &httpReporter{
		tr:             newTransport([]string{f.srv.URL}, "test-token", &http.Client{}),
		log:            testLogger(t),
		executorIDFunc: func(context.Context) (string, error) { return "ex-1", nil },
	}
	batch := make([]api.RunReport, 5)
	for i := range batch {
		batch[i] = api.RunReport{RunID: "r1", Report: api.Report{Attempt: 1, Seq: int64(i + 1), Type: api.ReportLog, Log: "x"}}
	}
	res, err := h.Send(context.Background(), batch)
	require.NoError(t, err)
	require.Len(t, res, 5)
	for _, r := range res {
		require.True(t, r.OK)
	}
	require.Len(t, f.runReports("r1"), 5)
	f.mu.Lock()
	defer f.mu.Unlock()
	require.Equal(t, [][]int64{{1, 2, 3, 4, 5}, {1, 2}, {3, 4, 5}, {3}, {4, 5}}, f.tries["r1"])
}

func TestJSONStringLen(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `"quoted" \ back`, "tab\tnew\nline\r\b\f", "\x00\x01\x1f",
		"<html> & </html>", "é€😀", "\u2028\u2029", "bad \xff\xfe utf-8 \xe2\x82", strings.Repeat("é", 1000),
	} {
		b, err := json.Marshal(s)
		require.NoError(t, err)
		require.Equal(t, len(b), jsonStringLen(s), "%q", s)
	}
}

func TestTransport_Errors(t *testing.T) {
	t.Parallel()
	notFound := &statusError{Status: 404, Message: "unknown executor"}
	require.True(t, isNotFound(notFound))
	require.False(t, isRetryable(notFound))
	require.True(t, isRetryable(&statusError{Status: 503}))
	require.True(t, isRetryable(&statusError{Status: 429}))
	require.True(t, isRetryable(errors.New("connection refused")))
	require.True(t, failsOver(&statusError{Status: 502}))
	require.False(t, failsOver(&statusError{Status: 500}))
	require.Equal(t, "jobd answered 404: unknown executor", notFound.Error())
	require.Equal(t, "jobd answered 503 Service Unavailable", (&statusError{Status: 503}).Error())
	require.Equal(t, "name: taken", errorMessage([]byte(`{"error":"taken","field":"name"}`)))
	require.Equal(t, "plain text", errorMessage([]byte("plain text\n")))

	bo := newBackoff()
	for range 20 {
		d := bo.delay()
		require.Positive(t, d)
		require.LessOrEqual(t, d, 2*time.Second)
	}
}

// partialReporter delivers the first report of each batch, then fails
// with ctx's cause once ctx is done.
type partialReporter struct{ delivered chan api.RunReport }

func (p *partialReporter) Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error) {
	p.delivered <- batch[0]
	<-ctx.Done()
	return []api.ReportResponse{{OK: true}}, context.Cause(ctx)
}

func TestReportQueue_StopSettlesDeliveredPart(t *testing.T) {
	t.Parallel()
	rep := &partialReporter{delivered: make(chan api.RunReport, 1)}
	q := newReportQueue(rep, testLogger(t))
	r := q.newRun(testLogger(t), "r1", 1)
	r.add(api.Report{Type: api.ReportStart})
	r.add(api.Report{Type: api.ReportResult})
	r.close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		q.loop(ctx)
	}()
	require.Equal(t, int64(1), (<-rep.delivered).Seq)
	cancel()
	<-done
	<-r.done
	q.mu.Lock()
	require.Zero(t, q.n, "the delivered report and the dropped one are both settled")
	q.mu.Unlock()
	other := q.newRun(testLogger(t), "r2", 1)
	other.add(api.Report{Type: api.ReportStart})
	q.mu.Lock()
	defer q.mu.Unlock()
	require.Zero(t, q.n, "a stopped queue takes nothing")
}

// spillReporter never acknowledges a batch; it records what the queue
// spills when it stops, or fails to.
type spillReporter struct {
	taken   chan struct{}
	err     error
	mu      sync.Mutex
	spilled []api.RunReport
}

func (s *spillReporter) Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error) {
	s.taken <- struct{}{}
	<-ctx.Done()
	return nil, context.Cause(ctx)
}

func (s *spillReporter) spill(batch []api.RunReport) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.spilled = append(s.spilled, batch...)
	return nil
}

func TestReportQueue_SpillsOnStop(t *testing.T) {
	t.Parallel()
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "Spilled", true: "SpillFails"}[fail], func(t *testing.T) {
			t.Parallel()
			rep := &spillReporter{taken: make(chan struct{}, 1)}
			if fail {
				rep.err = errors.New("disk on fire")
			}
			q := newReportQueue(rep, testLogger(t))
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				q.loop(ctx)
			}()
			r := q.newRun(testLogger(t), "r1", 1)
			gone := q.newRun(testLogger(t), "gone", 1)
			r.add(api.Report{Type: api.ReportStart})
			<-rep.taken // in flight, never acknowledged
			r.add(api.Report{Type: api.ReportLog, Log: "x"})
			gone.add(api.Report{Type: api.ReportStart})
			gone.discard()
			r.add(api.Report{Type: api.ReportResult})
			r.close()
			gone.close()
			cancel()
			<-done
			<-r.done
			<-gone.done
			if fail {
				require.Empty(t, rep.spilled)
				return
			}
			var got []string
			for _, rr := range rep.spilled {
				got = append(got, fmt.Sprintf("%s:%d:%s", rr.RunID, rr.Seq, rr.Type))
			}
			require.Equal(t, []string{"r1:1:start", "r1:2:log", "r1:3:result"}, got,
				"the batch in flight, then the waiting reports, in order; discarded runs left out")
		})
	}
}

func TestSpool_AppendOverLimit(t *testing.T) {
	t.Parallel()
	s := openTestSpool(t, t.TempDir(), 100)
	require.NoError(t, s.append(context.Background(), logReports("r", 1, 2)))
	require.NoError(t, s.appendOverLimit(logReports("r", 3, 2)))
	n, size := s.stats()
	require.Equal(t, 4, n)
	require.Greater(t, size, int64(100))
}
