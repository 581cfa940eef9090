package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// An op after which SQLite has rolled the whole transaction back (as it
// does itself on SQLITE_FULL, SQLITE_IOERR or SQLITE_NOMEM) must abort the
// batch: no later op may run outside the transaction and commit on its
// own, and every op whose writes are gone gets an error.
func TestWriterBatchAbortsWhenTransactionEnds(t *testing.T) {
	t.Parallel()
	s := openTemp(t)
	ctx := t.Context()
	_, err := s.w.ExecContext(ctx, "CREATE TABLE wtest (k TEXT PRIMARY KEY)")
	require.NoError(t, err)

	insert := func(k string) func(*tx) error {
		return func(t *tx) error {
			_, err := t.exec("INSERT INTO wtest (k) VALUES (?)", k)
			return err
		}
	}
	// The transaction ends under the op, as on a disk-full error.
	endsTx := func(t *tx) error {
		if _, err := t.tx.ExecContext(t.ctx, "ROLLBACK"); err != nil {
			return err
		}
		return errors.New("disk full")
	}

	// Hold the writer so the ops below queue up and run as one batch.
	started, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.wr.do(ctx, func(*tx) error { close(started); <-release; return nil })
	}()
	<-started
	type result struct {
		key string
		err error
	}
	ops := []struct {
		key string
		fn  func(*tx) error
	}{{"before", insert("before")}, {"", endsTx}, {"after1", insert("after1")}, {"after2", insert("after2")}}
	results := make(chan result, len(ops))
	for i, op := range ops {
		go func() { results <- result{op.key, s.wr.do(ctx, op.fn)} }()
		for len(s.wr.ops) < i+1 { // queue in order
			runtime.Gosched()
		}
	}
	close(release)
	require.NoError(t, <-held)

	for range ops {
		r := <-results
		if r.key == "" {
			require.Error(t, r.err)
			continue
		}
		var n int
		require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM wtest WHERE k = ?", r.key).Scan(&n))
		if r.key != "before" {
			require.Error(t, r.err, "op %s after the transaction ended", r.key)
		}
		require.Equal(t, r.err == nil, n == 1, "op %s: err %v, rows %d", r.key, r.err, n)
	}

	// The writer goes on.
	require.NoError(t, s.wr.do(ctx, insert("later")))
	var n int
	require.NoError(t, s.r.QueryRowContext(ctx, "SELECT count(*) FROM wtest").Scan(&n))
	require.Equal(t, 1, n)
}

// Writes racing Close all return: none is queued after the writer's last
// drain and left waiting forever.
func TestWriterCloseAnswersEveryWrite(t *testing.T) {
	t.Parallel()
	for round := range 30 {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), fmt.Sprintf("jobd%d.db", round)))
		require.NoError(t, err)
		// Generous: only a write that never returns reaches it.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		var wg sync.WaitGroup
		for g := range 16 {
			wg.Go(func() {
				do := s.wr.do
				if g%4 == 0 {
					do = s.wr.doUrgent
				}
				for {
					err := do(ctx, func(*tx) error { return nil })
					if errors.Is(err, ErrClosed) || ctx.Err() != nil {
						return
					}
					require.NoError(t, err)
				}
			})
		}
		runtime.Gosched()
		require.NoError(t, s.Close())
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("round %d: a write racing Close never returned", round)
		}
		cancel()
	}
}

// A write that enters the writer while Close runs, and goes on only once
// Close returned, still returns (ErrClosed) rather than being queued after
// the writer's last drain.
func TestWriterWriteEnteringDuringClose(t *testing.T) {
	t.Parallel()
	for round := range 20 {
		s, err := Open(t.Context(), filepath.Join(t.TempDir(), fmt.Sprintf("jobd%d.db", round)))
		require.NoError(t, err)
		entered, proceed := make(chan struct{}), make(chan struct{})
		s.wr.queueHook = func() { close(entered); <-proceed }
		// Generous: only a write that never returns reaches it.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		res := make(chan error, 1)
		urgent := round%2 == 1
		go func() {
			if urgent {
				res <- s.wr.doUrgent(ctx, func(*tx) error { return nil })
			} else {
				res <- s.wr.do(ctx, func(*tx) error { return nil })
			}
		}()
		<-entered
		require.NoError(t, s.Close())
		close(proceed)
		select {
		case err := <-res:
			require.ErrorIs(t, err, ErrClosed)
		case <-ctx.Done():
			t.Fatalf("round %d: a write entering during Close never returned", round)
		}
		cancel()
	}
}
