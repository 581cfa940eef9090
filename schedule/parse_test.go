package schedule

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParse_Valid(t *testing.T) {
	t.Parallel()
	anchor := time.Date(2026, 1, 1, 8, 10, 0, 0, time.UTC)
	paris, err := time.LoadLocation("Europe/Paris")
	require.NoError(t, err)
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"CronSixFieldsZone", Spec{Kind: KindCron, Cron: "0 */5 * * * *", TZ: "Europe/Paris"}, "cron 0 */5 * * * * Europe/Paris"},
		{"CronInferredKind", Spec{Cron: "0 9 * * 1-5"}, "cron 0 9 * * 1-5 UTC"},
		{"CronWhitespace", Spec{Cron: "  0   9\t* * *  "}, "cron 0 9 * * * UTC"},
		{"CronSevenFields", Spec{Cron: "0 0 0 1 1 * 2030"}, "cron 0 0 0 1 1 * 2030 UTC"},
		{"CronPastYear", Spec{Cron: "0 0 0 1 1 * 2020"}, "cron 0 0 0 1 1 * 2020 UTC"},
		{"CronLeapDay", Spec{Cron: "0 0 29 2 *"}, "cron 0 0 29 2 * UTC"},
		{"CronMacroDaily", Spec{Cron: "@daily"}, "cron @daily UTC"},
		{"CronMacroMidnight", Spec{Cron: "@midnight"}, "cron @midnight UTC"},
		{"CronMacroUpper", Spec{Cron: "@HOURLY"}, "cron @HOURLY UTC"},
		{"CronKindCase", Spec{Kind: " Cron ", Cron: "@weekly"}, "cron @weekly UTC"},
		{"CronGronxMacroEverySecond", Spec{Cron: "@everysecond"}, "cron @everysecond UTC"},
		{"CronGronxMacroFiveMinutes", Spec{Cron: "@5minutes"}, "cron @5minutes UTC"},
		{"CronQuestionMark", Spec{Cron: "0 0 ? * MON"}, "cron 0 0 ? * MON UTC"},
		{"EveryAnchor", Spec{Kind: KindEvery, Every: time.Hour, Anchor: anchor}, "every 1h0m0s from 2026-01-01T08:10:00.000Z"},
		{"EveryDefaultAnchor", Spec{Every: 90 * time.Second}, "every 1m30s from 1970-01-01T00:00:00.000Z"},
		{"EveryAnchorTruncatedToUTCMilli", Spec{Every: time.Second, Anchor: time.Date(2026, 1, 1, 9, 10, 0, 123456789, paris)},
			"every 1s from 2026-01-01T08:10:00.123Z"},
		{"EveryWithTZ", Spec{Every: time.Minute, TZ: "Asia/Tokyo"}, "every 1m0s from 1970-01-01T00:00:00.000Z"},
		{"Delay", Spec{Kind: KindDelay, Delay: 30 * time.Second}, "delay 30s"},
		{"DelayInferred", Spec{Delay: time.Second}, "delay 1s"},
		{"At", Spec{Kind: KindAt, At: time.Date(2026, 5, 1, 12, 0, 0, 999999, paris)}, "at 2026-05-01T10:00:00.000Z"},
		{"AtPast", Spec{At: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)}, "at 2001-01-01T00:00:00.000Z"},
		{"Manual", Spec{Kind: KindManual}, "manual"},
		{"ManualWithTZ", Spec{Kind: KindManual, TZ: "UTC"}, "manual"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.spec)
			require.NoError(t, err)
			require.Equal(t, tt.want, s.String())
			require.NoError(t, tt.spec.Validate())
		})
	}
}

