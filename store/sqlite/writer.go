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

// maxBatchOps caps the ops one commit covers.
const maxBatchOps = 512

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("store is closed")

type writeOp struct {
	ctx  context.Context
	fn   func(*tx) error
	done chan error
}

// writer owns the writer connection's transactions.
type writer struct {
	s      *Store
	ops    chan *writeOp
	stop   chan struct{}
	wg     sync.WaitGroup
	closed sync.Once
}

func newWriter(s *Store) *writer {
	w := &writer{s: s, ops: make(chan *writeOp, maxBatchOps), stop: make(chan struct{})}
	w.wg.Add(1)
	go w.loop()
	return w
}

// close stops the writer after the ops already queued are done.
func (w *writer) close() {
	w.closed.Do(func() { close(w.stop) })
	w.wg.Wait()
}

// do queues fn and waits for the commit that covers it.
func (w *writer) do(ctx context.Context, fn func(*tx) error) error {
	op := &writeOp{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-w.stop:
		return ErrClosed
	default:
	}
	select {
	case w.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-w.stop:
		return ErrClosed
	}
	// Once queued the op runs (or fails) soon; its answer is awaited even
	// if ctx ends meanwhile, so a caller never mistakes a committed write
	// for a failed one.
	return <-op.done
}

func (w *writer) loop() {
	defer w.wg.Done()
	batch := make([]*writeOp, 0, maxBatchOps)
	for {
		var first *writeOp
		select {
		case first = <-w.ops:
		case <-w.stop:
			// Finish what was queued before the stop.
			for {
				select {
				case op := <-w.ops:
					w.run([]*writeOp{op})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatchOps {
			select {
			case op := <-w.ops:
				batch = append(batch, op)
			default:
				break fill
			}
		}
		w.run(batch)
	}
}

// run executes a batch in one transaction, each op in its own savepoint,
// and answers every op.
func (w *writer) run(batch []*writeOp) {
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
	for i, op := range batch {
		if err := op.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if single {
			errs[i] = runOp(t, op.fn)
			continue
		}
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT op"); err != nil {
			errs[i] = fmt.Errorf("savepoint: %w", err)
			continue
		}
		if errs[i] = runOp(t, op.fn); errs[i] != nil {
			if _, err := sqlTx.ExecContext(ctx, "ROLLBACK TO op"); err != nil {
				errs[i] = errors.Join(errs[i], fmt.Errorf("rollback to savepoint: %w", err))
			}
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE op"); err != nil {
			errs[i] = errors.Join(errs[i], fmt.Errorf("release savepoint: %w", err))
		}
	}
	var commitErr error
	if single && errs[0] != nil {
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
