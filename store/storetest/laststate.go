package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var lastStateTests = []test{
	{"NewestRunPerJob", testRunLastStates},
}

func testRunLastStates(t *testing.T, s store.Store) {
	got, err := s.RunLastStates(ctx(t), nil)
	require.NoError(t, err)
	require.Empty(t, got)

	runs := []*store.Run{
		{JobID: 1, JobName: "a", Attempt: 1, State: store.RunFailed},
		{JobID: 2, JobName: "b", Attempt: 1, State: store.RunSucceeded},
		{JobID: 1, JobName: "a", Attempt: 2, State: store.RunRunning},
		{JobID: 2, JobName: "b", Attempt: 1, State: store.RunLost},
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	got, err = s.RunLastStates(ctx(t), []string{"a", "b", "none"})
	require.NoError(t, err)
	require.Equal(t, map[string]string{"a": store.RunRunning, "b": store.RunLost}, got,
		"the newest run counts; a job without runs is absent")

	ok, err := s.RunsTransition(ctx(t), []store.RunTransition{{RunID: runs[2].ID, From: []string{store.RunRunning}, To: store.RunSucceeded}})
	require.NoError(t, err)
	require.Equal(t, []bool{true}, ok)
	got, err = s.RunLastStates(ctx(t), []string{"a"})
	require.NoError(t, err)
	require.Equal(t, store.RunSucceeded, got["a"], "a transition shows at once")
}
