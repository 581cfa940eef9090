package storetest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var scriptTests = []test{
	{"Versions", testScriptVersions},
}

func testScriptVersions(t *testing.T, s store.Store) {
	j := createJob(t, s, "scripted", at(0))
	v, err := s.ScriptSave(ctx(t), j.ID, "echo one", at(1))
	require.NoError(t, err)
	require.Equal(t, 1, v)
	v, err = s.ScriptSave(ctx(t), j.ID, "echo one", at(2))
	require.NoError(t, err)
	require.Equal(t, 1, v, "the same source is not a new version")
	for i := 2; i <= store.ScriptVersionsKept+5; i++ {
		v, err = s.ScriptSave(ctx(t), j.ID, fmt.Sprintf("echo %d", i), at(i))
		require.NoError(t, err)
		require.Equal(t, i, v)
	}
	list, err := s.ScriptList(ctx(t), j.ID)
	require.NoError(t, err)
	require.Len(t, list, store.ScriptVersionsKept, "only the newest versions are kept")
	require.Equal(t, store.ScriptVersionsKept+5, list[0].Version)
	require.Empty(t, list[0].Source, "lists carry no source")
	got, err := s.ScriptGet(ctx(t), j.ID, list[0].Version)
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("echo %d", store.ScriptVersionsKept+5), got.Source)
	require.Len(t, got.SHA256, 64)
	_, err = s.ScriptGet(ctx(t), j.ID, 1)
	require.ErrorIs(t, err, store.ErrNotFound, "old versions are dropped")
	_, err = s.ScriptSave(ctx(t), 987654, "x", at(1))
	require.ErrorIs(t, err, store.ErrNotFound)
}
