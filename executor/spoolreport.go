package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/jobd/jobd/api"
)

// spoolReporter is the reporter of an agent with a StateDir. While its
// spool is empty it sends each batch straight to jobd, once (one round over
// the servers); when no server takes it, it appends the batch to the spool
// on disk and acknowledges it at once, so the memory queue is released,
// jobs go on and their runs end. While the spool holds reports, every new
// batch joins it, behind them. The resend loop sends the spool in order, in
// batches, to whichever server answers, and deletes what jobd
// acknowledged; once the spool is empty, batches go straight to jobd
// again.
//
// Order: only Send appends (one batch at a time, from the report queue's
// goroutine) and it sends straight to jobd only when the spool is empty,
// that is when jobd acknowledged everything spooled before. So every
// report of a run reaches jobd after those queued before it, whether they
// went through the spool or not.
type spoolReporter struct {
	spool *spool
	log   *slog.Logger
	// direct sends the batches of Send, one try each.
	direct *httpReporter
	// resender sends the spooled batches, retrying until acknowledged.
	resender *httpReporter
	// executorIDFunc returns the executor id, "" when not registered.
	executorIDFunc func() string
	// Limits of a resent batch; those of the report queue.
	batchLen, batchBytes int

	// failures counts the resend tries that failed.
	failures atomic.Int64
}

func newSpoolReporter(sp *spool, tr *transport, log *slog.Logger, idFunc func() string, waitIDFunc func(context.Context) (string, error)) *spoolReporter {
	s := &spoolReporter{
		spool:          sp,
		log:            log,
		executorIDFunc: idFunc,
		batchLen:       maxBatchReports,
		batchBytes:     maxBatchBytes,
	}
	s.direct = &httpReporter{tr: tr, log: log, executorIDFunc: waitIDFunc}
	s.resender = &httpReporter{
		tr: tr, log: log, executorIDFunc: waitIDFunc,
		// Spooled reports are never dropped for a refused token: they wait
		// on disk for the right one.
		retryableFunc: spoolable,
		failedFunc: func(error) {
			s.failures.Add(1)
			s.spool.notify()
		},
	}
	return s
}

// spoolable reports whether reports that failed to send with err are kept
// for later: jobd could not be reached or could not store them, does not
// know the executor yet, or refused the token (being rotated, or fixed by
// the next start).
func spoolable(err error) bool {
	if retryableReport(err) {
		return true
	}
	var se *statusError
	return errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden)
}

// Send implements reporter.
func (s *spoolReporter) Send(ctx context.Context, batch []api.RunReport) ([]api.ReportResponse, error) {
	var out []api.ReportResponse
	bo := newBackoff()
	for try := 1; ; try++ {
		if s.spool.empty() {
			if id := s.executorIDFunc(); id != "" {
				res, err := s.direct.sendOnce(ctx, id, batch[len(out):])
				out = append(out, res...)
				switch {
				case err == nil:
					return out, nil
				case ctx.Err() == nil && !spoolable(err):
					return out, fmt.Errorf("send %d reports: %w", len(batch)-len(out), err)
				}
				s.log.Warn("no jobd took the reports; spooling them to disk until one does",
					"reports", len(batch)-len(out), "dir", s.spool.dir, "err", err)
			} else {
				s.log.Warn("not registered with jobd; spooling reports to disk until registered",
					"reports", len(batch)-len(out), "dir", s.spool.dir)
			}
		}
		rest := batch[len(out):]
		err := s.spool.append(ctx, rest)
		if err == nil {
			for range rest {
				out = append(out, api.ReportResponse{OK: true})
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return out, fmt.Errorf("spool %d reports: %w", len(rest), err)
		}
		if try == 1 {
			s.log.Error("cannot write the report spool; keeping the reports in memory and trying again", "err", err)
		} else {
			s.log.Debug("report spool still failing", "try", try, "err", err)
		}
		if !sleepCtx(ctx, bo.delay()) {
			return out, fmt.Errorf("spool %d reports: %w", len(rest), context.Cause(ctx))
		}
	}
}

// spill implements spiller: it spools the reports a stopping agent had no
// time to send, over the size limit if need be.
func (s *spoolReporter) spill(batch []api.RunReport) error {
	return s.spool.appendOverLimit(batch)
}

// resend sends the spool, oldest first, until ctx is done.
func (s *spoolReporter) resend(ctx context.Context) {
	bo := newBackoff()
	for {
		changed := s.spool.changedChan()
		rd, ok, err := s.spool.next(s.batchLen, s.batchBytes)
		if err != nil {
			s.log.Error("read the report spool", "err", err)
			if !sleepCtx(ctx, bo.delay()) {
				return
			}
			continue
		}
		bo.reset()
		if !ok {
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return
			}
		}
		if len(rd.reports) > 0 {
			res, err := s.resender.Send(ctx, rd.reports)
			if err != nil && ctx.Err() != nil {
				return
			}
			if err != nil {
				s.log.Warn("jobd refused a batch of spooled reports; dropping them", "reports", len(rd.reports)-len(res), "err", err)
			}
			for i, r := range res {
				if !r.OK || r.Error != "" {
					rr := rd.reports[i]
					s.log.Warn("jobd refused a spooled run report; dropping it",
						logKeyRun, rr.RunID, "seq", rr.Seq, "type", rr.Type, "err", r.Error)
				}
			}
		}
		if s.spool.ack(rd) {
			s.log.Info("spooled reports delivered; sending reports straight to jobd again")
		}
	}
}

// flush waits until the spool is empty or timeout passes, and reports
// whether it is empty. It gives up early when a resend fails (no jobd
// answers, and the reports wait on disk for the next start) or when stop
// is closed.
func (s *spoolReporter) flush(timeout time.Duration, stop <-chan struct{}) bool {
	failures := s.failures.Load()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		changed := s.spool.changedChan()
		if s.spool.empty() {
			return true
		}
		if s.failures.Load() != failures {
			return false
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		case <-stop:
			return s.spool.empty()
		}
	}
}
