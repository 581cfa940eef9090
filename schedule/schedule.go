package schedule

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Schedule kinds, the values of Spec.Kind.
const (
	KindCron   = "cron"
	KindEvery  = "every"
	KindDelay  = "delay"
	KindAt     = "at"
	KindManual = "manual"
)

// MinInterval is the shortest every and delay interval.
const MinInterval = time.Second

// timeLayout renders instants in String and in error values.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// Errors wrapped by FieldError.Err; test with errors.Is.
var (
	// ErrInvalidCron reports a cron expression that does not parse.
	ErrInvalidCron = errors.New("invalid expression")
	// ErrImpossibleCron reports a cron expression that parses but can never
	// match, such as "0 0 31 4 *".
	ErrImpossibleCron = errors.New("impossible expression")
	// ErrUnknownZone reports a TZ that is not an IANA zone name.
	ErrUnknownZone = errors.New("unknown time zone")
	// ErrTooShort reports an every or delay interval below MinInterval.
	ErrTooShort = errors.New("must be at least 1s")
	// ErrMissing reports a required field left empty.
	ErrMissing = errors.New("required")
	// ErrKindConflict reports a Spec with no Kind and the fields of two.
	ErrKindConflict = errors.New("conflicting kinds")
	// ErrUnknownKind reports a Kind that is none of the Kind constants.
	ErrUnknownKind = errors.New("unknown kind (want cron, every, delay, at or manual)")
	// ErrNotApplicable reports a field set for a kind it does not belong to.
	ErrNotApplicable = errors.New("does not apply")
	// ErrOutOfRange reports a time outside years 1-9999, or an interval
	// that is not a whole number of milliseconds.
	ErrOutOfRange = errors.New("out of range")
)

// FieldError is the error Parse returns: which user-facing field is wrong
// ("kind", "cron", "tz", "every", "anchor", "delay" or "at"), its value as
// the user wrote it, and why.
type FieldError struct {
	Field string
	Value string
	Err   error
}

// Error renders the error as `FIELD "VALUE": REASON`, e.g.
// `tz "Mars/Base": unknown time zone`.
func (e *FieldError) Error() string { return fmt.Sprintf("%s %q: %v", e.Field, e.Value, e.Err) }

// Unwrap returns the reason, one of the Err values of this package, possibly
// wrapped with detail.
func (e *FieldError) Unwrap() error { return e.Err }

// Spec is a schedule as a user declares it; exactly one kind.
type Spec struct {
	// Kind is one of the Kind constants. When empty, it is inferred from
	// the one kind-specific field that is set.
	Kind string
	// Cron is a cron expression of 5 fields, 6 (leading seconds) or 7
	// (seconds and year), or a macro: @yearly @annually @monthly @weekly
	// @daily @midnight @hourly (and gronx's @always @5minutes @10minutes
	// @15minutes @30minutes @everysecond). L, W and # work as in gronx.
	Cron string
	// Every is the fixed-rate interval: at least 1s, whole milliseconds.
	Every time.Duration
	// Anchor places the fixed-rate grid: fires are exactly Anchor + k*Every
	// for every integer k, negative included. Zero means the Unix epoch. It
	// is truncated to the millisecond.
	Anchor time.Time
	// Delay is the fixed delay (at least 1s): the next fire is the previous
	// run's finish plus Delay.
	Delay time.Duration
	// At is the one-shot time, truncated to the millisecond.
	At time.Time
	// TZ is the IANA zone cron is evaluated in; "" means UTC. It is
	// validated for every kind but only cron uses it.
	TZ string
}

// Validate reports whether Parse would accept s.
func (s Spec) Validate() error {
	_, err := Parse(s)
	return err
}

// Schedule computes fire times.
type Schedule interface {
	// Next returns the first fire time strictly after t, truncated to the
	// millisecond, in UTC, and false if there is none (at in the past,
	// manual, delay).
	Next(t time.Time) (time.Time, bool)
	// String renders the schedule for humans, e.g. "cron 0 */5 * * * *
	// Europe/Paris", "every 1h0m0s from 2026-01-01T08:10:00.000Z",
	// "delay 30s", "at 2026-01-01T08:10:00.000Z", "manual".
	String() string
}

// Parse validates s and returns its Schedule: a *CronSchedule,
// EverySchedule, DelaySchedule, AtSchedule or ManualSchedule. Errors are
// *FieldError.
func Parse(s Spec) (Schedule, error) {
	kind, err := s.kind()
	if err != nil {
		return nil, err
	}
	loc, err := loadZone(s.TZ)
	if err != nil {
		return nil, &FieldError{Field: "tz", Value: s.TZ, Err: err}
	}
	switch kind {
	case KindCron:
		if strings.TrimSpace(s.Cron) == "" {
			return nil, &FieldError{Field: "cron", Value: s.Cron, Err: ErrMissing}
		}
		c, err := parseCron(s.Cron, loc)
		if err != nil {
			return nil, &FieldError{Field: "cron", Value: s.Cron, Err: err}
		}
		return c, nil
	case KindEvery:
		return parseEvery(s.Every, s.Anchor)
	case KindDelay:
		if s.Delay < MinInterval {
			return nil, &FieldError{Field: "delay", Value: s.Delay.String(), Err: ErrTooShort}
		}
		return DelaySchedule{Delay: s.Delay}, nil
	case KindAt:
		if s.At.IsZero() {
			return nil, &FieldError{Field: "at", Value: "", Err: ErrMissing}
		}
		if !inRange(s.At) {
			return nil, &FieldError{Field: "at", Value: s.At.Format(timeLayout), Err: ErrOutOfRange}
		}
		return AtSchedule{At: truncMilli(s.At)}, nil
	default:
		return ManualSchedule{}, nil
	}
}

