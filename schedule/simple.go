package schedule

import (
	"fmt"
	"time"
)

// EverySchedule fires at a fixed rate on a grid: exactly Anchor + k*Interval
// for every integer k (negative too), whatever the time Next is asked
// about, so restarts and late scans never move it. Arithmetic is on integer
// milliseconds. A zero Anchor is the Unix epoch (1970-01-01T00:00:00Z).
// Parse guarantees Interval >= 1s in whole milliseconds and Anchor in years
// 1-9999; a hand-built value that breaks this has no fire times.
type EverySchedule struct {
	Interval time.Duration
	Anchor   time.Time
}

// parseEvery validates an every schedule.
func parseEvery(every time.Duration, anchor time.Time) (Schedule, error) {
	switch {
	case every < MinInterval:
		return nil, &FieldError{Field: "every", Value: every.String(), Err: ErrTooShort}
	case every%time.Millisecond != 0:
		return nil, &FieldError{Field: "every", Value: every.String(),
			Err: fmt.Errorf("%w: not a whole number of milliseconds", ErrOutOfRange)}
	}
	if anchor.IsZero() {
		return EverySchedule{Interval: every, Anchor: time.Unix(0, 0).UTC()}, nil
	}
	if !inRange(anchor) {
		return nil, &FieldError{Field: "anchor", Value: anchor.Format(timeLayout), Err: ErrOutOfRange}
	}
	return EverySchedule{Interval: every, Anchor: truncMilli(anchor)}, nil
}

var (
	minMilli = minTime.UnixMilli()
	maxMilli = maxTime.UnixMilli()
)

// grid returns the anchor and interval in milliseconds.
func (e EverySchedule) grid() (anchor, interval int64, ok bool) {
	interval = e.Interval.Milliseconds()
	switch {
	case interval <= 0:
		return 0, 0, false
	case e.Anchor.IsZero():
		return 0, interval, true
	case !inRange(e.Anchor):
		return 0, 0, false
	}
	return e.Anchor.UnixMilli(), interval, true
}

// floorMilli returns t in unix milliseconds rounded down, clamped to
// [minMilli-1, maxMilli].
func floorMilli(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return minMilli - 1
	case !t.Before(maxTime):
		return maxMilli
	}
	return t.UnixMilli()
}

// indexRange returns the grid indexes k with after < anchor+k*interval <=
// until (in ms), within years 1-9999.
func (e EverySchedule) indexRange(after, until int64) (anchor, interval, kLo, kHi int64, ok bool) {
	anchor, interval, ok = e.grid()
	if !ok {
		return 0, 0, 0, -1, false
	}
	after, until = max(after, minMilli-1), min(until, maxMilli-1)
	kLo = floorDiv(after-anchor, interval) + 1
	kHi = floorDiv(until-anchor, interval)
	return anchor, interval, kLo, kHi, kLo <= kHi
}

// Next returns the first grid point strictly after t.
func (e EverySchedule) Next(t time.Time) (time.Time, bool) {
	a, i, k, _, ok := e.indexRange(floorMilli(t), maxMilli)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(a + k*i).UTC(), true
}

// Prev returns the last grid point strictly before t.
func (e EverySchedule) Prev(t time.Time) (time.Time, bool) {
	until := floorMilli(t)
	if until < maxMilli && t.Nanosecond()%int(time.Millisecond) == 0 {
		until-- // t itself is a whole millisecond: exclude it
	}
	a, i, _, k, ok := e.indexRange(minMilli-1, until)
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(a + k*i).UTC(), true
}

// timesIn implements Times: the count is kHi-kLo+1, never an iteration.
func (e EverySchedule) timesIn(after, until time.Time, limit int) ([]time.Time, int64) {
	a, i, kLo, kHi, ok := e.indexRange(floorMilli(after), floorMilli(until))
	if !ok {
		return nil, 0
	}
	count := kHi - kLo + 1
	times := make([]time.Time, 0, min(int64(limit), count))
	for k := kLo; k <= kHi && len(times) < limit; k++ {
		times = append(times, time.UnixMilli(a+k*i).UTC())
	}
	return times, count
}

// Kind returns KindEvery.
func (e EverySchedule) Kind() string { return KindEvery }

// String renders the schedule as "every INTERVAL from ANCHOR".
func (e EverySchedule) String() string {
	anchor := e.Anchor
	if anchor.IsZero() {
		anchor = time.Unix(0, 0)
	}
	return "every " + e.Interval.String() + " from " + anchor.UTC().Format(timeLayout)
}

// DelaySchedule fires Delay after the previous run finished. Only the
// scheduler knows when that is, so Next has nothing to say; use After.
type DelaySchedule struct {
	Delay time.Duration
}

// After returns the fire time that follows a run that finished at finish:
// finish + Delay, truncated to the millisecond, in UTC.
func (d DelaySchedule) After(finish time.Time) time.Time { return truncMilli(finish.Add(d.Delay)) }

// Next always returns false: a delay schedule's times depend on run
// finishes (see After).
func (d DelaySchedule) Next(time.Time) (time.Time, bool) { return time.Time{}, false }

// Prev always returns false, as Next does.
func (d DelaySchedule) Prev(time.Time) (time.Time, bool) { return time.Time{}, false }

// Kind returns KindDelay.
func (d DelaySchedule) Kind() string { return KindDelay }

// String renders the schedule as "delay DURATION".
func (d DelaySchedule) String() string { return "delay " + d.Delay.String() }

// AtSchedule fires once, at At (truncated to the millisecond by Parse).
type AtSchedule struct {
	At time.Time
}

// Next returns At if it is strictly after t.
func (a AtSchedule) Next(t time.Time) (time.Time, bool) {
	at := truncMilli(a.At)
	if !at.After(t) {
		return time.Time{}, false
	}
	return at, true
}

// Prev returns At if it is strictly before t.
func (a AtSchedule) Prev(t time.Time) (time.Time, bool) {
	at := truncMilli(a.At)
	if !at.Before(t) {
		return time.Time{}, false
	}
	return at, true
}

// Kind returns KindAt.
func (a AtSchedule) Kind() string { return KindAt }

// String renders the schedule as "at TIME" in UTC.
func (a AtSchedule) String() string { return "at " + truncMilli(a.At).Format(timeLayout) }

// ManualSchedule never fires by itself; runs come from jobctl job trigger
// or the API.
type ManualSchedule struct{}

// Next always returns false.
func (ManualSchedule) Next(time.Time) (time.Time, bool) { return time.Time{}, false }

// Prev always returns false.
func (ManualSchedule) Prev(time.Time) (time.Time, bool) { return time.Time{}, false }

// Kind returns KindManual.
func (ManualSchedule) Kind() string { return KindManual }

// String returns "manual".
func (ManualSchedule) String() string { return "manual" }
