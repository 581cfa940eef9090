package schedule

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestCron_Next(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, tz, from string
		want                 []string // successive Next results; "" = none
	}{
		{"MonthEndSkipsShortMonths", "0 0 31 * *", "", "2026-04-01T00:00:00Z",
			[]string{"2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z", "2026-08-31T00:00:00Z", "2026-10-31T00:00:00Z"}},
		{"LeapDay", "0 0 29 2 *", "", "2026-03-01T00:00:00Z",
			[]string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"LeapDaySkipsCentury", "0 0 29 2 *", "", "2096-03-01T00:00:00Z",
			[]string{"2104-02-29T00:00:00Z"}},
		{"YearField", "0 0 0 1 1 * 2030", "", "2026-06-01T00:00:00Z",
			[]string{"2030-01-01T00:00:00Z", ""}},
		{"YearFieldPast", "0 0 0 1 1 * 2020", "", "2026-06-01T00:00:00Z", []string{""}},
		{"YearRangeLeap", "0 30 6 L 2 * */4", "", "2026-01-01T00:00:00Z",
			[]string{"2028-02-29T06:30:00Z", "2032-02-29T06:30:00Z"}},
		{"LastDay", "0 0 L * *", "", "2026-01-15T00:00:00Z",
			[]string{"2026-01-31T00:00:00Z", "2026-02-28T00:00:00Z", "2026-03-31T00:00:00Z", "2026-04-30T00:00:00Z"}},
		{"NearestWeekday", "0 9 15W * *", "", "2026-02-01T00:00:00Z",
			[]string{"2026-02-16T09:00:00Z", "2026-03-16T09:00:00Z", "2026-04-15T09:00:00Z"}},
		{"NearestWeekdayNoCrossing", "0 9 1W * *", "", "2026-07-15T00:00:00Z",
			[]string{"2026-08-03T09:00:00Z", "2026-09-01T09:00:00Z"}},
		{"NthWeekday", "0 12 * * 5#2", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-09T12:00:00Z", "2026-02-13T12:00:00Z"}},
		{"LastWeekday", "0 12 * * 5L", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-30T12:00:00Z", "2026-02-27T12:00:00Z"}},
		{"SecondsPrecision", "*/15 * * * * *", "", "2026-01-01T10:00:07.5Z",
			[]string{"2026-01-01T10:00:15Z", "2026-01-01T10:00:30Z", "2026-01-01T10:00:45Z", "2026-01-01T10:01:00Z"}},
		{"SecondsJustBefore", "30 0 9 * * *", "", "2026-01-01T09:00:29.999Z",
			[]string{"2026-01-01T09:00:30Z", "2026-01-02T09:00:30Z"}},
		{"ExactMatchIsExcluded", "0 * * * *", "", "2026-01-01T10:00:00Z",
			[]string{"2026-01-01T11:00:00Z"}},
		{"SubSecondAfterMatch", "* * * * * *", "", "2026-01-01T10:00:00.001Z",
			[]string{"2026-01-01T10:00:01Z"}},
		{"Hourly", "@hourly", "", "2026-01-01T10:30:00Z", []string{"2026-01-01T11:00:00Z"}},
		{"Weekly", "@weekly", "", "2026-01-01T00:00:00Z", []string{"2026-01-04T00:00:00Z"}},
		{"Monthly", "@monthly", "", "2026-01-01T00:00:00Z", []string{"2026-02-01T00:00:00Z"}},
		{"Yearly", "@yearly", "", "2026-01-01T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"Annually", "@annually", "", "2026-01-01T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"Midnight", "@midnight", "", "2026-01-01T00:00:00Z", []string{"2026-01-02T00:00:00Z"}},
		{"Names", "0 0 * JAN,FEB MON", "", "2026-01-01T00:00:00Z",
			[]string{"2026-01-05T00:00:00Z", "2026-01-12T00:00:00Z"}},
		{"DayOfMonthOrWeekday", "0 0 13 * 5", "", "2026-02-01T00:00:00Z",
			[]string{"2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z"}},
		{"ZoneWinter", "0 9 * * *", "Europe/Paris", "2026-01-01T00:00:00Z", []string{"2026-01-01T08:00:00Z"}},
		{"ZoneSummer", "0 9 * * *", "Europe/Paris", "2026-07-01T00:00:00Z", []string{"2026-07-01T07:00:00Z"}},
		{"ZoneNoDST", "0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z", []string{"2026-07-01T03:30:00Z"}},
		{"EndOfCalendar", "0 0 1 1 *", "", "9999-06-01T00:00:00Z", []string{""}},
		{"StartOfCalendar", "0 0 1 1 *", "", "0001-01-01T00:00:00Z", []string{"0002-01-01T00:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.expr, tt.tz)
			at := utc(t, tt.from)
			for _, w := range tt.want {
				next, ok := s.Next(at)
				if w == "" {
					require.False(t, ok, "Next(%s) = %s", at, next)
					return
				}
				require.True(t, ok, "Next(%s)", at)
				require.Equal(t, utc(t, w), next, "Next(%s)", at)
				require.Equal(t, time.UTC, next.Location())
				at = next
			}
		})
	}
}

func TestCron_Prev(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, expr, tz, before string
		want                   string // "" = none
	}{
		{"ExactMatchIsExcluded", "0 * * * *", "", "2026-01-01T10:00:00Z", "2026-01-01T09:00:00Z"},
		{"SubSecondIncludesSecond", "* * * * * *", "", "2026-01-01T10:00:00.5Z", "2026-01-01T10:00:00Z"},
		{"MonthEnd", "0 0 31 * *", "", "2026-07-01T00:00:00Z", "2026-05-31T00:00:00Z"},
		{"LeapDay", "0 0 29 2 *", "", "2027-01-01T00:00:00Z", "2024-02-29T00:00:00Z"},
		{"YearFuture", "0 0 0 1 1 * 2030", "", "2026-01-01T00:00:00Z", ""},
		{"YearPast", "0 0 0 1 1 * 2020", "", "2026-01-01T00:00:00Z", "2020-01-01T00:00:00Z"},
		{"LastDay", "0 0 L * *", "", "2026-03-15T00:00:00Z", "2026-02-28T00:00:00Z"},
		{"Zone", "0 9 * * *", "Europe/Paris", "2026-07-01T07:00:00Z", "2026-06-30T07:00:00Z"},
		{"StartOfCalendar", "0 0 1 1 *", "", "0001-06-01T00:00:00Z", "0001-01-01T00:00:00Z"},
		{"BeforeCalendar", "0 0 1 1 *", "", "0001-01-01T00:00:00Z", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.expr, tt.tz)
			prev, ok := Prev(s, utc(t, tt.before))
			if tt.want == "" {
				require.False(t, ok, "Prev = %s", prev)
				return
			}
			require.True(t, ok)
			require.Equal(t, utc(t, tt.want), prev)
		})
	}
}

// TestCron_NextPrevInverse walks Next then Prev back over many fires.
func TestCron_NextPrevInverse(t *testing.T) {
	t.Parallel()
	for _, expr := range equivExprs {
		for _, tz := range []string{"", "America/New_York", "Europe/Berlin"} {
			t.Run(tz+"/"+expr, func(t *testing.T) {
				t.Parallel()
				s := mustCron(t, expr, tz)
				at := utc(t, "2026-01-01T00:00:00Z")
				prev, hasPrev := s.Prev(at.Add(time.Second))
				for range 200 {
					next, ok := s.Next(at)
					if !ok {
						break
					}
					require.True(t, next.After(at))
					got, gotOK := s.Prev(next)
					require.Equal(t, hasPrev, gotOK, "Prev(%s)", next)
					require.Equal(t, prev, got, "Prev(%s)", next)
					prev, hasPrev, at = next, true, next
				}
			})
		}
	}
}
