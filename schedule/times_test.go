package schedule

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/adhocore/gronx"
	"github.com/stretchr/testify/require"
)

func TestTimes_PerSecondDay(t *testing.T) {
	t.Parallel()
	s := mustCron(t, "* * * * * *", "")
	after := utc(t, "2026-01-01T00:00:00Z")
	until := after.Add(24 * time.Hour)
	tests := []struct {
		name    string
		limit   int
		wantLen int
	}{
		{"CountOnly", 0, 0},
		{"Capped", 10, 10},
		{"All", 100_000, 86_400},
		{"NegativeLimit", -1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			times, count := Times(s, after, until, tt.limit)
			require.Equal(t, int64(86_400), count)
			require.Len(t, times, tt.wantLen)
			if tt.wantLen > 0 {
				require.Equal(t, after.Add(time.Second), times[0])
				require.Equal(t, after.Add(time.Duration(tt.wantLen)*time.Second), times[tt.wantLen-1])
			}
		})
	}
}

// TestTimes_CountEqualsListing checks the arithmetic count against the
// listed times for many expressions, zones and ranges (DST included).
func TestTimes_CountEqualsListing(t *testing.T) {
	t.Parallel()
	for _, tz := range []string{"", "America/New_York", "Australia/Lord_Howe"} {
		for _, expr := range equivExprs {
			t.Run(tz+"/"+expr, func(t *testing.T) {
				t.Parallel()
				s := mustCron(t, expr, tz)
				rng := rand.New(rand.NewPCG(3, uint64(len(expr)+len(tz))))
				base := utc(t, "2025-12-01T00:00:00Z").Unix()
				for range 10 {
					after := time.Unix(base+rng.Int64N(2*365*86400), rng.Int64N(1e9)).UTC()
					span := time.Duration(rng.Int64N(3*86400)) * time.Second
					switch {
					case s.m.perDay > 1440:
						span /= 18 // per-second expressions: up to 4 hours
					case s.m.perDay < 100:
						span *= 200 // sparse expressions: months or years
					}
					until := after.Add(span)
					times, count := Times(s, after, until, 1<<20)
					require.Equal(t, int64(len(times)), count, "(%s, %s]", after, until)
					var want []time.Time
					for at, ok := s.Next(after); ok && !at.After(until); at, ok = s.Next(at) {
						want = append(want, at)
					}
					require.Equal(t, want, times)
				}
			})
		}
	}
}

func TestTimes_LongRanges(t *testing.T) {
	t.Parallel()
	after := utc(t, "2000-01-01T00:00:00Z")
	until := utc(t, "2100-01-01T00:00:00Z")
	days := int64(until.Sub(after) / (24 * time.Hour))
	tests := []struct {
		name, expr, tz string
		want           int64
	}{
		{"PerSecondCentury", "* * * * * *", "", days * 86400},
		{"DailyCentury", "0 0 * * *", "", days},
		{"DailyCenturyZone", "0 12 * * *", "Europe/Berlin", days},
		{"LeapDaysCentury", "0 0 29 2 *", "", 25},
		{"HourlyZoneCentury", "0 * * * *", "America/New_York", days * 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := mustCron(t, tt.expr, tt.tz)
			times, count := Times(s, after, until, 2)
			require.Equal(t, tt.want, count)
			require.Len(t, times, 2)
		})
	}
}

// otherSchedule is a Schedule from outside the package: every 10 minutes.
type otherSchedule struct{}

func (otherSchedule) Next(t time.Time) (time.Time, bool) {
	return t.Truncate(10 * time.Minute).Add(10 * time.Minute), true
}
func (otherSchedule) String() string { return "other" }

func TestTimes_OtherSchedule(t *testing.T) {
	t.Parallel()
	after := utc(t, "2026-01-01T00:00:00Z")
	times, count := Times(otherSchedule{}, after, after.Add(time.Hour), 2)
	require.Equal(t, int64(6), count)
	require.Equal(t, []time.Time{after.Add(10 * time.Minute), after.Add(20 * time.Minute)}, times)
	_, ok := Prev(otherSchedule{}, after)
	require.False(t, ok)
}

// perSecondDay is the brief's yardstick: one day of a per-second cron.
func perSecondDay(b *testing.B) (*CronSchedule, time.Time, time.Time) {
	s, err := Parse(Spec{Cron: "* * * * * *", TZ: "Europe/Berlin"})
	require.NoError(b, err)
	after := time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC) // a DST day
	return s.(*CronSchedule), after, after.Add(24 * time.Hour)
}

// BenchmarkTimes_CountPerSecondDay measures counting 86,400 fires.
func BenchmarkTimes_CountPerSecondDay(b *testing.B) {
	s, after, until := perSecondDay(b)
	for b.Loop() {
		if _, n := Times(s, after, until, 0); n != 86_400 {
			b.Fatal(n)
		}
	}
}

// BenchmarkTimes_ListPerSecondDay measures listing and counting 86,400 fires.
func BenchmarkTimes_ListPerSecondDay(b *testing.B) {
	s, after, until := perSecondDay(b)
	for b.Loop() {
		if times, n := Times(s, after, until, 100_000); n != 86_400 || len(times) != 86_400 {
			b.Fatal(n, len(times))
		}
	}
}

// BenchmarkGronx_NextTickPerSecondDay is the alternative this package
// avoids: 86,400 calls of gronx.NextTickAfter.
func BenchmarkGronx_NextTickPerSecondDay(b *testing.B) {
	_, after, until := perSecondDay(b)
	loc, err := time.LoadLocation("Europe/Berlin")
	require.NoError(b, err)
	for b.Loop() {
		n := 0
		for at := after.In(loc); ; n++ {
			next, err := gronx.NextTickAfter("* * * * * *", at, false)
			if err != nil || next.After(until) {
				break
			}
			at = next
		}
		if n != 86_400 {
			b.Fatal(n)
		}
	}
}

func BenchmarkCron_Next(b *testing.B) {
	for _, expr := range []string{"*/5 * * * *", "0 9 * * 1-5", "0 12 * * 5L", "0 0 29 2 *"} {
		s, err := Parse(Spec{Cron: expr, TZ: "America/New_York"})
		require.NoError(b, err)
		at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				at, _ = s.Next(at)
			}
		})
	}
}

// BenchmarkCompile measures compiling an expression, which Parse caches.
func BenchmarkCompile(b *testing.B) {
	for _, expr := range []string{"*/5 * * * *", "0 9 * * 1-5", "0 12 L * *", "0 0 0 1 1 * 2030"} {
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				if _, err := compile(expr); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkParse measures Parse, with the compiled expression cached.
func BenchmarkParse(b *testing.B) {
	for _, expr := range []string{"*/5 * * * *", "0 9 * * 1-5", "0 12 L * *", "0 0 0 1 1 * 2030"} {
		b.Run(expr, func(b *testing.B) {
			for b.Loop() {
				if _, err := Parse(Spec{Cron: expr, TZ: "Europe/Paris"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkTimes_CountCenturyZone measures counting a century of an
// hourly cron in a DST zone (about 200 zone periods).
func BenchmarkTimes_CountCenturyZone(b *testing.B) {
	s, err := Parse(Spec{Cron: "0 * * * *", TZ: "America/New_York"})
	require.NoError(b, err)
	after := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	until := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
	for b.Loop() {
		Times(s, after, until, 0)
	}
}
