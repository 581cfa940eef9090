package schedule

import (
	"testing"
	"time"
	_ "time/tzdata" // tests must not depend on the machine's zoneinfo

	"github.com/adhocore/gronx"
	"github.com/stretchr/testify/require"
)

// utc parses an RFC 3339 time for test tables.
func utc(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339, s)
	require.NoError(t, err)
	return v.UTC()
}

// mustCron parses a cron schedule for tests.
func mustCron(t *testing.T, expr, tz string) *CronSchedule {
	t.Helper()
	s, err := Parse(Spec{Kind: KindCron, Cron: expr, TZ: tz})
	require.NoError(t, err)
	return s.(*CronSchedule)
}

// 2026 transitions: New York springs forward on Mar 8 at 02:00 EST (07:00Z)
// and falls back on Nov 1 at 02:00 EDT (06:00Z); Berlin springs forward on
// Mar 29 at 02:00 CET (01:00Z) and falls back on Oct 25 at 03:00 CEST
// (01:00Z). Wants are written with the local wall time in the comment.
func TestCron_DST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tz, expr, from string
		want                 []string
	}{
		{
			name: "SpringGapDailyFiresAtGapEnd", tz: "America/New_York", expr: "30 2 * * *",
			from: "2026-03-07T00:00:00Z",
			want: []string{
				"2026-03-07T07:30:00Z", // 02:30 EST
				"2026-03-08T07:00:00Z", // 02:30 does not exist: 03:00 EDT, same day
				"2026-03-09T06:30:00Z", // 02:30 EDT
			},
		},
		{
			name: "FallBackDailyFiresOnce", tz: "America/New_York", expr: "30 1 * * *",
			from: "2026-10-31T00:00:00Z",
			want: []string{
				"2026-10-31T05:30:00Z", // 01:30 EDT
				"2026-11-01T05:30:00Z", // 01:30 EDT, the first of two
				"2026-11-02T06:30:00Z", // 01:30 EST; not 2026-11-01T06:30Z
			},
		},
		{
			name: "FallBackHourlyFiresEachRealHour", tz: "America/New_York", expr: "0 * * * *",
			from: "2026-11-01T03:30:00Z",
			want: []string{
				"2026-11-01T04:00:00Z", // 00:00 EDT
				"2026-11-01T05:00:00Z", // 01:00 EDT
				"2026-11-01T06:00:00Z", // 01:00 EST
				"2026-11-01T07:00:00Z", // 02:00 EST
				"2026-11-01T08:00:00Z", // 03:00 EST
			},
		},
		{
			name: "SpringHourlySkipsMissingHour", tz: "America/New_York", expr: "0 * * * *",
			from: "2026-03-08T05:30:00Z",
			want: []string{
				"2026-03-08T06:00:00Z", // 01:00 EST
				"2026-03-08T07:00:00Z", // 03:00 EDT, one real hour later
				"2026-03-08T08:00:00Z", // 04:00 EDT
			},
		},
		{
			name: "SpringHalfPastEveryHourSkipsMissingHalf", tz: "America/New_York", expr: "30 * * * *",
			from: "2026-03-08T06:00:00Z",
			want: []string{
				"2026-03-08T06:30:00Z", // 01:30 EST
				"2026-03-08T07:30:00Z", // 03:30 EDT; 02:30 did not exist
			},
		},
		{
			name: "BerlinSpringGapTwoAM", tz: "Europe/Berlin", expr: "0 2 * * *",
			from: "2026-03-28T00:00:00Z",
			want: []string{
				"2026-03-28T01:00:00Z", // 02:00 CET
				"2026-03-29T01:00:00Z", // 03:00 CEST, first instant after the gap
				"2026-03-30T00:00:00Z", // 02:00 CEST
			},
		},
		{
			name: "BerlinSpringGapManyTimesFireOnce", tz: "Europe/Berlin", expr: "*/20 2 * * *",
			from: "2026-03-28T23:00:00Z",
			want: []string{
				"2026-03-29T01:00:00Z", // 02:00, 02:20, 02:40 fire once at 03:00 CEST
				"2026-03-30T00:00:00Z", // 02:00 CEST
				"2026-03-30T00:20:00Z",
			},
		},
		{
			name: "BerlinSpringGapAndMatchAfterFireOnce", tz: "Europe/Berlin", expr: "0,30 2,3 * * *",
			from: "2026-03-28T23:00:00Z",
			want: []string{
				"2026-03-29T01:00:00Z", // 02:00, 02:30 (gap) and 03:00 CEST: one fire
				"2026-03-29T01:30:00Z", // 03:30 CEST
				"2026-03-30T00:00:00Z", // 02:00 CEST
			},
		},
		{
			name: "BerlinFallBackRestrictedHourOnce", tz: "Europe/Berlin", expr: "*/30 2 * * *",
			from: "2026-10-24T23:00:00Z",
			want: []string{
				"2026-10-25T00:00:00Z", // 02:00 CEST
				"2026-10-25T00:30:00Z", // 02:30 CEST; the CET repeat does not fire
				"2026-10-26T01:00:00Z", // 02:00 CET
			},
		},
		{
			name: "BerlinFallBackEveryHourTwice", tz: "Europe/Berlin", expr: "*/30 * * * *",
			from: "2026-10-24T23:45:00Z",
			want: []string{
				"2026-10-25T00:00:00Z", // 02:00 CEST
				"2026-10-25T00:30:00Z", // 02:30 CEST
				"2026-10-25T01:00:00Z", // 02:00 CET
				"2026-10-25T01:30:00Z", // 02:30 CET
				"2026-10-25T02:00:00Z", // 03:00 CET
			},
		},
		{
			name: "MidnightGapDailyFiresAtOneAM", tz: "America/Havana", expr: "0 0 * * *",
			from: "2026-03-07T06:00:00Z",
			want: []string{
				"2026-03-08T05:00:00Z", // 00:00 does not exist: 01:00 CDT
				"2026-03-09T04:00:00Z", // 00:00 CDT
			},
		},
		{
			name: "HalfHourShiftLordHowe", tz: "Australia/Lord_Howe", expr: "15 2 * * *",
			from: "2026-10-02T00:00:00Z",
			want: []string{
				"2026-10-02T15:45:00Z", // Oct 3 02:15 +10:30
				"2026-10-03T15:30:00Z", // Oct 4 02:15 does not exist: 02:30 +11
				"2026-10-04T15:15:00Z", // Oct 5 02:15 +11
			},
		},
		{
			name: "FallBackAcrossMidnightSaoPaulo", tz: "America/Sao_Paulo", expr: "30 23 * * *",
			from: "2018-02-16T12:00:00Z",
			want: []string{
				"2018-02-17T01:30:00Z", // Feb 16 23:30 -02
				"2018-02-18T01:30:00Z", // Feb 17 23:30 -02, the first of two
				"2018-02-19T02:30:00Z", // Feb 18 23:30 -03
			},
		},
		{
			// Past the last listed transition Go's ZoneBounds misreports the
			// last day of leap years; the schedule must step over it.
			name: "LeapYearEndInRuleRange", tz: "Europe/Berlin", expr: "0 12 * * *",
			from: "2040-12-30T00:00:00Z",
			want: []string{
				"2040-12-30T11:00:00Z",
				"2040-12-31T11:00:00Z",
				"2041-01-01T11:00:00Z",
			},
		},
		{
			name: "RuleRangeSpringGap", tz: "America/New_York", expr: "30 2 * * *",
			from: "2100-03-13T00:00:00Z",
			want: []string{
				"2100-03-13T07:30:00Z", // 02:30 EST
				"2100-03-14T07:00:00Z", // second Sunday of March: 03:00 EDT
				"2100-03-15T06:30:00Z", // 02:30 EDT
			},
		},
		{
			name: "WholeDayGapApia", tz: "Pacific/Apia", expr: "0 12 * * *",
			from: "2011-12-29T00:00:00Z",
			want: []string{
				"2011-12-29T22:00:00Z", // Dec 29 12:00 -10
				"2011-12-30T10:00:00Z", // Dec 30 did not exist: Dec 31 00:00 +14
				"2011-12-30T22:00:00Z", // Dec 31 12:00 +14
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.expr, tt.tz)
			at := utc(t, tt.from)
			var got []time.Time
			for range tt.want {
				next, ok := s.Next(at)
				require.True(t, ok)
				got = append(got, next)
				at = next
			}
			want := make([]time.Time, len(tt.want))
			for i, w := range tt.want {
				want[i] = utc(t, w)
			}
			require.Equal(t, want, got)
			for i := 1; i < len(want); i++ {
				prev, ok := s.Prev(want[i])
				require.True(t, ok)
				require.Equal(t, want[i-1], prev, "Prev(%s)", want[i])
			}
			times, count := Times(s, utc(t, tt.from), want[len(want)-1], 100)
			require.Equal(t, want, times)
			require.Equal(t, int64(len(want)), count)
		})
	}
}

