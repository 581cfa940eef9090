package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jobd/jobd/api"
)

// Log batching: a log report is queued when logBatchMax bytes are buffered,
// or logFlushInterval after the first byte of a batch, whichever comes
// first.
const (
	logFlushInterval = 200 * time.Millisecond
	logBatchMax      = 32 << 10
)

// errLogClosed is returned by writes to the log of a run that ended.
var errLogClosed = errors.New("run log closed: the run has ended")

// reporter delivers batches of run reports to jobd. Send returns one
// response per report of batch, in the same order, once the batch is
// acknowledged, retrying until then; a response that is not OK is a report
// refused for good. Send returns an error only when ctx is done or the rest
// of the batch was refused for good; the responses it returns with an error
// are those of the first reports of batch, which were delivered. The
// reports of one run are in Seq order within a batch and the caller sends
// one batch at a time, so Seq order holds across batches too. Send may set
// the reports' ExecutorID.
//
// httpReporter sends straight to jobd; spoolReporter acknowledges a batch
// no jobd takes once it is stored in the agent's spool on disk.
type reporter interface {
	Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error)
}

// httpReporter sends batches of reports straight to jobd, to POST
// /api/v1/executor/{id}/reports.
type httpReporter struct {
	tr  *transport
	log *slog.Logger
	// executorIDFunc returns the executor id, waiting while the agent is not
	// registered; it fails only when ctx is done.
	executorIDFunc func(ctx context.Context) (string, error)
	// retryableFunc tells the errors after which Send tries again; nil
	// means isRetryable or isNotFound.
	retryableFunc func(err error) bool
	// failedFunc, when set, is called after each try that failed.
	failedFunc func(err error)
}

// Send implements reporter: it sends batch until jobd acknowledges it. Every
// try is stamped with the current executor id: the agent may have
// registered again. A 404 is retried like a transport error: it comes from
// a jobd without the batch route (one being upgraded, behind a load
// balancer) or, from a jobd that checks the id, until the poll loop has
// registered again.
func (h *httpReporter) Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error) {
	retryable := h.retryableFunc
	if retryable == nil {
		retryable = retryableReport
	}
	bo := newBackoff()
	var out []api.ReportResponse
	for try := 1; ; try++ {
		rest := batch[len(out):]
		id, err := h.executorIDFunc(ctx)
		if err == nil {
			var res []api.ReportResponse
			res, err = h.sendOnce(ctx, id, rest)
			out = append(out, res...)
			if err == nil {
				return out, nil
			}
			rest = batch[len(out):]
		}
		if h.failedFunc != nil {
			h.failedFunc(err)
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("send %d reports: %w", len(rest), context.Cause(ctx))
		}
		if !retryable(err) {
			return out, fmt.Errorf("send %d reports: %w", len(rest), err)
		}
		if try == 1 {
			h.log.Warn("jobd did not acknowledge reports; retrying", "reports", len(rest), "err", err)
		} else {
			h.log.Debug("reports still not acknowledged; retrying", "reports", len(rest), "try", try, "err", err)
		}
		if !sleepCtx(ctx, bo.delay()) {
			return out, fmt.Errorf("send %d reports: %w", len(rest), context.Cause(ctx))
		}
	}
}

// retryableReport reports whether a report request that failed with err
// may succeed later.
func retryableReport(err error) bool { return isRetryable(err) || isNotFound(err) }

// sendOnce posts batch once, as executor id: one round over the servers
// (see transport.post). A batch jobd finds too large (413) is split in
// halves, sent one after the other; a single report too large is refused.
// On error, the responses returned are those of the first reports, which
// were delivered.
func (h *httpReporter) sendOnce(ctx context.Context, id string, batch []api.RunReport) ([]api.ReportResponse, error) {
	res, err := h.post(ctx, id, batch)
	if !isTooLarge(err) {
		return res, err
	}
	if len(batch) == 1 {
		return []api.ReportResponse{{Error: err.Error()}}, nil
	}
	h.log.Warn("jobd refused a batch of reports as too large; splitting it (is its max_body_bytes small?)",
		"reports", len(batch), "err", err)
	half := len(batch) / 2
	first, err := h.sendOnce(ctx, id, batch[:half])
	if err != nil {
		return first, err
	}
	rest, err := h.sendOnce(ctx, id, batch[half:])
	return append(first, rest...), err
}

// post sends one request holding batch.
func (h *httpReporter) post(ctx context.Context, id string, batch []api.RunReport) ([]api.ReportResponse, error) {
	for i := range batch {
		batch[i].ExecutorID = id
	}
	var resp api.ReportBatchResponse
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if err := h.tr.post(ctx, "/executor/"+url.PathEscape(id)+"/reports", &api.ReportBatch{Reports: batch}, &resp); err != nil {
		return nil, err
	}
	if len(resp.Results) != len(batch) {
		// Resending is safe: reports are idempotent.
		return nil, fmt.Errorf("jobd answered %d results for %d reports", len(resp.Results), len(batch))
	}
	return resp.Results, nil
}

// isTooLarge reports whether jobd refused a request as too large.
func isTooLarge(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.Status == http.StatusRequestEntityTooLarge
}

// reportOverhead is more than the JSON of a run report takes besides its
// run id, log and error: field names, numbers, time, type, state and
// executor id.
const reportOverhead = 256

// reportSize is about the size of a run report in the JSON of a batch, a
// little more rather than less.
func reportSize(runID string, rep *api.Report) int {
	return reportOverhead + jsonStringLen(runID) + jsonStringLen(rep.Log) + jsonStringLen(rep.Error)
}

// jsonStringLen returns the length of s encoded as a JSON string by
// encoding/json: quoted, with escapes (HTML characters included) and every
// byte of invalid UTF-8 replaced by \ufffd.
func jsonStringLen(s string) int {
	n := 2
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			switch {
			case b == '"', b == '\\', b == '\n', b == '\r', b == '\t', b == '\b', b == '\f':
				n += 2
			case b < 0x20, b == '<', b == '>', b == '&':
				n += 6 // \u00XX
			default:
				n++
			}
			i++
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if (c == utf8.RuneError && size == 1) || c == '\u2028' || c == '\u2029' {
			n += 6
		} else {
			n += size
		}
		i += size
	}
	return n
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

// Write implements io.Writer. It blocks while the agent's report queue is
// full.
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
