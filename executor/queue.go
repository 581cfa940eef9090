package executor

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jobd/jobd/api"
)

// Limits of the report queue, all runs together. A batch is sent whenever
// the previous one is acknowledged and holds everything queued since, up to
// maxBatchReports reports and maxBatchBytes of JSON: below jobd's default
// max_body_bytes (1 MiB), so a full batch is not refused as too large. The
// queue holds at most maxQueuedReports reports or maxQueuedBytes, counting
// the batch in flight; then log reports wait, and so does the process
// writing the output.
const (
	maxBatchReports  = 1000
	maxBatchBytes    = 768 << 10
	maxQueuedReports = 4096
	maxQueuedBytes   = 8 << 20
)

// reportQueue holds the reports of every run, in the order they were added,
// until jobd acknowledges them. One goroutine (loop) sends them in batches
// through a reporter. It is safe for concurrent use.
type reportQueue struct {
	rep reporter
	log *slog.Logger
	// Limits, set from the constants above (tests lower them).
	maxLen, maxBytes     int // of the queue, the batch in flight included
	batchLen, batchBytes int // of one batch
	// wake holds a token when reports were queued since loop last looked.
	wake chan struct{}

	mu      sync.Mutex
	room    *sync.Cond     // broadcast when reports leave the queue, or adds must give up
	waiting []queuedReport // queued and not yet in a batch, in order
	n       int            // reports waiting or in flight
	bytes   int            // their reportSize
	adders  int            // log reports waiting for room
	stopped bool           // loop returned: reports are dropped from now on
}

// queuedReport is a report in the queue.
type queuedReport struct {
	run  *runReports
	rep  api.Report
	size int // reportSize
}

func newReportQueue(rep reporter, log *slog.Logger) *reportQueue {
	q := &reportQueue{
		rep:        rep,
		log:        log,
		maxLen:     maxQueuedReports,
		maxBytes:   maxQueuedBytes,
		batchLen:   maxBatchReports,
		batchBytes: maxBatchBytes,
		wake:       make(chan struct{}, 1),
	}
	q.room = sync.NewCond(&q.mu)
	return q
}

// runReports numbers the reports of one run attempt from 1 and queues them
// in order on the agent's report queue. Its fields are guarded by the
// queue's mutex: numbering a report and queueing it happen at once, so the
// queue holds the reports of a run in Seq order.
type runReports struct {
	q       *reportQueue
	log     *slog.Logger
	runID   string
	attempt int
	// done is closed once close was called and every report of the run was
	// acknowledged, refused or dropped.
	done chan struct{}

	seq      int64
	pending  int  // reports waiting or in flight
	closed   bool // no more reports
	dropped  bool // set by discard: jobd no longer wants them
	doneSent bool // done is closed
}

// newRun returns the report queue of a run attempt.
func (q *reportQueue) newRun(log *slog.Logger, runID string, attempt int) *runReports {
	return &runReports{q: q, log: log, runID: runID, attempt: attempt, done: make(chan struct{})}
}

