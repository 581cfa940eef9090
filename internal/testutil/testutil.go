// Package testutil holds helpers shared by jobd's tests: a real, migrated
// SQLite store in t.TempDir() and a slog logger that writes to t.Log.
package testutil

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jobd/jobd/store"
	"github.com/jobd/jobd/store/sqlite"
)

// NewStore opens a fresh, migrated SQLite store in t.TempDir() and closes
// it when the test ends.
func NewStore(t testing.TB, opts ...sqlite.Option) store.Store {
	t.Helper()
	return NewSQLiteStore(t, opts...)
}

// NewSQLiteStore is NewStore returning the concrete *sqlite.Store, for
// tests that need its path (to reopen it, say).
func NewSQLiteStore(t testing.TB, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	// Not t.Context(): it is cancelled before Cleanup runs, and Open's ctx
	// only bounds the open itself.
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "jobd.db"), opts...)
	if err != nil {
		t.Fatalf("open test store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close test store: %v", err)
		}
	})
	return s
}

// Logger returns a logger that writes text records, debug level and up, to
// t.Log, so they show with the test that logged them (and only when it
// fails or runs with -v). Records logged after the test ended are dropped
// rather than panicking.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.LevelDebug,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// The test log has its own timing; drop the time for readability.
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		},
	}))
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Helper()
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.done = true
}
