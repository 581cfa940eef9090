package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Checkpoints. The writer connection never checkpoints by itself
// (wal_autocheckpoint is 0 on it): a checkpoint copies the WAL into the
// database file and syncs it, and every write queued behind the writer
// would wait for it. A goroutine checkpoints instead, every
// checkpointEvery, on a connection of its own and in PASSIVE mode, which
// neither waits for nor blocks the writer or the readers. The writer
// starts the WAL over at its next transaction only if everything in it was
// copied by then, which under steady writes a checkpoint running beside
// them never achieves; so once the WAL holds walRestartFrames, passive
// checkpoints run back to back until few frames are left to copy, and a
// last one runs through the writer, between two transactions: it copies
// only those, and the next transaction starts the WAL over.
//
// That last checkpoint holds every write, fires included, for as long as
// its syncs take: measured at 6 ms at first and up to 65 ms after a
// minute at 10,000 triggers/s on the development machine (growing with the
// database, though it copies only 200 to 450 frames). So it runs rarely: at 10,000 triggers/s the WAL grows by about 75 MB/s, and a
// restart every 128 MiB (a stall every 1.7 s) put 3% of the fires behind
// one; every 512 MiB, under 1%. The cost is disk: the WAL file stays at up
// to ~512 MiB once a burst made it so.

const (
	checkpointEvery  = 250 * time.Millisecond
	walRestartFrames = 131072 // 512 MiB of 4 KiB pages
	// writerCopyFrames is about the most frames the checkpoint in the
	// writer is left to copy.
	writerCopyFrames = 256
	// stuckWarnEvery rate-limits the warning that the WAL is past
	// walRestartFrames and cannot start over.
	stuckWarnEvery = time.Minute
)

// checkpointer runs the passive checkpoints of a store.
type checkpointer struct {
	s    *Store
	db   *sql.DB // one connection, used for nothing else
	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once

	restartFrames int64               // walRestartFrames; tests lower it
	now           func() time.Time    // time.Now; tests fake it
	log           func() *slog.Logger // slog.Default; tests capture it
	lastWarn      time.Time           // of the stuck-WAL warning
}

func newCheckpointer(s *Store, db *sql.DB) *checkpointer {
	c := &checkpointer{s: s, db: db, stop: make(chan struct{}),
		restartFrames: walRestartFrames, now: time.Now, log: slog.Default}
	c.wg.Add(1)
	go c.loop()
	return c
}

func (c *checkpointer) close() error {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
	return c.db.Close()
}

func (c *checkpointer) loop() {
	defer c.wg.Done()
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		c.tick(context.Background())
	}
}

// tick runs one round of checkpoints. A passive checkpoint failing now and
// then is no news (logged at Debug); the WAL past restartFrames and still
// not all copied after the checkpoint in the writer is: it cannot start
// over and keeps growing (a reader holding an old snapshot, a failing
// disk), which is logged at Warn, at most once per stuckWarnEvery.
func (c *checkpointer) tick(ctx context.Context) {
	frames, left, err := checkpoint(ctx, c.db)
	if err != nil {
		c.log().Debug("checkpoint", "path", c.s.path, "err", err)
		return
	}
	if frames < c.restartFrames {
		return
	}
	for i := 0; i < 8 && left > writerCopyFrames && err == nil; i++ {
		_, left, err = checkpoint(ctx, c.db)
	}
	if err != nil {
		c.log().Debug("checkpoint", "path", c.s.path, "err", err)
	}
	err = c.s.wr.doRaw(ctx, func(ctx context.Context, db *sql.DB) error {
		var err error
		frames, left, err = checkpoint(ctx, db)
		return err
	})
	if (err == nil && left == 0) || errors.Is(err, ErrClosed) {
		return
	}
	c.log().Debug("checkpoint in the writer", "path", c.s.path, "frames", frames, "left", left, "err", err)
	if now := c.now(); c.lastWarn.IsZero() || now.Sub(c.lastWarn) >= stuckWarnEvery {
		c.lastWarn = now
		c.log().Warn("WAL is past its restart size and cannot start over; it keeps growing until a checkpoint copies all of it",
			"path", c.s.path, "frames", frames, "left", left, "restart_frames", c.restartFrames, "err", err)
	}
}

// checkpoint runs a passive checkpoint on db and returns how many frames
// the WAL holds and how many of them are left to copy.
func checkpoint(ctx context.Context, db *sql.DB) (frames, left int64, err error) {
	var busy, done int64
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &done); err != nil {
		return 0, 0, fmt.Errorf("checkpoint: %w", err)
	}
	return frames, frames - done, nil
}
