package storetest

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/jobd/jobd/store"
)

var executorTests = []test{
	{"UpsertNewAndKnown", testExecutorUpsert},
	{"GetNotFound", testExecutorGetNotFound},
	{"ListOrder", testExecutorList},
	{"SetState", testExecutorSetState},
	{"Touch", testExecutorTouch},
}

func register(t *testing.T, s store.Store, group, name string) *store.Executor {
	t.Helper()
	e, err := s.ExecutorUpsert(ctx(t), &store.Executor{
		Group: group, Name: name, Host: name + ".local", Labels: map[string]string{"region": "eu"},
		Version: "1.0", Slots: 4, State: "online", StateSince: at(0), LastSeen: at(0), RegisteredAt: at(0),
	})
	require.NoError(t, err)
	return e
}

func testExecutorUpsert(t *testing.T, s store.Store) {
	e := register(t, s, "g", "w1")
	require.Regexp(t, regexp.MustCompile(`^[0-9a-f]{12}$`), e.ID)
	require.Equal(t, "g", e.Group)
	require.Equal(t, "w1", e.Name)
	require.Equal(t, "w1.local", e.Host)
	require.Equal(t, map[string]string{"region": "eu"}, e.Labels)
	require.Equal(t, "1.0", e.Version)
	require.Equal(t, 4, e.Slots)
	require.Equal(t, "online", e.State)
	requireTime(t, at(0), e.RegisteredAt)

	// Re-registration of the same name keeps the id and registration time.
	again, err := s.ExecutorUpsert(ctx(t), &store.Executor{
		Group: "g", Name: "w1", Host: "new-host", Labels: map[string]string{"region": "us", "gpu": "1"},
		Version: "1.1", Slots: 8, State: "online", StateSince: at(5), LastSeen: at(6), RegisteredAt: at(5),
	})
	require.NoError(t, err)
	require.Equal(t, e.ID, again.ID)
	requireTime(t, at(0), again.RegisteredAt)
	got, err := s.ExecutorGet(ctx(t), e.ID)
	require.NoError(t, err)
	require.Equal(t, "new-host", got.Host)
	require.Equal(t, map[string]string{"region": "us", "gpu": "1"}, got.Labels)
	require.Equal(t, "1.1", got.Version)
	require.Equal(t, 8, got.Slots)
	requireTime(t, at(5), got.StateSince)
	requireTime(t, at(6), got.LastSeen)

	// The same name in another group is another executor.
	other := register(t, s, "h", "w1")
	require.NotEqual(t, e.ID, other.ID)

	// No labels reads back as an empty set, defaults fill the rest.
	bare, err := s.ExecutorUpsert(ctx(t), &store.Executor{Group: "g", Name: "bare"})
	require.NoError(t, err)
	require.Empty(t, bare.Labels)
	require.False(t, bare.LastSeen.IsZero())
	require.False(t, bare.RegisteredAt.IsZero())
}

func testExecutorGetNotFound(t *testing.T, s store.Store) {
	_, err := s.ExecutorGet(ctx(t), "nope")
	require.ErrorIs(t, err, store.ErrNotFound)
}

func testExecutorList(t *testing.T, s store.Store) {
	register(t, s, "b", "z")
	register(t, s, "a", "y")
	register(t, s, "b", "a")
	register(t, s, "a", "x")
	list, err := s.ExecutorList(ctx(t))
	require.NoError(t, err)
	var got []string
	for _, e := range list {
		got = append(got, e.Group+"/"+e.Name)
	}
	require.Equal(t, []string{"a/x", "a/y", "b/a", "b/z"}, got)
}

func testExecutorSetState(t *testing.T, s store.Store) {
	e := register(t, s, "g", "w")
	require.NoError(t, s.ExecutorSetState(ctx(t), e.ID, "draining", at(10)))
	got, err := s.ExecutorGet(ctx(t), e.ID)
	require.NoError(t, err)
	require.Equal(t, "draining", got.State)
	requireTime(t, at(10), got.StateSince)
	require.ErrorIs(t, s.ExecutorSetState(ctx(t), "missing", "offline", at(11)), store.ErrNotFound)
}

func testExecutorTouch(t *testing.T, s store.Store) {
	a := register(t, s, "g", "a")
	b := register(t, s, "g", "b")
	c := register(t, s, "g", "c")
	require.NoError(t, s.ExecutorTouch(ctx(t), []string{a.ID, b.ID, "unknown"}, at(30)))
	for _, tc := range []struct {
		id   string
		want int
	}{{a.ID, 30}, {b.ID, 30}, {c.ID, 0}} {
		got, err := s.ExecutorGet(ctx(t), tc.id)
		require.NoError(t, err)
		requireTime(t, at(tc.want), got.LastSeen)
	}
}
