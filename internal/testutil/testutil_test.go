package testutil_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/internal/testutil"
	"github.com/jobd/jobd/store"
)

func TestNewStore(t *testing.T) {
	t.Parallel()
	s := testutil.NewStore(t)
	require.Equal(t, "sqlite", s.Driver())
	j, err := s.JobCreate(t.Context(), &store.Job{Name: "a", Group: "g"})
	require.NoError(t, err)
	got, err := s.JobGet(t.Context(), "a")
	require.NoError(t, err)
	require.Equal(t, j.ID, got.ID)

	other := testutil.NewStore(t)
	_, err = other.JobGet(t.Context(), "a")
	require.ErrorIs(t, err, store.ErrNotFound, "each store is its own file")
}

func TestLogger(t *testing.T) {
	t.Parallel()
	log := testutil.Logger(t)
	log.Debug("hello", "job", "a")
	log.With("k", 1).Info("with attrs")
}

func TestLogger_AfterTestEnds(t *testing.T) {
	t.Parallel()
	var log interface{ Info(string, ...any) }
	t.Run("inner", func(t *testing.T) {
		l := testutil.Logger(t)
		l.Info("during")
		log = l
	})
	log.Info("after: dropped, no panic")
}
