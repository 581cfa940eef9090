package daemon

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRoute(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	e := func(id string) *execEntry { return &execEntry{id: id} }
	a, b, c := e("a"), e("b"), e("c")
	cands := []candidate{
		{e: a, free: 1, uses: 2, lastUsed: t0.Add(3 * time.Second)},
		{e: b, free: 3, uses: 0, lastUsed: time.Time{}},
		{e: c, free: 0, uses: 0, lastUsed: t0},
	}
	one := func(strategy string, rr uint64) string {
		t.Helper()
		got := route(strategy, "job", cands, rr)
		require.Len(t, got, 1, strategy)
		return got[0].id
	}
	require.Equal(t, "a", one("first", 0))
	require.Equal(t, "b", one("last", 0), "c has no free slot")
	require.Equal(t, "a", one("round_robin", 0))
	require.Equal(t, "b", one("round_robin", 1))
	require.Equal(t, "a", one("round_robin", 2))
	require.Equal(t, "b", one("least_frequently_used", 0), "fewest runs of this job among those with a free slot")
	require.Equal(t, "b", one("least_recently_used", 0), "never used beats used")
	require.Equal(t, "b", one("busyover", 0), "most free slots")
	require.Equal(t, "a", one("failover", 0))
	require.Equal(t, one("consistent_hash", 0), one("consistent_hash", 7), "the same job keeps its executor")
	require.Contains(t, []string{"a", "b"}, one("random", 0))
	require.Len(t, route("sharding_broadcast", "job", cands, 0), 3, "every candidate, free slot or not")
	require.Nil(t, route("first", "job", []candidate{{e: c, free: 0}}, 0), "no free slot: the run waits")
}
