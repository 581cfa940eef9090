package schedule

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func mustParse(t *testing.T, s Spec) Schedule {
	t.Helper()
	sch, err := Parse(s)
	require.NoError(t, err)
	return sch
}

func TestEvery_Next(t *testing.T) {
	t.Parallel()
	anchor := time.Date(2026, 1, 1, 8, 10, 0, 0, time.UTC)
	tests := []struct {
		name     string
		every    time.Duration
		anchor   time.Time
		at, want string
	}{
		{"BetweenGridPoints", time.Hour, anchor, "2026-01-01T09:47:00Z", "2026-01-01T10:10:00Z"},
		{"AtGridPointReturnsFollowing", time.Hour, anchor, "2026-01-01T10:10:00Z", "2026-01-01T11:10:00Z"},
		{"JustBeforeGridPoint", time.Hour, anchor, "2026-01-01T10:09:59.999999999Z", "2026-01-01T10:10:00Z"},
		{"JustAfterGridPoint", time.Hour, anchor, "2026-01-01T10:10:00.000000001Z", "2026-01-01T11:10:00Z"},
		{"BeforeAnchorNegativeK", time.Hour, anchor, "2020-06-01T00:00:00Z", "2020-06-01T00:10:00Z"},
		{"FarFuture", time.Hour, anchor, "2226-01-01T08:11:00Z", "2226-01-01T09:10:00Z"},
		{"DefaultAnchorEpoch", time.Hour, time.Time{}, "2026-01-01T09:47:00Z", "2026-01-01T10:00:00Z"},
		{"Milliseconds", 1500 * time.Millisecond, time.Time{}, "1970-01-01T00:00:00.2Z", "1970-01-01T00:00:01.5Z"},
		{"OddIntervalExactArithmetic", 7*time.Second + 3*time.Millisecond, anchor,
			"2026-01-02T08:10:00Z", "2026-01-02T08:10:03.014Z"}, // 12338 * 7.003s = 1d + 3.014s
		{"AnchorZoneIrrelevant", time.Hour, time.Date(2026, 1, 1, 9, 10, 0, 0, time.FixedZone("X", 3600)),
			"2026-01-01T09:47:00Z", "2026-01-01T10:10:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustParse(t, Spec{Every: tt.every, Anchor: tt.anchor})
			next, ok := s.Next(utc(t, tt.at))
			require.True(t, ok)
			require.Equal(t, utc(t, tt.want), next)
			require.Equal(t, time.UTC, next.Location())
		})
	}
}

func TestEvery_Prev(t *testing.T) {
	t.Parallel()
	anchor := time.Date(2026, 1, 1, 8, 10, 0, 0, time.UTC)
	tests := []struct {
		name, at, want string
	}{
		{"AtGridPointReturnsPreceding", "2026-01-01T10:10:00Z", "2026-01-01T09:10:00Z"},
		{"SubMillisecondAfterGridPoint", "2026-01-01T10:10:00.0000001Z", "2026-01-01T10:10:00Z"},
		{"BetweenGridPoints", "2026-01-01T09:47:00Z", "2026-01-01T09:10:00Z"},
		{"BeforeAnchor", "2025-12-31T23:00:00Z", "2025-12-31T22:10:00Z"},
		{"BeforeCalendar", "0001-01-01T00:00:00Z", ""},
	}
	s := mustParse(t, Spec{Every: time.Hour, Anchor: anchor})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prev, ok := Prev(s, utc(t, tt.at))
			if tt.want == "" {
				require.False(t, ok)
				return
			}
			require.True(t, ok)
			require.Equal(t, utc(t, tt.want), prev)
		})
	}
}

// TestEvery_GridIsFixed checks that fire times are anchor + k*interval
// whatever time they are computed from, and that Times counts exactly.
func TestEvery_GridIsFixed(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 9))
	for range 200 {
		interval := time.Duration(1000+rng.Int64N(10_000_000)) * time.Millisecond
		anchor := time.UnixMilli(rng.Int64N(4_000_000_000_000)).UTC()
		s := mustParse(t, Spec{Every: interval, Anchor: anchor}).(EverySchedule)
		at := time.UnixMilli(rng.Int64N(4_000_000_000_000)).Add(time.Duration(rng.Int64N(1e6)))
		next, ok := s.Next(at)
		require.True(t, ok)
		require.True(t, next.After(at))
		require.Zero(t, next.Sub(anchor)%interval, "off grid")
		require.False(t, next.Add(-interval).After(at), "skipped a grid point")

		prev, ok := s.Prev(next)
		require.True(t, ok)
		require.Equal(t, next.Add(-interval), prev)

		span := time.Duration(rng.Int64N(50)) * interval / 7
		times, count := Times(s, at, at.Add(span), 1000)
		require.Equal(t, int64(len(times)), count)
		var want []time.Time
		for g := next; !g.After(at.Add(span)); g = g.Add(interval) {
			want = append(want, g)
		}
		require.Equal(t, want, times)
	}
}