// add numbers rep and queues it. A log report waits while the queue is
// full; start and result reports, small and at most two per run, never
// wait, so a run writing much output cannot hold back the start and end of
// the others. Reports added after close or discard, or once the queue
// stopped, are dropped.
func (r *runReports) add(rep api.Report) {
	q := r.q
	size := reportSize(r.runID, &rep)
	q.mu.Lock()
	defer q.mu.Unlock()
	if rep.Type == api.ReportLog {
		for !q.stopped && !r.closed && !r.dropped && !q.hasRoomLocked(size) {
			q.adders++
			q.room.Wait()
			q.adders--
		}
	}
	if q.stopped || r.closed || r.dropped {
		return
	}
	r.seq++
	rep.Seq, rep.Attempt = r.seq, r.attempt
	r.pending++
	q.waiting = append(q.waiting, queuedReport{run: r, rep: rep, size: size})
	q.n++
	q.bytes += size
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// close ends the run's reports; done is closed once the queued ones are
// settled.
func (r *runReports) close() {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	if !r.closed {
		r.closed = true
		r.q.room.Broadcast()
		r.checkDoneLocked()
	}
}

// discard drops the run's reports from now on, queued ones included.
func (r *runReports) discard() {
	r.q.mu.Lock()
	defer r.q.mu.Unlock()
	r.dropped = true
	r.q.room.Broadcast()
}

func (r *runReports) checkDoneLocked() {
	if r.closed && r.pending == 0 && !r.doneSent {
		r.doneSent = true
		close(r.done)
	}
}

// hasRoomLocked reports whether a report of size fits in the queue. An
// empty queue takes any report, so none waits forever.
func (q *reportQueue) hasRoomLocked(size int) bool {
	return q.n == 0 || (q.n < q.maxLen && q.bytes+size <= q.maxBytes)
}

// releaseLocked takes a report that left the queue (acknowledged, refused
// or dropped) off the counts.
func (q *reportQueue) releaseLocked(qr queuedReport) {
	q.n--
	q.bytes -= qr.size
	qr.run.pending--
	qr.run.checkDoneLocked()
}

// loop sends the queued reports in batches until ctx is done, then drops
// what is left and stops the queue. It returns once the batch in flight is
// settled. The agent runs one loop.
func (q *reportQueue) loop(ctx context.Context) {
	var unsent []queuedReport
	defer func() { q.stop(unsent, context.Cause(ctx)) }()
	for {
		batch := q.take()
		if len(batch) == 0 {
			select {
			case <-q.wake:
				continue
			case <-ctx.Done():
				return
			}
		}
		if unsent = q.deliver(ctx, batch); len(unsent) > 0 {
			return
		}
	}
}

// take removes the next batch from the waiting reports: as many as fit in
// one batch, but at least one. Reports of discarded runs are dropped.
func (q *reportQueue) take() []queuedReport {
	q.mu.Lock()
	defer q.mu.Unlock()
	var batch []queuedReport
	bytes, i, released := 0, 0, false
	for ; i < len(q.waiting) && len(batch) < q.batchLen; i++ {
		qr := q.waiting[i]
		if qr.run.dropped {
			q.releaseLocked(qr)
			released = true
			continue
		}
		if len(batch) > 0 && bytes+qr.size > q.batchBytes {
			break
		}
		batch = append(batch, qr)
		bytes += qr.size
	}
	if i > 0 {
		rest := copy(q.waiting, q.waiting[i:])
		clear(q.waiting[rest:]) // let the logs sent go
		q.waiting = q.waiting[:rest]
	}
	if released {
		q.room.Broadcast()
	}
	return batch
}

// deliver sends a batch and settles its reports: acknowledged ones leave
// the queue, refused ones are dropped with a warning. When ctx is done
// first, it settles the reports delivered and returns the others.
func (q *reportQueue) deliver(ctx context.Context, batch []queuedReport) (unsent []queuedReport) {
	rrs := make([]api.RunReport, len(batch))
	for i, qr := range batch {
		rrs[i] = api.RunReport{RunID: qr.run.runID, Report: qr.rep}
	}
	results, err := q.rep.Send(ctx, rrs)
	results = results[:min(len(results), len(batch))]
	switch {
	case err != nil && ctx.Err() != nil:
		batch, unsent = batch[:len(results)], batch[len(results):]
	case err != nil:
		q.log.Warn("jobd refused a batch of run reports; dropping them", "reports", len(batch)-len(results), "err", err)
	}
	for i, res := range results {
		if !res.OK || res.Error != "" {
			qr := batch[i]
			msg := res.Error
			if msg == "" {
				msg = "not acknowledged"
			}
			qr.run.log.Warn("jobd refused a run report; dropping it", "seq", qr.rep.Seq, "type", qr.rep.Type, "err", msg)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, qr := range batch {
		q.releaseLocked(qr)
	}
	q.room.Broadcast()
	return unsent
}

// spiller is a reporter that can keep, for later, the reports a stopping
// agent had no time to send: the spool.
type spiller interface {
	spill(batch []api.RunReport) error
}

// stop settles the unsent batch and the waiting reports, and makes later
// adds drop theirs. A spiller keeps them; otherwise, or when it fails, they
// are dropped, with an error logged for each run naming the first report
// not delivered.
func (q *reportQueue) stop(unsent []queuedReport, cause error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.stopped = true
	left := append(unsent, q.waiting...)
	var rrs []api.RunReport
	for _, qr := range left {
		if !qr.run.dropped {
			rrs = append(rrs, api.RunReport{RunID: qr.run.runID, Report: qr.rep})
		}
	}
	spilled := false
	if sp, ok := q.rep.(spiller); ok && len(rrs) > 0 {
		if err := sp.spill(rrs); err != nil {
			q.log.Error("spool the reports not sent before the stop", "reports", len(rrs), "err", err)
		} else {
			spilled = true
			q.log.Warn("reports not sent before the stop are spooled", "reports", len(rrs))
		}
	}
	logged := map[*runReports]bool{}
	for _, qr := range left {
		if !spilled && !logged[qr.run] && !qr.run.dropped {
			logged[qr.run] = true
			qr.run.log.Error("run reports not delivered", "from_seq", qr.rep.Seq, "err", cause)
		}
		q.releaseLocked(qr)
	}
	q.waiting = nil
	q.room.Broadcast()
}
