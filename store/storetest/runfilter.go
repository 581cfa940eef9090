package storetest

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var runFilterTests = []test{
	{"LastStates", testRunLastStates},
	{"ListByExecutor", testRunListByExecutor},
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

func testRunListByExecutor(t *testing.T, s store.Store) {
	var runs []*store.Run
	for i := range 10 {
		runs = append(runs, &store.Run{JobID: 1, JobName: "a", Attempt: 1, ExecutorID: []string{"e1", "e2", ""}[i%3]})
	}
	require.NoError(t, s.RunInsert(ctx(t), runs))
	got, err := s.RunList(ctx(t), store.RunListParams{ExecutorID: "e2", Limit: 2})
	require.NoError(t, err)
	require.Len(t, got, 2)
	require.Equal(t, []int64{runs[7].ID, runs[4].ID}, []int64{got[0].ID, got[1].ID}, "newest first")
	got, err = s.RunList(ctx(t), store.RunListParams{ExecutorID: "e2", Before: runs[4].ID})
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, runs[1].ID, got[0].ID)
	got, err = s.RunList(ctx(t), store.RunListParams{ExecutorID: "nobody"})
	require.NoError(t, err)
	require.Empty(t, got)
}
