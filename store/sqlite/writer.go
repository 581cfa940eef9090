package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
)

// Group commit. Every write of the store is a writeOp run by one writer
// goroutine. The writer takes every op queued at the moment it is free (up
// to maxBatchOps), runs each inside a SAVEPOINT of one transaction and
// commits once: a caller's op is still all-or-nothing and is answered only
// after the commit, but a burst of small writes (run reports, fire batches)
// costs one commit instead of one each, and no writer waits behind another
// caller's whole transaction.
//
// Urgent ops (fire batches: runs wait on them) form batches of their own
// and go first; a batch of other ops stops taking ops when one is waiting.
// Raw ops (a checkpoint) run alone, outside any transaction.

// maxBatchOps caps the ops one commit covers.
const maxBatchOps = 512

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store is closed")

type writeOp struct {
	ctx context.Context
	fn  func(*tx) error
	// raw, when set instead of fn, runs alone on the writer pool outside
	// any transaction (a checkpoint).
	raw  func(context.Context, *sql.DB) error
	done chan error
}

// writer owns the writer connection's transactions.
type writer struct {
	s   *Store
	ops chan *writeOp
	// urgent ops (trigger fires: a run waits on each) go before the others:
	// a batch of other ops is cut short when one is waiting, and urgent
	// ops commit without them.
	urgent chan *writeOp
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
	// mu orders queueing against close: an op is sent on a channel only
	// under the read lock with closing unset, and close sets closing under
	// the write lock, so every op queued is on a channel before the stop
	// and the writer's drain answers it.
	mu      sync.RWMutex
	closing bool
	// queueHook, if set (tests only), runs as an op enters queue.
	queueHook func()
}

