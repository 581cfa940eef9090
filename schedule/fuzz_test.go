package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzParse checks that Parse never panics, that its errors are
// *FieldError, and that a parsed schedule's Next is strictly after its
// argument, deterministic, millisecond-truncated UTC, consistent with Prev
// and with Times.
func FuzzParse(f *testing.F) {
	const hour = int64(time.Hour)
	seeds := []struct {
		kind, cron, tz           string
		every, anchor, delay, at int64 // durations in ns, times in unix ms
		t                        int64 // unix ms
	}{
		{"cron", "*/5 * * * *", "", 0, 0, 0, 0, 1767225600000},
		{"", "0 30 2 * * *", "America/New_York", 0, 0, 0, 0, 1772953200000},
		{"", "30 1 * * *", "America/New_York", 0, 0, 0, 0, 1793491200000},
		{"", "0 0 31 4 *", "", 0, 0, 0, 0, 0},
		{"", "0 0 29 2 *", "Europe/Berlin", 0, 0, 0, 0, 1767225600000},
		{"", "0 0 0 1 1 * 2030", "", 0, 0, 0, 0, 1767225600000},
		{"", "0 12 L * *", "Australia/Lord_Howe", 0, 0, 0, 0, 1767225600000},
		{"", "0 9 15W * *", "Pacific/Apia", 0, 0, 0, 0, 1325030400000},
		{"", "0 12 * * 5#2", "", 0, 0, 0, 0, -62135596800000},
		{"", "0 12 * * 5L", "", 0, 0, 0, 0, 253402300799000},
		{"", "@daily", "Mars/Base", 0, 0, 0, 0, 0},
		{"", "@every 5m", "", 0, 0, 0, 0, 0},
		{"", "1,abc * * * *", "", 0, 0, 0, 0, 0},
		{"", "0 0 * * 4-7/2", "", 0, 0, 0, 0, 0},
		{"", "0 0 0 1 1 * 1-9999/1", "", 0, 0, 0, 0, 0},
		{"every", "", "", hour, 1767255000000, 0, 0, 1767260820000},
		{"", "", "", 1500 * int64(time.Millisecond), 0, 0, 0, -1},
		{"", "", "", int64(time.Second) + 1, 0, 0, 0, 0},
		{"", "", "", hour, 0, 0, 0, 9223372036854775807},
		{"", "", "", 0, 0, 30 * int64(time.Second), 0, 0},
		{"", "", "", 0, 0, 0, 1767225600123, 1767225600000},
		{"manual", "", "", 0, 0, 0, 0, 0},
		{"weekly", "", "", 0, 0, 0, 0, 0},
		{"", "@daily", "", hour, 0, 0, 0, 0},
	}
	for _, s := range seeds {
		f.Add(s.kind, s.cron, s.tz, s.every, s.anchor, s.delay, s.at, s.t)
	}
	f.Fuzz(func(t *testing.T, kind, cron, tz string, every, anchor, delay, at, tMs int64) {
		spec := Spec{Kind: kind, Cron: cron, TZ: tz, Every: time.Duration(every), Delay: time.Duration(delay)}
		if anchor != 0 {
			spec.Anchor = time.UnixMilli(anchor)
		}
		if at != 0 {
			spec.At = time.UnixMilli(at)
		}
		s, err := Parse(spec)
		if err != nil {
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.NotEmpty(t, fe.Field)
			require.NotEmpty(t, err.Error())
			return
		}
		require.NotEmpty(t, s.String())
		ref := time.UnixMilli(tMs).Add(time.Duration(tMs%1000) * time.Microsecond)
		next, ok := s.Next(ref)
		next2, ok2 := s.Next(ref)
		require.Equal(t, ok, ok2, "Next is not deterministic")
		require.Equal(t, next, next2, "Next is not deterministic")
		if !ok {
			return
		}
		require.True(t, next.After(ref), "Next(%s) = %s", ref, next)
		require.Equal(t, time.UTC, next.Location())
		require.Zero(t, next.Nanosecond()%int(time.Millisecond), "Next(%s) = %s not truncated", ref, next)

		prev, ok := Prev(s, next)
		if ok {
			require.True(t, prev.Before(next), "Prev(%s) = %s", next, prev)
			require.False(t, prev.After(ref), "Prev(Next(%s)) = %s skips a fire", ref, prev)
		}
		times, count := Times(s, ref, next, 2)
		require.Equal(t, []time.Time{next}, times)
		require.Equal(t, int64(1), count)
	})
}