func TestEvery_TimesIsArithmetic(t *testing.T) {
	t.Parallel()
	s := mustParse(t, Spec{Every: time.Second})
	after := utc(t, "2000-01-01T00:00:00Z")
	until := utc(t, "2100-01-01T00:00:00Z")
	times, count := Times(s, after, until, 3)
	require.Equal(t, int64(until.Sub(after)/time.Second), count)
	require.Equal(t, []time.Time{after.Add(time.Second), after.Add(2 * time.Second), after.Add(3 * time.Second)}, times)

	_, count = Times(s, until, after, 3)
	require.Zero(t, count)
	_, count = Times(s, after, after.Add(999*time.Millisecond), 3)
	require.Zero(t, count)
	_, count = Times(s, after.Add(-time.Nanosecond), after, 3)
	require.Equal(t, int64(1), count)
}

func TestEvery_HandBuilt(t *testing.T) {
	t.Parallel()
	_, ok := EverySchedule{Interval: time.Microsecond}.Next(time.Now())
	require.False(t, ok, "sub-millisecond interval has no fire times")
	next, ok := EverySchedule{Interval: time.Hour}.Next(utc(t, "2026-01-01T09:47:00Z"))
	require.True(t, ok, "zero anchor is the epoch")
	require.Equal(t, utc(t, "2026-01-01T10:00:00Z"), next)
	require.Equal(t, "every 1h0m0s from 1970-01-01T00:00:00.000Z", EverySchedule{Interval: time.Hour}.String())
}

func TestAt(t *testing.T) {
	t.Parallel()
	at := utc(t, "2026-05-01T10:00:00.123Z")
	s := mustParse(t, Spec{At: at.Add(456 * time.Microsecond)})
	tests := []struct {
		name     string
		t        time.Time
		wantNext bool
		wantPrev bool
	}{
		{"Before", at.Add(-time.Hour), true, false},
		{"JustBefore", at.Add(-time.Nanosecond), true, false},
		{"Exact", at, false, false},
		{"After", at.Add(time.Nanosecond), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			next, ok := s.Next(tt.t)
			require.Equal(t, tt.wantNext, ok)
			if ok {
				require.Equal(t, at, next)
			}
			prev, ok := Prev(s, tt.t)
			require.Equal(t, tt.wantPrev, ok)
			if ok {
				require.Equal(t, at, prev)
			}
		})
	}
	times, count := Times(s, at.Add(-time.Hour), at, 10)
	require.Equal(t, []time.Time{at}, times)
	require.Equal(t, int64(1), count)
	times, count = Times(s, at, at.Add(time.Hour), 10)
	require.Empty(t, times)
	require.Zero(t, count)
}

func TestDelay(t *testing.T) {
	t.Parallel()
	s := mustParse(t, Spec{Delay: 30 * time.Second})
	d, ok := s.(DelaySchedule)
	require.True(t, ok)
	finish := time.Date(2026, 1, 1, 9, 0, 0, 123456789, time.FixedZone("X", 3600))
	require.Equal(t, utc(t, "2026-01-01T08:00:30.123Z"), d.After(finish))
	_, ok = s.Next(finish)
	require.False(t, ok)
	_, ok = Prev(s, finish)
	require.False(t, ok)
	times, count := Times(s, finish, finish.Add(time.Hour), 10)
	require.Empty(t, times)
	require.Zero(t, count)
}

func TestManual(t *testing.T) {
	t.Parallel()
	s := mustParse(t, Spec{Kind: KindManual})
	_, ok := s.Next(time.Time{})
	require.False(t, ok)
	_, ok = Prev(s, time.Now())
	require.False(t, ok)
	_, count := Times(s, time.Time{}, time.Now(), 10)
	require.Zero(t, count)
}