// kind returns the kind s declares or implies, and rejects fields that
// belong to another kind.
func (s Spec) kind() (string, error) {
	fields := []struct {
		name, kind string
		set        bool
	}{
		{"cron", KindCron, s.Cron != ""},
		{"every", KindEvery, s.Every != 0},
		{"anchor", KindEvery, !s.Anchor.IsZero()},
		{"delay", KindDelay, s.Delay != 0},
		{"at", KindAt, !s.At.IsZero()},
	}
	kind := strings.ToLower(strings.TrimSpace(s.Kind))
	switch kind {
	case KindCron, KindEvery, KindDelay, KindAt, KindManual:
	case "":
		for _, f := range fields {
			if !f.set || f.kind == kind {
				continue
			}
			if kind != "" {
				return "", &FieldError{Field: "kind", Value: s.Kind,
					Err: fmt.Errorf("%w: both %s and %s are set", ErrKindConflict, kind, f.kind)}
			}
			kind = f.kind
		}
		if kind == "" {
			return "", &FieldError{Field: "kind", Value: s.Kind, Err: ErrMissing}
		}
	default:
		return "", &FieldError{Field: "kind", Value: s.Kind, Err: ErrUnknownKind}
	}
	for _, f := range fields {
		if f.set && f.kind != kind {
			return "", &FieldError{Field: f.name, Value: s.value(f.name),
				Err: fmt.Errorf("%w to kind %s", ErrNotApplicable, kind)}
		}
	}
	return kind, nil
}

// value renders a field of s as the user wrote it, for a FieldError.
func (s Spec) value(field string) string {
	switch field {
	case "cron":
		return s.Cron
	case "every":
		return s.Every.String()
	case "anchor":
		return s.Anchor.Format(timeLayout)
	case "delay":
		return s.Delay.String()
	case "at":
		return s.At.Format(timeLayout)
	}
	return ""
}

// zones caches loaded locations by name: time.LoadLocation reads and parses
// a file on each call.
var zones sync.Map // string -> *time.Location

// loadZone resolves an IANA zone name; "" and "UTC" are UTC.
func loadZone(name string) (*time.Location, error) {
	switch name {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, fmt.Errorf("%w: Local depends on the machine; use an IANA name", ErrUnknownZone)
	}
	if loc, ok := zones.Load(name); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, ErrUnknownZone
	}
	zones.Store(name, loc)
	return loc, nil
}

var (
	minTime = time.Date(minYear, 1, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(maxYear+1, 1, 1, 0, 0, 0, 0, time.UTC)
)

// inRange reports whether t lies in years 1-9999 (UTC).
func inRange(t time.Time) bool { return !t.Before(minTime) && t.Before(maxTime) }

// truncMilli returns t rounded down to the millisecond, in UTC.
func truncMilli(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// Times returns up to limit fire times of s in (after, until], oldest first,
// and the exact number of fire times in that range, which exceeds
// len(times) when limit is reached. Counting never lists: it is arithmetic
// on the grid index for every, and per zone period, month and day for cron
// (a day of a per-second cron counts in well under a microsecond; a
// century in a DST zone, under a millisecond). Delay and manual schedules
// have no fire times. For a Schedule of another type it calls Next
// repeatedly, counting included.
func Times(s Schedule, after, until time.Time, limit int) (times []time.Time, count int64) {
	if !until.After(after) {
		return nil, 0
	}
	limit = max(limit, 0)
	switch s := s.(type) {
	case *CronSchedule:
		lo, hi := max(after.Unix(), minInstant)+1, min(until.Unix(), maxInstant)
		return s.times(lo, hi, limit), s.count(lo, hi)
	case EverySchedule:
		return s.timesIn(after, until, limit)
	}
	// At, delay and manual schedules fire at most once: the loop is exact.
	// Other types get the same loop.
	for t, ok := s.Next(after); ok && !t.After(until); t, ok = s.Next(t) {
		if len(times) < limit {
			times = append(times, t)
		}
		count++
	}
	return times, count
}

// Prev returns the last fire time of s strictly before t, and false if
// there is none. It uses s's own Prev method when it has one (all the
// schedules of this package do); other types have no Prev.
func Prev(s Schedule, t time.Time) (time.Time, bool) {
	if p, ok := s.(interface {
		Prev(time.Time) (time.Time, bool)
	}); ok {
		return p.Prev(t)
	}
	return time.Time{}, false
}
