package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jobd/jobd/api"
)

// Log batching: a log report is sent when logBatchMax bytes are buffered, or
// logFlushInterval after the first byte of a batch, whichever comes first.
const (
	logFlushInterval = 200 * time.Millisecond
	logBatchMax      = 32 << 10
)

// reportQueueLen bounds the reports of one run waiting to be sent. When jobd
// is slow the queue fills, the log writer blocks and so does the process
// writing its output: memory stays bounded.
const reportQueueLen = 64

// errLogClosed is returned by writes to the log of a run that ended.
var errLogClosed = errors.New("run log closed: the run has ended")

// reporter delivers the reports of runs to jobd. Send returns nil once rep
// is acknowledged, retrying with the same Seq until then; it returns an
// error only when ctx is done or jobd refused the report for good. Callers
// send the reports of one run one at a time, in Seq order.
//
// A spooling reporter that stores reports on disk when no jobd answers
// implements the same interface and returns once the report is stored.
type reporter interface {
	Send(ctx context.Context, runID string, rep api.Report) error
}

// httpReporter sends reports straight to jobd.
type httpReporter struct {
	tr             *transport
	log            *slog.Logger
	executorIDFunc func() string
}

// Send implements reporter.
func (h *httpReporter) Send(ctx context.Context, runID string, rep api.Report) error {
	path := "/runs/" + url.PathEscape(runID) + "/report"
	bo := newBackoff()
	for try := 1; ; try++ {
		// Stamp the current id: the executor may have registered again.
		rep.ExecutorID = h.executorIDFunc()
		var err error
		if rep.ExecutorID == "" {
			err = errors.New("not registered")
		} else {
			ctx, cancel := context.WithTimeout(ctx, requestTimeout)
			var ack api.ReportResponse
			err = h.tr.post(ctx, path, &rep, &ack)
			cancel()
			if err == nil {
				return nil
			}
		}
		if ctx.Err() != nil {
			return fmt.Errorf("report %s seq %d: %w", rep.Type, rep.Seq, context.Cause(ctx))
		}
		if !isRetryable(err) {
			return fmt.Errorf("report %s seq %d: %w", rep.Type, rep.Seq, err)
		}
		h.log.Debug("report not acknowledged; retrying", logKeyRun, runID, "seq", rep.Seq, "try", try, "err", err)
		if !sleepCtx(ctx, bo.delay()) {
			return fmt.Errorf("report %s seq %d: %w", rep.Type, rep.Seq, context.Cause(ctx))
		}
	}
}

// runReports numbers the reports of one run attempt from 1 and sends them in
// order through a reporter, from its own goroutine (loop).
type runReports struct {
	ctx     context.Context
	rep     reporter
	log     *slog.Logger
	runID   string
	attempt int
	queue   chan api.Report
	done    chan struct{} // closed when loop returned
	dropped atomic.Bool   // set by discard: jobd no longer wants them

	mu     sync.Mutex
	seq    int64
	closed bool
}

func newRunReports(ctx context.Context, rep reporter, log *slog.Logger, runID string, attempt int) *runReports {
	return &runReports{
		ctx:     ctx,
		rep:     rep,
		log:     log,
		runID:   runID,
		attempt: attempt,
		queue:   make(chan api.Report, reportQueueLen),
		done:    make(chan struct{}),
	}
}

// add numbers rep and queues it; it blocks while the queue is full. Reports
// added after close, or once loop gave up, are dropped.
func (q *runReports) add(rep api.Report) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.seq++
	rep.Seq = q.seq
	rep.Attempt = q.attempt
	select {
	case q.queue <- rep:
	case <-q.done:
	}
}

// close ends the queue; loop returns once the queued reports are sent.
func (q *runReports) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.closed {
		q.closed = true
		close(q.queue)
	}
}

// discard drops the run's reports from now on.
func (q *runReports) discard() { q.dropped.Store(true) }

// loop sends the queued reports in order until the queue is closed and
// empty, or ctx is done.
func (q *runReports) loop() {
	defer close(q.done)
	for rep := range q.queue {
		if q.dropped.Load() {
			continue
		}
		err := q.rep.Send(q.ctx, q.runID, rep)
		if err == nil {
			continue
		}
		if q.ctx.Err() != nil {
			q.log.Error("run reports not delivered", "from_seq", rep.Seq, "err", err)
			return
		}
		q.log.Warn("jobd refused a run report; dropping it", "seq", rep.Seq, "err", err)
	}
}

// logWriter batches a run's output into log reports. It is safe for
// concurrent use.
type logWriter struct {
	reports *runReports

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer // pending flush of a partial batch
	closed bool
}

func newLogWriter(reports *runReports) *logWriter {
	return &logWriter{reports: reports}
}

// Write implements io.Writer. It blocks while the run's report queue is full.
func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, errLogClosed
	}
	w.buf = append(w.buf, p...)
	for len(w.buf) >= logBatchMax {
		n := utf8Cut(w.buf, logBatchMax)
		w.emit(w.buf[:n])
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
	}
	if len(w.buf) > 0 && w.timer == nil {
		w.timer = time.AfterFunc(logFlushInterval, w.timedFlush)
	}
	return len(p), nil
}

func (w *logWriter) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer = nil
	if !w.closed && len(w.buf) > 0 {
		w.emit(w.buf)
		w.buf = w.buf[:0]
	}
}

// Close sends what is buffered; later writes fail.
func (w *logWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if len(w.buf) > 0 {
		w.emit(w.buf)
	}
	w.buf = nil
	return nil
}

func (w *logWriter) emit(b []byte) {
	w.reports.add(api.Report{Type: api.ReportLog, At: api.NewTime(time.Now()), Log: string(b)})
}

// utf8Cut returns where to cut b to at most n bytes without splitting a
// UTF-8 sequence (unless the bytes there are not valid UTF-8 anyway).
func utf8Cut(b []byte, n int) int {
	n = min(n, len(b))
	for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if i > 0 && !utf8.FullRune(b[i:n]) {
				return i
			}
			return n
		}
	}
	return n
}