func newWriter(s *Store) *writer {
	w := &writer{s: s, ops: make(chan *writeOp, maxBatchOps), urgent: make(chan *writeOp, maxBatchOps), stop: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

// close stops the writer after the ops already queued are done.
func (w *writer) close() {
	w.closed.Do(func() {
		w.mu.Lock()
		w.closing = true
		close(w.stop)
		w.mu.Unlock()
	})
	w.wg.Wait()
}

// do queues fn and waits for the commit that covers it.
func (w *writer) do(ctx context.Context, fn func(*tx) error) error {
	return w.queue(w.ops, &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// doUrgent is do for an op that goes before the others.
func (w *writer) doUrgent(ctx context.Context, fn func(*tx) error) error {
	return w.queue(w.urgent, &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)})
}

// doRaw queues fn to run between two transactions and waits for it.
func (w *writer) doRaw(ctx context.Context, fn func(context.Context, *sql.DB) error) error {
	return w.queue(w.ops, &writeOp{ctx: ctx, raw: fn, done: make(chan error, 1)})
}

func (w *writer) queue(ch chan *writeOp, op *writeOp) error {
	ctx := op.ctx
	if w.queueHook != nil {
		w.queueHook()
	}
	// The writer keeps taking ops until close holds mu, so a send blocked
	// on a full channel here does not hold close up for long.
	w.mu.RLock()
	if w.closing {
		w.mu.RUnlock()
		return ErrClosed
	}
	select {
	case ch <- op:
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	w.mu.RUnlock()
	// Once queued the op runs (or fails) soon; its answer is awaited even
	// if ctx ends meanwhile, so a caller never mistakes a committed write
	// for a failed one.
	return <-op.done
}

func (w *writer) loop() {
	defer w.wg.Done()
	batch := make([]*writeOp, 0, maxBatchOps)
	var carry *writeOp // a raw op that ended the previous batch
	for {
		first, urgent := carry, false
		carry = nil
		if first == nil {
			select {
			case first = <-w.urgent:
				urgent = true
			default:
				select {
				case first = <-w.urgent:
					urgent = true
				case first = <-w.ops:
				case <-w.stop:
					w.drain()
					return
				}
			}
		}
		batch = append(batch[:0], first)
		if urgent {
			batch = w.fill(batch, w.urgent)
		} else if first.raw == nil {
			batch = w.fill(batch, w.ops)
			if last := batch[len(batch)-1]; last.raw != nil && len(batch) > 1 {
				carry, batch = last, batch[:len(batch)-1]
			}
		}
		w.run(batch)
	}
}

// fill adds the ops waiting on ch to batch, up to maxBatchOps. Filling
// from the other ops stops when an urgent op is waiting, and at a raw op
// (added last; it runs alone).
func (w *writer) fill(batch []*writeOp, ch chan *writeOp) []*writeOp {
	for len(batch) < maxBatchOps {
		if ch == w.ops && len(w.urgent) > 0 {
			return batch
		}
		select {
		case op := <-ch:
			batch = append(batch, op)
			if op.raw != nil {
				return batch
			}
		default:
			return batch
		}
	}
	return batch
}

// drain finishes, one at a time, the ops queued before the stop.
func (w *writer) drain() {
	for {
		select {
		case op := <-w.urgent:
			w.run([]*writeOp{op})
		case op := <-w.ops:
			w.run([]*writeOp{op})
		default:
			return
		}
	}
}

// runRaw runs a raw op on the writer pool, outside any transaction.
func (w *writer) runRaw(op *writeOp) {
	if err := op.ctx.Err(); err != nil {
		op.done <- err
		return
	}
	op.done <- op.raw(op.ctx, w.s.w)
}

// run executes a batch in one transaction, each op in its own savepoint,
// and answers every op.
func (w *writer) run(batch []*writeOp) {
	if batch[0].raw != nil {
		w.runRaw(batch[0])
		return
	}
	errs := make([]error, len(batch))
	ctx := context.Background()
	sqlTx, err := w.s.w.BeginTx(ctx, nil)
	if err != nil {
		for _, op := range batch {
			op.done <- fmt.Errorf("begin: %w", mapErr(err))
		}
		return
	}
	t := &tx{ctx: ctx, s: w.s, tx: sqlTx, stmts: map[string]*sql.Stmt{}}
	single := len(batch) == 1
	// broken is set when the transaction can no longer be trusted: a
	// savepoint could not be set, rolled back to or released, most likely
	// because SQLite rolled the whole transaction back itself (SQLITE_FULL,
	// SQLITE_IOERR, SQLITE_NOMEM...). A SAVEPOINT run after that would
	// start a transaction of its own and its RELEASE commit it, so no
	// further op runs: every op of the batch fails and the transaction, if
	// any is left, is rolled back.
	var broken error
	for i, op := range batch {
		if broken != nil {
			errs[i] = broken
			continue
		}
		if err := op.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if single {
			errs[i] = runOp(t, op.fn)
			continue
		}
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			broken = fmt.Errorf("savepoint: %w", mapErr(err))
			errs[i] = broken
			continue
		}
		if errs[i] = runOp(t, op.fn); errs[i] != nil {
			if _, err := sqlTx.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
				broken = fmt.Errorf("batch aborted: rollback to savepoint: %w", mapErr(err))
				errs[i] = errors.Join(errs[i], broken)
				continue
			}
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE op"); err != nil {
			broken = fmt.Errorf("batch aborted: release savepoint: %w", mapErr(err))
			errs[i] = errors.Join(errs[i], broken)
		}
	}
	var commitErr error
	if broken != nil {
		// The ops before the failure lose their writes too.
		_ = sqlTx.Rollback()
		commitErr = broken
	} else if single && errs[0] != nil {
		_ = sqlTx.Rollback()
	} else if err := sqlTx.Commit(); err != nil {
		commitErr = fmt.Errorf("commit: %w", mapErr(err))
		_ = sqlTx.Rollback()
	}
	if commitErr == nil && len(t.uncached) > 0 {
		w.s.cacheStmts(ctx, t.uncached)
	}
	for i, op := range batch {
		if errs[i] == nil && commitErr != nil {
			errs[i] = commitErr
		}
		op.done <- errs[i]
	}
}

// runOp runs fn, turning a panic into an error so the writer survives.
func runOp(t *tx, fn func(*tx) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store write panicked: %v", r)
		}
	}()
	return fn(t)
}
