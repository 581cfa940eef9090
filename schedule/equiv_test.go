package schedule

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/adhocore/gronx"
	"github.com/stretchr/testify/require"
)

// equivExprs exercises every kind of segment gronx knows.
var equivExprs = []string{
	"* * * * *",
	"*/5 * * * *",
	"0 */2 * * *",
	"15,45 9-17 * * 1-5",
	"0 0 1 * *",
	"0 0 31 * *",
	"0 0 29 2 *",
	"0 12 L * *",
	"0 12 15W * *",
	"0 12 1W * *",
	"0 12 31W * *",
	"0 12 * * 5L",
	"0 12 * * 5#2",
	"0 12 * * 0#5",
	"0 12 * * 7",
	"0 12 13 * 5",
	"0 12 */10 * 1",
	"0 12 * * */2",
	"0 12 1-7 * 1",
	"0 0 * JAN,JUL MON-FRI",
	"30 4 1,15 * SUN",
	"0 0 * * 4-7",
	"0 0 * * 7-2",
	"0 0 * * 4-7/2",
	"* * * * * *",
	"*/15 * * * * *",
	"5-10/2 */7 3 * * *",
	"0 0 0 1 1 * 2030",
	"0 0 12 * * ? 2027-2029",
	"0 30 6 L 2 * */4",
	"0 0 0 29 2 * 2028,2032",
}

// TestMatcher_GronxEquivalence proves the compiled matcher (bit sets plus
// cached day masks) agrees with gronx, the source of truth, on what
// matches, and that Next/Prev agree with gronx's NextTickAfter and
// PrevTickBefore wherever gronx finds an answer.
func TestMatcher_GronxEquivalence(t *testing.T) {
	t.Parallel()
	for _, expr := range equivExprs {
		t.Run(expr, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(Spec{Kind: KindCron, Cron: expr})
			require.NoError(t, err)
			c := s.(*CronSchedule)
			g := gronx.New()
			rng := rand.New(rand.NewPCG(1, uint64(len(expr))))
			lo := time.Date(1995, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
			hi := time.Date(2045, 1, 1, 0, 0, 0, 0, time.UTC).Unix()

			// Every day of 2024-2028, at the first time of day that could match.
			tod := time.Duration(c.m.firstSec)*time.Second + time.Duration(c.m.firstMin)*time.Minute
			if h, ok := nextBit(c.m.hours, 0); ok {
				tod += time.Duration(h) * time.Hour
			}
			for d := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC); d.Year() < 2029; d = d.AddDate(0, 0, 1) {
				at := d.Add(tod)
				due, err := g.IsDue(expr, at)
				require.NoError(t, err)
				require.Equal(t, due, c.m.wallMatches(at.Unix()), "IsDue at %s", at)
			}

			// Random instants, and the fire times around them.
			compared, comparedPrev := 0, 0
			for range 120 {
				at := time.Unix(lo+rng.Int64N(hi-lo), 0).UTC()
				due, err := g.IsDue(expr, at)
				require.NoError(t, err)
				require.Equal(t, due, c.m.wallMatches(at.Unix()), "IsDue at %s", at)

				next, ok := c.Next(at)
				if ok {
					due, err := g.IsDue(expr, next)
					require.NoError(t, err)
					require.True(t, due, "Next(%s) = %s does not match in gronx", at, next)
				}
				if want, err := gronx.NextTickAfter(expr, at, false); err == nil {
					compared++
					require.True(t, ok, "Next(%s): none, gronx says %s", at, want)
					require.Equal(t, want.UTC(), next, "Next(%s)", at)
				}

				prev, ok := c.Prev(at)
				if ok {
					due, err := g.IsDue(expr, prev)
					require.NoError(t, err)
					require.True(t, due, "Prev(%s) = %s does not match in gronx", at, prev)
				}
				if want, err := gronx.PrevTickBefore(expr, at, false); err == nil && ok {
					comparedPrev++
					require.Equal(t, want.UTC(), prev, "Prev(%s)", at)
				}
			}
			require.Positive(t, compared, "gronx answered no Next")
			require.Positive(t, comparedPrev, "gronx answered no Prev")
		})
	}
}

// TestMatcher_SecondBySecond compares every second of short windows (across
// a month end) with gronx, for expressions with a seconds field.
func TestMatcher_SecondBySecond(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, start string
		dur         time.Duration
	}{
		{"* * * * * *", "2026-01-31T23:30:00Z", time.Hour},
		{"*/15 * * * * *", "2026-01-31T23:30:00Z", time.Hour},
		{"5-10/2 */7 11 * * *", "2026-01-31T10:50:00Z", 80 * time.Minute},
		{"0 0 12 L * *", "2026-01-31T11:30:00Z", time.Hour},
		{"*/20 * 23 * * 6L", "2026-01-31T22:50:00Z", 80 * time.Minute}, // Jan 31 is the last Saturday
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			c := mustCron(t, tt.expr, "")
			g := gronx.New()
			start := utc(t, tt.start)
			prev, matches := start.Add(-time.Second), 0
			for at := start; at.Before(start.Add(tt.dur)); at = at.Add(time.Second) {
				due, err := g.IsDue(tt.expr, at)
				require.NoError(t, err)
				require.Equal(t, due, c.m.wallMatches(at.Unix()), "IsDue at %s", at)
				if due {
					next, ok := c.Next(prev)
					require.True(t, ok)
					require.Equal(t, at, next, "Next(%s)", prev)
					prev = at
					matches++
				}
			}
			require.Positive(t, matches)
		})
	}
}

// TestMatcher_MonthShapes checks the claim possible() rests on: 2001-2040
// holds every (length, weekday of the 1st) shape of every month.
func TestMatcher_MonthShapes(t *testing.T) {
	t.Parallel()
	for m := 1; m <= 12; m++ {
		seen := map[[2]int]bool{}
		for y := 2001; y <= 2040; y++ {
			seen[[2]int{daysIn(y, m), weekdayOf(monthStart(y, m))}] = true
		}
		want := 7
		if m == 2 {
			want = 14
		}
		require.Len(t, seen, want, "month %d", m)
	}
}

// TestCalendar_Civil checks the date arithmetic against package time.
func TestCalendar_Civil(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Time{
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(1600, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(1969, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(2100, 3, 1, 0, 0, 0, 0, time.UTC),
		time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
	} {
		day := floorDiv(d.Unix(), secondsPerDay)
		require.Equal(t, day, daysFromCivil(d.Year(), int(d.Month()), d.Day()), "%s", d)
		y, m, dd := civilFromDays(day)
		require.Equal(t, []int{d.Year(), int(d.Month()), d.Day()}, []int{y, m, dd}, "%s", d)
		require.Equal(t, int(d.Weekday()), weekdayOf(day), "%s", d)
	}
}
