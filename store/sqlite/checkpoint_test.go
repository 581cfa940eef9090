package sqlite

import (
	"bytes"
	"database/sql"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

// A WAL past its restart size that a checkpoint cannot copy all of (here a
// reader holds an old snapshot) is logged at Warn, once per stuckWarnEvery.
func TestCheckpointWarnsWhenWALCannotRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "jobd.db")
	s, err := Open(t.Context(), path)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx := t.Context()

	db, err := sql.Open("sqlite", path+"?_pragma=busy_timeout(5000)")
	require.NoError(t, err)
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { require.NoError(t, db.Close()) })

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &checkpointer{s: s, db: db, restartFrames: 1,
		now: func() time.Time { return clock }, log: func() *slog.Logger { return logger }}
	warns := func() int { return strings.Count(logs.String(), "level=WARN") }

	// Copied to the end: no warning.
	_, err = s.JobCreate(ctx, &store.Job{Name: "a", Group: "g"})
	require.NoError(t, err)
	c.tick(ctx)
	require.Zero(t, warns(), logs.String())

	// A reader pins a snapshot; frames written after it cannot be copied.
	rtx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	require.NoError(t, err)
	defer rtx.Rollback() //nolint:errcheck // read-only
	var n int
	require.NoError(t, rtx.QueryRowContext(ctx, "SELECT count(*) FROM jobs").Scan(&n))
	_, err = s.JobCreate(ctx, &store.Job{Name: "b", Group: "g"})
	require.NoError(t, err)

	c.tick(ctx)
	require.Equal(t, 1, warns(), logs.String())
	c.tick(ctx)
	require.Equal(t, 1, warns(), "rate-limited: %s", logs.String())
	clock = clock.Add(stuckWarnEvery)
	c.tick(ctx)
	require.Equal(t, 2, warns(), logs.String())
}