// TestCron_DSTDayCounts counts the fires of one local day.
func TestCron_DSTDayCounts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, tz, expr, day string
		want                int64
	}{
		{"HourlySpring", "America/New_York", "0 * * * *", "2026-03-08", 23},
		{"HourlyFall", "America/New_York", "0 * * * *", "2026-11-01", 25},
		{"HourlyPlain", "America/New_York", "0 * * * *", "2026-11-02", 24},
		{"FiveMinutesFall", "America/New_York", "*/5 * * * *", "2026-11-01", 25 * 12},
		{"FiveMinutesSpring", "America/New_York", "*/5 * * * *", "2026-03-08", 23 * 12},
		{"DailyGapSpring", "America/New_York", "30 2 * * *", "2026-03-08", 1},
		{"DailyRepeatFall", "America/New_York", "30 1 * * *", "2026-11-01", 1},
		{"RestrictedHoursFall", "America/New_York", "*/10 0-3 * * *", "2026-11-01", 4 * 6},
		// 02:00-02:50 do not exist and fire once at 03:00 EDT, which matches anyway.
		{"RestrictedHoursSpring", "America/New_York", "*/10 0-3 * * *", "2026-03-08", 3 * 6},
		{"RestrictedQuarterSpring", "America/New_York", "15,45 1,2 * * *", "2026-03-08", 3},
		{"SecondsFall", "Europe/Berlin", "* * * * * *", "2026-10-25", 25 * 3600},
		{"SecondsSpring", "Europe/Berlin", "* * * * * *", "2026-03-29", 23 * 3600},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.expr, tt.tz)
			day, err := time.ParseInLocation(time.DateOnly, tt.day, s.Location())
			require.NoError(t, err)
			end := day.AddDate(0, 0, 1)
			times, count := Times(s, day.Add(-time.Second), end.Add(-time.Second), 1<<20)
			require.Equal(t, tt.want, count)
			require.Len(t, times, int(tt.want))
		})
	}
}