func TestParse_InvalidCron(t *testing.T) {
	t.Parallel()
	tests := []struct {
		expr, want string // want: the whole message, or "" to only check the sentinel
	}{
		{"* * * *", `cron "* * * *": invalid expression: want 5, 6 or 7 fields, got 4`},
		{"* * * * * * * *", ""},
		{"61 * * * *", `cron "61 * * * *": invalid expression: minute "61": '61' out of bounds(0, 59)`},
		{"* 24 * * *", ""},
		{"* * 0 * *", ""},
		{"* * * 13 *", ""},
		{"* * * * 8", ""},
		{"60 * * * * *", ""},
		{"5-3 * * * *", ""},
		{"*/0 * * * *", `cron "*/0 * * * *": invalid expression: minute "*/0": step can't be 0`},
		{"a * * * *", ""},
		{"1,abc * * * *", ""},
		{"1,,2 * * * *", ""},
		{"1/2/3 * * * *", ""},
		{"0 0 32W * *", `cron "0 0 32W * *": invalid expression: day of month "32W": "32W": want nW with n in 1-31`},
		{"0 0 15Wx * *", ""},
		{"0 0 LW * *", ""},
		{"0 0 L-3 * *", ""},
		{"0 0 * * 8L", ""},
		{"0 0 * * 5#6", ""},
		{"0 0 * * 5#0", ""},
		{"0 0 * * #2", ""},
		{"0 0 * * 1W", ""},
		{"L * * * *", ""},
		{"0 0 0 1 1 * 10000", ""},
		{"0 0 0 1 1 * 20L", ""},
		{"@every 5m", `cron "@every 5m": invalid expression: @every is not cron syntax; use the every schedule kind`},
		{"@fortnightly", ""},
		{"@every", ""},
		{"@daily 5", ""},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(Spec{Kind: KindCron, Cron: tt.expr})
			require.Error(t, err)
			require.ErrorIs(t, err, ErrInvalidCron)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, "cron", fe.Field)
			require.Equal(t, tt.expr, fe.Value)
			if tt.want != "" {
				require.EqualError(t, err, tt.want)
			}
		})
	}
}

func TestParse_ImpossibleCron(t *testing.T) {
	t.Parallel()
	for _, expr := range []string{
		"0 0 31 4 *",
		"0 0 30 2 *",
		"0 0 31 2,4,6,9,11 *",
		"0 0 0 29 2 * 2027",
		"0 0 0 29 2 * 2100",
		"0 0 0 31 4 * 2020-2030",
		"0 0 30,31 FEB *",
	} {
		t.Run(expr, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(Spec{Cron: expr})
			require.ErrorIs(t, err, ErrImpossibleCron)
			require.EqualError(t, err, `cron "`+expr+`": impossible expression: no such date`)
		})
	}
}

func TestParse_InvalidFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		spec      Spec
		field     string
		sentinel  error
		wantError string
	}{
		{"UnknownZone", Spec{Cron: "@daily", TZ: "Mars/Base"}, "tz", ErrUnknownZone, `tz "Mars/Base": unknown time zone`},
		{"LocalZone", Spec{Cron: "@daily", TZ: "Local"}, "tz", ErrUnknownZone, ""},
		{"ZoneDotDot", Spec{Cron: "@daily", TZ: "../etc/passwd"}, "tz", ErrUnknownZone, ""},
		{"ZoneForEvery", Spec{Every: time.Hour, TZ: "Nowhere/Land"}, "tz", ErrUnknownZone, ""},
		{"CronEmpty", Spec{Kind: KindCron}, "cron", ErrMissing, `cron "": required`},
		{"CronBlank", Spec{Kind: KindCron, Cron: "   "}, "cron", ErrMissing, ""},
		{"EveryZero", Spec{Kind: KindEvery}, "every", ErrTooShort, `every "0s": must be at least 1s`},
		{"EveryShort", Spec{Every: 999 * time.Millisecond}, "every", ErrTooShort, ""},
		{"EveryNegative", Spec{Every: -time.Hour}, "every", ErrTooShort, ""},
		{"EverySubMilli", Spec{Every: time.Second + time.Nanosecond}, "every", ErrOutOfRange, ""},
		{"EveryAnchorOnly", Spec{Anchor: time.Unix(0, 1)}, "every", ErrTooShort, ""},
		{"AnchorOutOfRange", Spec{Every: time.Hour, Anchor: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, "anchor", ErrOutOfRange, ""},
		{"DelayZero", Spec{Kind: KindDelay}, "delay", ErrTooShort, `delay "0s": must be at least 1s`},
		{"DelayShort", Spec{Delay: 500 * time.Millisecond}, "delay", ErrTooShort, ""},
		{"AtMissing", Spec{Kind: KindAt}, "at", ErrMissing, ""},
		{"AtOutOfRange", Spec{At: time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)}, "at", ErrOutOfRange, ""},
		{"KindMissing", Spec{}, "kind", ErrMissing, `kind "": required`},
		{"KindMissingTZOnly", Spec{TZ: "UTC"}, "kind", ErrMissing, ""},
		{"KindUnknown", Spec{Kind: "weekly"}, "kind", ErrUnknownKind, ""},
		{"KindConflictInferred", Spec{Cron: "@daily", Every: time.Hour}, "kind", ErrKindConflict,
			`kind "": conflicting kinds: both cron and every are set`},
		{"EveryWithCronKind", Spec{Kind: KindCron, Cron: "@daily", Every: time.Hour}, "every", ErrNotApplicable,
			`every "1h0m0s": does not apply to kind cron`},
		{"CronWithManualKind", Spec{Kind: KindManual, Cron: "@daily"}, "cron", ErrNotApplicable, ""},
		{"AtWithEveryKind", Spec{Kind: KindEvery, Every: time.Hour, At: time.Unix(1, 0)}, "at", ErrNotApplicable, ""},
		{"AnchorWithDelayKind", Spec{Kind: KindDelay, Delay: time.Minute, Anchor: time.Unix(1, 0)}, "anchor", ErrNotApplicable, ""},
		{"DelayWithAtKind", Spec{Kind: KindAt, At: time.Unix(1, 0), Delay: time.Minute}, "delay", ErrNotApplicable, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.spec)
			require.Nil(t, s)
			require.ErrorIs(t, err, tt.sentinel)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.Equal(t, tt.field, fe.Field)
			if tt.wantError != "" {
				require.EqualError(t, err, tt.wantError)
			}
			require.Equal(t, err, tt.spec.Validate())
		})
	}
}

func TestFieldError_Unwrap(t *testing.T) {
	t.Parallel()
	inner := errors.New("boom")
	err := error(&FieldError{Field: "cron", Value: "x", Err: inner})
	require.EqualError(t, err, `cron "x": boom`)
	require.ErrorIs(t, err, inner)
	require.Equal(t, inner, errors.Unwrap(err))
}

func TestParse_Types(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		spec Spec
		kind string
	}{
		{"Cron", Spec{Cron: "@daily", TZ: "Europe/Berlin"}, KindCron},
		{"Every", Spec{Every: time.Hour}, KindEvery},
		{"Delay", Spec{Delay: time.Hour}, KindDelay},
		{"At", Spec{At: time.Unix(1, 0)}, KindAt},
		{"Manual", Spec{Kind: KindManual}, KindManual},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse(tt.spec)
			require.NoError(t, err)
			k, ok := s.(interface{ Kind() string })
			require.True(t, ok)
			require.Equal(t, tt.kind, k.Kind())
		})
	}
	s, err := Parse(Spec{Cron: "0  9 * * *", TZ: "Europe/Berlin"})
	require.NoError(t, err)
	c := s.(*CronSchedule)
	require.Equal(t, "0 9 * * *", c.Expr())
	require.Equal(t, "Europe/Berlin", c.Location().String())
	e, err := Parse(Spec{Every: time.Hour})
	require.NoError(t, err)
	require.Equal(t, EverySchedule{Interval: time.Hour, Anchor: time.Unix(0, 0).UTC()}, e)
}