// transitions returns the instants in [from, to) where loc's UTC offset
// changes, probing hourly (enough for real zones).
func transitions(loc *time.Location, from, to time.Time) []time.Time {
	var out []time.Time
	_, off := from.In(loc).Zone()
	for at := from; at.Before(to); at = at.Add(time.Hour) {
		if _, o := at.In(loc).Zone(); o != off {
			lo := at.Add(-time.Hour)
			for at.Sub(lo) > time.Second {
				mid := lo.Add(at.Sub(lo) / 2).Truncate(time.Second)
				if _, o := mid.In(loc).Zone(); o == off {
					lo = mid
				} else {
					at = mid
				}
			}
			out = append(out, at.UTC())
			off = o
		}
	}
	return out
}

// TestCron_DSTProperties checks, around real transitions in several zones,
// that Next, Prev and Times agree with each other, that times increase,
// that Times' arithmetic count equals the listed times, and that each fire
// is a gronx match at its local wall time or a gap's end.
func TestCron_DSTProperties(t *testing.T) {
	t.Parallel()
	zones := []struct {
		tz         string
		from, to   string
		wantWindow int
	}{
		{"America/New_York", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 2},
		{"Europe/Berlin", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 2},
		{"Australia/Lord_Howe", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 2},
		{"America/Havana", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z", 2},
		{"America/Sao_Paulo", "2018-01-01T00:00:00Z", "2019-01-01T00:00:00Z", 2},
		{"Pacific/Apia", "2011-12-01T00:00:00Z", "2012-01-01T00:00:00Z", 1},
	}
	exprs := []string{
		"* * * * *", "*/7 * * * *", "0 * * * *", "30 2 * * *", "30 1 * * *",
		"0 0 * * *", "30 23 * * *", "*/10 0-3 * * *", "15,45 1,2,3 * * *", "0 0,2 * * 0",
		"*/20 * * * * *",
	}
	for _, z := range zones {
		loc, err := time.LoadLocation(z.tz)
		require.NoError(t, err)
		trs := transitions(loc, utc(t, z.from), utc(t, z.to))
		require.Len(t, trs, z.wantWindow, "%s transitions", z.tz)
		for _, expr := range exprs {
			t.Run(z.tz+"/"+expr, func(t *testing.T) {
				t.Parallel()
				s := mustCron(t, expr, z.tz)
				g := gronx.New()
				for _, tr := range trs {
					reach := 30 * time.Hour
					if s.m.perDay > 1440 {
						reach = 2 * time.Hour // per-second: 4 hours is plenty
					}
					after, until := tr.Add(-reach), tr.Add(reach)
					times, count := Times(s, after, until, 1<<20)
					require.Equal(t, int64(len(times)), count, "count around %s", tr)
					prev, hasPrev := s.Prev(after.Add(time.Second))
					for i, at := range times {
						if i > 0 {
							require.True(t, at.After(times[i-1]))
						}
						got, ok := s.Prev(at)
						require.Equal(t, hasPrev, ok, "Prev(%s)", at)
						require.Equal(t, prev, got, "Prev(%s)", at)
						prev, hasPrev = at, true
						due, err := g.IsDue(expr, at.In(loc))
						require.NoError(t, err)
						if !due {
							_, end := at.Add(-time.Nanosecond).In(loc).ZoneBounds()
							require.Equal(t, at, end.UTC(), "%s: neither a match nor a gap end", at.In(loc))
							require.False(t, s.m.everyHour, "%s: every-hour schedules have no gap fires", at)
						}
					}
					// Split counts add up.
					mid := tr.Add(time.Duration(len(expr)) * time.Minute)
					_, c1 := Times(s, after, mid, 0)
					_, c2 := Times(s, mid, until, 0)
					require.Equal(t, count, c1+c2, "split at %s", mid)
				}
			})
		}
	}
}
